"""What the edit commands (``swap``, ``retarget``) share: model, detector and size options, loading, reading photos."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..io.images import read_image
from ..reconstruct import make_reconstructor
from ..texture.edit import EditConfig
from ..texture.uv import TEXTURE_SIZE_RANGE
from ._detector_options import add_detector_options, detector_options_of
from ._limits import add_max_pixels, max_pixels_of


def add_common(p) -> None:
    p.add_argument("--model", required=True,
                   help="model directory with UV coordinates (tf2dasl import-3ddfa from a 3DDFA_V2 checkout)")
    add_detector_options(p)
    p.add_argument("--texture-size", type=int, default=512, metavar="N", help="UV texture side in texels")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_max_pixels(p)


def read_photo(args, path):
    """The photo at ``path`` within ``--max-pixels`` (one line naming it and its size when it is larger)."""
    return read_image(path, max_pixels_of(args))


def load(args):
    """``(reconstructor, morphable model, EditConfig)``; a model without UVs is one line before any photo is read."""
    check_texture_size(args.texture_size)
    rec = make_reconstructor(args.model, args.detector, args.assets, detector_options_of(args))
    rec.mm.require_uv(args.command)
    return rec, rec.mm, EditConfig(texture_size=args.texture_size)


def check_texture_size(size: int) -> None:
    """``--texture-size`` within what :class:`tf2dasl.texture.TextureConfig` accepts, before any work (one line)."""
    lo, hi = TEXTURE_SIZE_RANGE
    if not lo <= size <= hi:
        raise UserError(f"--texture-size {size}: give a side between {lo} and {hi} texels")


def check_out(path, force: bool, suffixes: tuple[str, ...]) -> None:
    """``--out`` before any work: a known extension, and not an existing file unless ``--force``."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise UserError(f"--out {p}: give a file ending in {' or '.join(suffixes)}")
    if p.exists() and not force:
        raise UserError(f"--out {p}: exists; choose another name or add --force to replace it")
    if not p.parent.is_dir():
        raise UserError(f"--out {p}: folder {p.parent} not found")
