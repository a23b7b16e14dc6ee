"""One module per ``tf2dasl`` sub-command: ``add_parser(subparsers, name)`` and ``run(args) -> int``."""
