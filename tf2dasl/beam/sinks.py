"""Where the Beam pipeline's results go, through Beam's own file sinks (shards written to a temporary folder and
renamed into place when the whole run succeeded: a failed run leaves no partial shard under the prefix):

* ``OUT_PREFIX photos-SSSSS-of-NNNNN.jsonl``: one line per photo, ``tf2dasl reconstruct``'s JSON record
  (``image``, ``width``, ``height``, ``faces``; docs/output_format.md);
* ``OUT_PREFIX dead_letter-SSSSS-of-NNNNN.jsonl``: one line per photo that is not in the photos: ``image``,
  ``stage`` and the one-line ``error``;
* ``OUT_PREFIX capped-SSSSS-of-NNNNN.jsonl``: one line per photo with more faces than ``max_faces``: ``image``,
  ``faces`` (found) and ``reconstructed`` (``tf2dasl reconstruct``'s ``capped`` in summary.json);
* ``OUT_PREFIX faces-SSSSS-of-NNNNN.parquet`` (optional): one row per face (:data:`FACE_SCHEMA`).

A run writes a fresh prefix (:func:`require_fresh_prefix`): a prefix that already holds a run's shards is refused,
so that two runs' shards (of different shard counts) never mix.
"""
from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from ..errors import UserError
from ..geometry.morphable_model import NUM_LANDMARKS, NUM_PARAMS

#: the outputs under a prefix: name → file suffix
OUTPUTS = {"photos": ".jsonl", "dead_letter": ".jsonl", "capped": ".jsonl", "faces": ".parquet"}
BOX = pa.list_(pa.float64(), 4)
#: one Parquet row per face: the photo, the face's index in it, and the face's JSON record
FACE_SCHEMA = pa.schema([
    ("image", pa.string()), ("face", pa.int32()), ("bbox", BOX), ("score", pa.float64()), ("roi_box", BOX),
    ("landmarks_2d", pa.list_(pa.list_(pa.float64(), 2), NUM_LANDMARKS)),
    ("landmarks_3d", pa.list_(pa.list_(pa.float64(), 3), NUM_LANDMARKS)),
    ("pose", pa.struct([("yaw", pa.float64()), ("pitch", pa.float64()), ("roll", pa.float64())])),
    ("params", pa.list_(pa.float64(), NUM_PARAMS)),
])


def output_pattern(prefix: str, name: str) -> str:
    """The file pattern of output ``name``'s shards under ``prefix``."""
    return f"{prefix}{name}-*-of-*{OUTPUTS[name]}"


def require_fresh_prefix(prefix: str) -> None:
    """A :class:`UserError` when ``prefix`` already holds a run's shards."""
    patterns = [output_pattern(prefix, name) for name in OUTPUTS]
    taken = [p for p, r in zip(patterns, FileSystems.match(patterns, limits=[1] * len(patterns))) if r.metadata_list]
    if taken:
        raise UserError(f"--out {prefix}: already holds a run's outputs ({', '.join(taken)}); give a fresh prefix "
                        "(a run never adds to or replaces another run's shards)")


def to_line(record: dict) -> str:
    """A record as one JSON line (without its newline)."""
    return json.dumps(record)


class WriteResults(beam.PTransform):
    """``{"photos", "dead_letter", "capped"[, "faces"]}`` (:class:`~tf2dasl.beam.pipeline.ReconstructPhotos`) →
    the shards under ``prefix`` (module docstring)."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def expand(self, outputs):
        written = {}
        for name, pcoll in outputs.items():
            if OUTPUTS[name] == ".parquet":
                written[name] = pcoll | f"Write_{name}" >> beam.io.WriteToParquet(
                    f"{self.prefix}{name}", FACE_SCHEMA, file_name_suffix=OUTPUTS[name])
            else:
                written[name] = (pcoll | f"{name}ToJson" >> beam.Map(to_line)
                                 | f"Write_{name}" >> beam.io.WriteToText(f"{self.prefix}{name}",
                                                                          file_name_suffix=OUTPUTS[name]))
        return written
