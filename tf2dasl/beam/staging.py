"""A model or export directory as a worker reads it: local paths as they are, anything else (``gs://``, ``s3://``,
any scheme Apache Beam's FileSystems knows) copied once per worker process into a local temporary folder.

The decoder (``model.json`` + ``morphable_model.npz``), the SavedModel and the detector's ``.tflite`` files are read
by libraries that open local files (numpy, ``tf.saved_model.load``, LiteRT): on Dataflow the directories travel as
``--model gs://bucket/models/mb05`` and each worker copies what it needs, through the same FileSystems the inputs
are read with (``apache-beam[gcp]`` or ``[aws]`` supplies the scheme).
"""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from ..errors import UserError

#: what of a model directory the decoder reads (the regressor runs from the export)
MODEL_DIR_FILES = ("model.json", "morphable_model.npz")
#: what of an export directory the SavedModel handler reads
EXPORT_DIR_FILES = ("export.json", "saved_model/**")
#: what of a detector assets folder BlazeFace reads
ASSETS_FILES = ("*.tflite", "detectors/*.tflite")
#: schemes that are this machine's files
LOCAL_SCHEMES = (None, "file")


class StagingError(UserError):
    """A remote directory that cannot be copied to the worker (missing, or none of the files asked for)."""


def is_local(path: str) -> bool:
    """Whether ``path`` is a file of this machine (no scheme, or ``file://``)."""
    return FileSystems.get_scheme(str(path)) in LOCAL_SCHEMES


@functools.lru_cache(maxsize=None)
def local_dir(path: str, patterns: Sequence[str]) -> Path:
    """``path`` itself when it is local; otherwise a local temporary folder holding the files of ``path`` that
    match ``patterns`` (relative glob patterns; ``**`` crosses folders), copied once per process."""
    path = str(path)
    if is_local(path):
        return Path(path.removeprefix("file://"))
    base = path.rstrip("/") + "/"
    dest = Path(tempfile.mkdtemp(prefix="tf2dasl-stage-"))
    copied = 0
    for result in FileSystems.match([base + p for p in patterns]):
        for meta in result.metadata_list:
            target = dest / meta.path[len(base):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with FileSystems.open(meta.path, compression_type=CompressionTypes.UNCOMPRESSED) as src, \
                    open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            copied += 1
    if not copied:
        raise StagingError(f"{path}: none of {', '.join(patterns)} found there; check the path (the workers need "
                           "read access to it)")
    return dest
