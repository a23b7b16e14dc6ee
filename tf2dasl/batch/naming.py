"""Output names of a batch run: one stem per input, unique within the run and never taking a name that a file not
written by tf2dasl holds in the output folder (such files are kept, the input's outputs get another stem)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

from ..io.run_folder import RunFolder
from .files import PICTURES, face_file_suffixes

#: ``summary.json`` lives in the output folder too: no image's JSON may take its name.
SUMMARY_STEM = "summary"


def output_stems(paths: Sequence[Path], taken: Sequence[str] = (SUMMARY_STEM,),
                 blocked: Callable[[str], str | None] | None = None,
                 previous: Sequence[str | None] | None = None) -> list[str]:
    """Unique output stems for ``paths``, in order: the file's stem; when an earlier path (or ``summary.json``)
    took it, ``<stem>_<ext>`` (``a.bmp`` after ``a.png`` → ``a_bmp``), then ``<stem>_<ext>_2``, ``_3``, ...
    Deterministic for a given input order, and no two images of one run share their output files.

    For a folder that earlier runs wrote into: ``taken`` are stems no input may have (summary.json's, those of
    other inputs' earlier outputs); ``blocked(stem)`` names a file in the way (the user's, never replaced) or
    returns None; ``previous[i]`` is the stem an earlier run gave ``paths[i]``, kept when still usable."""
    taken = set(taken)
    stems: list[str | None] = [None] * len(paths)
    usable = lambda stem: stem not in taken and not (blocked and blocked(stem))  # noqa: E731
    for i, stem in enumerate(previous or ()):
        if stem and usable(stem):
            stems[i] = stem
            taken.add(stem)
    for i, p in enumerate(paths):
        if stems[i] is not None:
            continue
        stem = p.stem
        if not usable(stem):
            base = f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.suffix else p.stem
            stem, n = base, 1
            while not usable(stem):
                n += 1
                stem = f"{base}_{n}"
        taken.add(stem)
        stems[i] = stem
    return stems


def summary_name(folder: RunFolder) -> str:
    """``summary.json``, or ``summary_2.json``, ... when a file that is not tf2dasl's has the name."""
    name, n = f"{SUMMARY_STEM}.json", 1
    while folder.foreign(name):
        n += 1
        name = f"{SUMMARY_STEM}_{n}.json"
    return name


def stem_blocker(folder: RunFolder, outputs: Sequence[str]) -> Callable[[str], str | None]:
    """``blocked(stem)`` for :func:`output_stems`: the first name of ``stem``'s outputs that something not
    written by tf2dasl holds in the folder (a file or a folder of the user's), or None."""
    existing = set(folder.names())
    per_face = "|".join(map(re.escape, face_file_suffixes(outputs)))  # <stem>_<face>.ply, _texture.png, ...

    def blocked(stem: str) -> str | None:
        names = [f"{stem}.json"] + [f"{stem}_{o}.png" for o in PICTURES if o in outputs]
        if per_face:
            pattern = re.compile(rf"{re.escape(stem)}_\d+({per_face})")
            names += sorted(n for n in existing if pattern.fullmatch(n))
        return next((n for n in names if n in existing and folder.foreign(n)), None)

    return blocked


def rename_reason(path: Path, blocked, other_stems: set[str], folder: RunFolder) -> str:
    in_the_way = blocked(path.stem)
    if in_the_way:
        return f"{folder.path / in_the_way} was not written by tf2dasl: kept"
    if path.stem in other_stems:
        return "an earlier run wrote that name for another input: kept"
    return "its name was taken in this run"
