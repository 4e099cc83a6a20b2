"""The ``mammocad`` command line: thin wrappers that parse options and call the library.

Every command with a config accepts ``--config FILE`` (YAML) and one flag per config key;
flags given on the command line win over the file. One module per group of commands; each
imports only light modules at the top and the heavy ones (torch, Lightning, pandas) inside
its commands, so that ``--help`` answers at once. Research software, not a medical device.
"""

import importlib

from mammocad.cli.common import Interrupted, app

# Each module registers its commands on ``app`` when imported.
COMMAND_MODULES = ("classify", "data", "demo", "infer", "quality", "report", "segment", "segment_eval", "serve")
for _module in COMMAND_MODULES:
    importlib.import_module(f"mammocad.cli.{_module}")

__all__ = ["Interrupted", "app"]
