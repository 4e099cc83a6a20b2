"""``python -m mammocad.cli``: the same entry point as ``mammocad`` (Ctrl-C at any moment is one line)."""

from mammocad.__main__ import main

main()
