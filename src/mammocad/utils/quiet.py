"""Other packages' warnings kept out of the command line's output; mammocad's own still show.

Training and evaluation drive torch, Lightning, torchmetrics, scikit-learn and matplotlib, whose
deprecation notices and usage hints ("`isinstance(treespec, LeafSpec)` is deprecated", "the
weights_only Unpickler might not support ...") speak to developers of those libraries, not to
a user of a command: the commands that run them hide them. A user who asks for warnings
(``python -W ...`` or ``PYTHONWARNINGS``) gets them all, as asked.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

OWN_MODULES = r"mammocad(\.|$)"  # warnings attributed to these modules stay visible


def third_party_warnings_hidden(fn: F) -> F:
    """Decorator: while ``fn`` runs, warnings from modules other than mammocad's are ignored.

    The filter is in place in this process and in the worker processes it forks meanwhile.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if sys.warnoptions:  # -W / PYTHONWARNINGS given: the user's choice wins
            return fn(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=OWN_MODULES)
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
