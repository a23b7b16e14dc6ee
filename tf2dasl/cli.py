"""``tf2dasl`` command line: sub-commands, each thin over the Python API (``tf2dasl/commands/``).

Errors a user can cause (:class:`tf2dasl.errors.UserError`, missing files) print one line and exit 2;
batch commands report failures at the end and exit 1; Ctrl-C prints one line and exits 130.

The commands are a registry (:data:`COMMANDS`): only the one asked for is imported (its module imports what it
runs, TensorFlow included, with TensorFlow's native start-up chatter hidden), so ``tf2dasl --help`` and a command's
usage errors answer at once.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from . import __version__
from .errors import UserError
from .quiet import native_stderr_hidden

#: sub-command name → (module in tf2dasl.commands exposing ``add_parser(subparsers, name, help)`` and
#: ``run(args) -> int``, the one-line help ``tf2dasl --help`` lists)
COMMANDS = {
    "import-3ddfa": ("import_3ddfa", "import 3DDFA_V2 weights into a tf2dasl model directory"),
    "evaluate": ("evaluate", "measure accuracy with a standard protocol"),
    "reconstruct": ("reconstruct", "reconstruct the faces of photos and videos (JSON, overlays, depth, PNCC, meshes)"),
    "train": ("train", "train a 2DASL model (keras fit; resumable)"),
    "fit-landmarks": ("fit_landmarks", "fit AFLW's 21 points to mesh vertices (the config's points_file)"),
    "export": ("export", "export a model for TF Serving (SavedModel), mobile (TFLite) and ONNX"),
    "plot": ("plot", "draw CED curves and yaw-bin bars of `evaluate aflw2000 --json` results"),
    "swap": ("swap", "swap a face: SOURCE's face texture on TARGET's face, blended into TARGET"),
    "retarget": ("retarget", "put SOURCE's expression on TARGET's face (a photo, or a video animating it)"),
    "reconstruct-beam": ("reconstruct_beam", "reconstruct millions of photos with Apache Beam (the [beam] extra)"),
    "profile": ("profile", "make large-pose faces with exact 3D labels from the training faces (face profiling)"),
}


def import_command(name: str):
    """The module of command ``name``, imported with TensorFlow's native start-up chatter (CUDA probing on CPU
    machines, device listing) hidden; what it printed is replayed if the import fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_hidden():
        module = importlib.import_module(f"{__package__}.commands.{COMMANDS[name][0]}")
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            tf.config.list_physical_devices()  # device probing prints its own chatter: hide it too
    return module


#: OS errors about a path the user gave, where "check the path" is the fix; others (disk full, I/O error) are
#: reported in the system's words alone.
_PATH_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                errno.ELOOP)


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: the file, the system's reason and, for path problems, what to check."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = " (check the path and its permissions)" if exc.errno in _PATH_ERRNOS else ""
    return f"{where}{exc.strerror or exc}{hint}"


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of ``tf2dasl``: every command listed, the one ``argv`` names with its full arguments."""
    parser = argparse.ArgumentParser(prog="tf2dasl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tf2dasl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, text) in COMMANDS.items():
        if name == chosen:
            import_command(name).add_parser(sub, name, text)
        else:
            sub.add_parser(name, help=text)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "pipeline_options", False):  # only reconstruct-beam passes options on (Beam's)
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.pipeline_args = extra
        command = args.command
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


def _exit(code: int) -> None:
    """Leave the process with ``code``. After Ctrl-C, ``python -m`` would turn a handled KeyboardInterrupt back into
    death by SIGINT when an extension module's start-up (LiteRT's, running Python code through ``PyRun_String``)
    saw it first: the status already reported is kept by leaving at once, the streams flushed."""
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
