"""``tf2dasl reconstruct-beam INPUT_PATTERN... --model MODEL_DIR --export-dir EXPORT_DIR --out OUT_PREFIX
[--runner R] [detector options] [--parquet] [Beam pipeline options]``: :func:`tf2dasl.beam.reconstruct_beam`.

Apache Beam is an optional extra (``pip install 'tf2dasl[beam]'``): its package is imported by name when the
command runs (:func:`load_beam`), so that without it the command says how to install it in one line."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..cli import EXIT_FAILURES
from ..errors import UserError
from ..quiet import native_stderr_hidden
from ._detector_options import add_detector_options, detector_options_of
from ._limits import add_max_faces, add_max_pixels, max_faces_of, max_pixels_of

#: the package of the pipeline and the extra that installs what it imports
BEAM_PACKAGE, EXTRA = "tf2dasl.beam", "beam"
#: the Beam option that sets the workers' log level, and the level used unless the command line gives one
LOG_LEVEL_OPTION, LOG_LEVEL = "--default_sdk_harness_log_level", "WARNING"

EPILOG = """\
outputs (atomic: Beam's file sinks write shards to a temporary folder and rename them into place when the run
succeeds): OUT_PREFIXphotos-SSSSS-of-NNNNN.jsonl, one line per photo with `tf2dasl reconstruct`'s JSON record;
OUT_PREFIXdead_letter-SSSSS-of-NNNNN.jsonl, one line per photo that has none ({"image", "stage", "error"}: read,
decode (not an image, truncated, above --max-pixels), detect, no_face, inference, crash);
OUT_PREFIXcapped-SSSSS-of-NNNNN.jsonl, one line per photo with more faces than --max-faces ({"image", "faces",
"reconstructed"}: its record holds the highest-scoring ones); with --parquet OUT_PREFIXfaces-SSSSS-of-NNNNN.parquet,
one row per face. OUT_PREFIX is a prefix: end it with / for a folder.
A prefix that already holds a run's shards is refused: every run writes a fresh one.

Beam pipeline options follow the command's own, written --option=value (Beam's names, with underscores):
  --direct_num_workers=2 --direct_running_mode=multi_processing        (DirectRunner on 2 processes)
  --project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py   (DataflowRunner)
  --flink_master=HOST:8081 --environment_type=LOOPBACK                   (FlinkRunner)
--model, --export-dir and --assets may be gs:// or s3:// paths: each worker copies what it reads (docs/beam.md).

exit status: 0 when every photo has its record with all its faces or is in the dead letter for having no face;
1 when any photo failed otherwise or had more faces than --max-faces; 2 for a usage error (no file matches a
pattern, a used prefix, a missing model or export, apache-beam not installed), before anything runs.
"""


def add_parser(sub, name, help):
    p = sub.add_parser(name, help=help, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Photos at scale with Apache Beam: the faces of every photo matching the patterns, "
                                   "as `tf2dasl reconstruct` finds them, in sharded JSON lines (docs/beam.md).")
    p.add_argument("inputs", nargs="+", metavar="INPUT_PATTERN",
                   help="image files or globs ('photos/*.jpg', 'gs://bucket/photos/**'; quote them), read through "
                        "Beam's FileSystems")
    p.add_argument("--model", required=True, help="model directory (its morphable model decodes the parameters)")
    p.add_argument("--export-dir", required=True,
                   help="`tf2dasl export` of the same model: RunInference runs its SavedModel")
    p.add_argument("--out", required=True, metavar="OUT_PREFIX", help="output prefix (out/run1/ for a folder)")
    p.add_argument("--runner", default="DirectRunner",
                   help="Beam runner: DirectRunner (default), DataflowRunner, FlinkRunner, SparkRunner, ...")
    add_detector_options(p)
    add_max_faces(p, given_boxes=False)
    p.add_argument("--no-refine", action="store_true", help="skip the second, landmark-based crop")
    add_max_pixels(p, reduced=True)
    p.add_argument("--faces-per-batch", type=int, default=None, metavar="N",
                   help="faces per RunInference batch (default: tf2dasl.beam.FACES_PER_BATCH, 64)")
    p.add_argument("--parquet", action="store_true", help="also write OUT_PREFIXfaces-*.parquet, one row per face")
    p.set_defaults(run=run, pipeline_options=True)


def load_beam():
    """The pipeline's package (TensorFlow's and Beam's start-up chatter hidden), or a one-line :class:`UserError`
    saying how to install Apache Beam."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with native_stderr_hidden():
            module = importlib.import_module(BEAM_PACKAGE)
            sys.modules["tensorflow"].config.list_physical_devices()  # device probing prints its own chatter
    except ModuleNotFoundError as exc:
        raise UserError(f"reconstruct-beam needs Apache Beam ({exc.name} is not installed): "
                        f"pip install 'tf2dasl[{EXTRA}]'") from None
    return module


def pipeline_args(args) -> list[str]:
    """Beam's options: the runner, the workers' log level (unless given) and what the command did not parse."""
    quiet = [] if any(a.startswith(LOG_LEVEL_OPTION) for a in args.pipeline_args) else [f"{LOG_LEVEL_OPTION}={LOG_LEVEL}"]
    return [f"--runner={args.runner}", *quiet, *args.pipeline_args]


def run(args) -> int:
    if args.faces_per_batch is not None and args.faces_per_batch < 1:
        raise UserError(f"--faces-per-batch {args.faces_per_batch}: give a positive number of faces")
    beam = load_beam()
    settings = {"detector": args.detector, "assets": args.assets, "detector_options": detector_options_of(args),
                "max_pixels": max_pixels_of(args), "refine": not args.no_refine, "max_faces": max_faces_of(args)}
    batch = {} if args.faces_per_batch is None else {"faces_per_batch": args.faces_per_batch}
    summary = beam.reconstruct_beam(args.inputs, args.model, args.export_dir, args.out,
                                    pipeline_args(args), settings, parquet=args.parquet,
                                    **batch)
    print(summary.describe())
    return 0 if summary.complete else EXIT_FAILURES
