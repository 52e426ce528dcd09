"""Groups of `hypervision` sub-commands, each module exposing `register(app)`; see cli.py."""
