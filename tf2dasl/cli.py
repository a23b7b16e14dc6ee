"""``tf2dasl`` command line: sub-commands, each thin over the Python API (``tf2dasl/commands/``).

Errors a user can cause (:class:`tf2dasl.errors.UserError`, missing files) print one line and exit 2;
batch commands report failures at the end and exit 1; Ctrl-C prints one line and exits 130.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

#: sub-command name → module in tf2dasl.commands exposing ``add_parser(subparsers)`` and ``run(args) -> int``.
COMMANDS = {"import-3ddfa": "import_3ddfa", "evaluate": "evaluate", "reconstruct": "reconstruct",
            "train": "train", "fit-landmarks": "fit_landmarks", "export": "export", "plot": "plot", "swap": "swap",
            "retarget": "retarget", "profile": "profile"}


def _quiet_tensorflow_import() -> None:
    """Import TensorFlow with its C++ start-up chatter (CUDA probing on CPU machines) hidden; replayed on failure."""
    from .quiet import native_stderr_hidden

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_hidden():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device probing prints its own chatter: hide it too


#: OS errors about a path the user gave, where "check the path" is the fix; others (disk full, I/O error) are
#: reported in the system's words alone.
_PATH_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                errno.ELOOP)


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: the file, the system's reason and, for path problems, what to check."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = " (check the path and its permissions)" if exc.errno in _PATH_ERRNOS else ""
    return f"{where}{exc.strerror or exc}{hint}"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tf2dasl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tf2dasl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"tf2dasl.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tf2dasl.commands.{module}":
                continue  # command not built yet
            raise
        mod.add_parser(sub, name)
    return parser


#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit status of a batch command where some input failed or an output could not be written.
EXIT_FAILURES = 1
#: Exit status of a usage error (a UserError or a bad path), reported in one line.
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. Ctrl-C at any moment (parsing, importing TensorFlow, loading a model, running)
    prints one line and exits 130, never a traceback."""
    command = None
    try:
        from .errors import UserError

        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        _quiet_tensorflow_import()
        try:
            return int(args.run(args) or 0)
        except UserError as exc:
            print(f"tf2dasl {command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:  # a path the user gave: missing, not writable, a file where a folder is needed
            print(f"tf2dasl {command}: error: {os_error_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print(f"tf2dasl{' ' + command if command else ''}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _interrupted(exc: BaseException | None) -> bool:
    """True for Ctrl-C, also when an extension module's initialisation turned it into another error (an
    ImportError "initialization failed" raised from the KeyboardInterrupt)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
