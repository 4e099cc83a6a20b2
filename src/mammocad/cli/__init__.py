"""The ``mammocad`` command line: thin wrappers that parse options and call the library.

Every command with a config accepts ``--config FILE`` (YAML) and one flag per config key;
flags given on the command line win over the file. One module per group of commands; each
imports only light modules at the top and the heavy ones (torch, Lightning, pandas) inside
its commands, so that ``--help`` answers at once. Research software, not a medical device.
"""

from mammocad.cli.common import Interrupted, app
from mammocad.cli import classify, data, demo, segment  # noqa: F401  (registers the commands on ``app``)

__all__ = ["Interrupted", "app"]
