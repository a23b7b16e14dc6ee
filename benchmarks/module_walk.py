"""The walk of one CLI call through tf2dasl's modules: which modules its function calls pass through, in order,
and how many times the walk returns to a module it had left.

    python benchmarks/module_walk.py reconstruct PHOTO --model MODEL_DIR --out OUT_DIR [--show-sequence]

The command runs twice in one process: the first run imports everything, the second is traced (function calls only,
consecutive calls within one module collapsed), so import-time code does not count. The second run writes to
``OUT_DIR_traced``. Run it with another checkout on ``PYTHONPATH`` to compare two versions of the code."""
from __future__ import annotations

import sys

from tf2dasl.cli import main

PACKAGE = "tf2dasl"


def trace(argv: list[str]) -> tuple[int, list[str]]:
    """Run ``tf2dasl ARGV`` and return its exit code and the modules its calls walked through."""
    walk: list[str] = []

    def profiler(frame, event, arg):
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        module = frame.f_globals.get("__name__", "")
        if module.startswith(PACKAGE) and (not walk or walk[-1] != module):
            walk.append(module)

    sys.setprofile(profiler)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    return code, walk


def main_walk(argv: list[str]) -> int:
    show = "--show-sequence" in argv
    argv = [a for a in argv if a != "--show-sequence"]
    if "--out" not in argv:
        raise SystemExit("module_walk: give the command's --out OUT_DIR")
    main(argv)  # the warm-up run: imports, caches
    out = argv.index("--out") + 1
    argv = argv[:out] + [argv[out] + "_traced"] + argv[out + 1:]
    code, walk = trace(argv)
    modules = list(dict.fromkeys(walk))
    returns = len(walk) - len(modules)
    short = [m.removeprefix(PACKAGE + ".") for m in modules]
    print(f"exit code {code}; {len(modules)} modules; {len(walk)} module changes; "
          f"{returns} returns to a module left earlier")
    print("first visits: " + " -> ".join(short))
    if show:
        print("walk: " + " > ".join(m.removeprefix(PACKAGE + ".") for m in walk))
    return code


if __name__ == "__main__":
    sys.exit(main_walk(sys.argv[1:]))
