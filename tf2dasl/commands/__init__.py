"""The ``tf2dasl`` sub-commands, one module each: ``add_parser(subparsers, name)`` and ``run(args) -> int``.

Owns argument parsing and what a command prints; every command is thin over a Python API (``tf2dasl.api``,
``tf2dasl.evaluate``, ``tf2dasl.training``, ``tf2dasl.export``, ...). Nothing in the package imports this one.
"""
