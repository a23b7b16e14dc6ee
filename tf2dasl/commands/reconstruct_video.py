"""The video half of ``tf2dasl reconstruct``: its options and the dispatch of video files and ``--camera N`` to
:func:`tf2dasl.video.pipeline.reconstruct_sources` (photos stay with :func:`tf2dasl.api.reconstruct_paths`)."""
from __future__ import annotations

import dataclasses
import sys

from ..batch.naming import summary_name
from ..batch.summary import write_summary_file
from ..cli import EXIT_FAILURES, EXIT_INTERRUPTED
from ..detect import make_detector
from ..errors import UserError
from ..io.yaml_config import from_dict, load_config
from ..reconstruct import Reconstructor
from ..video import VideoConfig, is_video_path
from ..video.pipeline import VideoFailure, reconstruct_sources, video_run_folder

#: Photo-only flags, refused when every input is a video (they would be ignored).
PHOTO_ONLY = (("pts", "--pts"), ("boxes", "--boxes"), ("depth", "--depth"), ("pncc", "--pncc"),
              ("uv_texture", "--uv-texture"), ("glb", "--glb"))

EPILOG = """\
videos (any file OpenCV reads with a video extension: .mp4 .mov .avi .mkv .webm ...) and --camera N: faces are
tracked through the frames with stable ids and smoothed (--smooth); OUT_DIR/<stem>.jsonl gets one JSON line per
frame as it is done (docs/output_format.md), --overlay writes <stem>_overlay.mp4, --obj/--ply write
<stem>_meshes/<stem>_<frame>_<track>.obj|.ply. A video that breaks part-way keeps every frame before the break
("incomplete: ...", exit 1); one that cannot be read at all is one line ("failed: ...") and the rest go on.
A camera runs until Ctrl-C or --max-frames (exit 0); Ctrl-C on a file keeps the frames done (exit 130).
"""


def add_arguments(p) -> None:
    g = p.add_argument_group("video", "for video files and --camera (tf2dasl/video/video_config.py documents the "
                                      "settings)")
    g.add_argument("--camera", type=int, metavar="N", help="read camera N (0: the first) instead of / besides files")
    g.add_argument("--smooth", choices=("off", "causal", "offline"), default=None,
                   help="temporal smoothing: causal (default; live, no delay), offline (looks a few frames ahead), "
                        "off")
    g.add_argument("--video-config", metavar="YAML", help="tracking/smoothing/overlay settings (VideoConfig)")
    g.add_argument("--redetect-every", type=int, metavar="N", help="run the detector every N frames (default 10)")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop each video (or the camera) after N frames")


def video_config(args):
    """The :class:`~tf2dasl.video.VideoConfig` of the options (file first, then the flags)."""
    cfg = load_config(args.video_config, VideoConfig) if args.video_config else VideoConfig()
    if args.smooth:
        cfg.smoothing.mode = args.smooth
    if args.redetect_every is not None:
        cfg.tracking.redetect_every = args.redetect_every
    if args.max_faces is not None:
        cfg.tracking.max_faces = args.max_faces
    return from_dict(VideoConfig, dataclasses.asdict(cfg), where="video settings")  # checks the flags' values too


def split_inputs(args) -> tuple[list, list]:
    """(photo inputs, video sources) of the command line; refuses photo-only flags when there is no photo."""
    videos = [p for p in args.inputs if is_video_path(p)]
    photos = [p for p in args.inputs if not is_video_path(p)]
    if args.camera is not None:
        videos.append(args.camera)
    if not photos and not videos:
        raise UserError("nothing to reconstruct: give photos, folders or videos, or --camera N")
    if not photos:
        given = [flag for attr, flag in PHOTO_ONLY if getattr(args, attr, None)]
        if given:
            raise UserError(f"{', '.join(given)} apply to photos; for videos use --overlay, --obj, --ply")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be >= 1")
    return photos, videos


def run_videos(args, videos, photo_rec: Reconstructor, settings: dict, outputs, photos=()) -> tuple[int, object]:
    """Reconstruct the video sources with the photos' predictor and decoder (``photo_rec``) and a detector that
    keeps every face (the tracker bounds them); print one line per video and its problems. Returns the exit
    status and the :class:`~tf2dasl.video.VideoRun`. ``OUT/summary.json`` is written here when no ``photos``
    follow in the same command, or when Ctrl-C stopped a video (the photos then listed as not processed);
    otherwise the photos' run writes it, with the videos' entries."""
    cfg = video_config(args)
    det_opts = {"min_size": args.min_size}
    if args.score_threshold is not None:
        det_opts["score_threshold"] = args.score_threshold
    rec = Reconstructor(photo_rec.predictor, photo_rec.decoder, make_detector(args.detector, args.assets, **det_opts))
    options = dict(outputs=[o for o in outputs if o in ("overlay", "obj", "ply")], config=cfg, force=args.force,
                   settings=settings, max_frames=args.max_frames)
    run = _before_photos(videos, photos, rec, args.out, options) if photos else \
        reconstruct_sources(videos, rec, args.out, **options)
    rc = 0
    for r in run.results:
        if isinstance(r, VideoFailure):
            print(f"  {r.describe()}", file=sys.stderr)
            rc = max(rc, EXIT_FAILURES)
            continue
        print(r.describe())
        for line in r.report_lines():
            print(f"  {line}", file=sys.stderr)
        camera = r.input.startswith("camera ")
        if r.interrupted and not camera:
            rc = EXIT_INTERRUPTED
        elif r.problem or r.write_error:
            rc = max(rc, EXIT_FAILURES)
    if run.summary_error:
        print(f"  summary not written: {run.summary_error}", file=sys.stderr)
        rc = max(rc, EXIT_FAILURES)
    return rc, run


def _before_photos(videos, photos, rec: Reconstructor, out, options: dict):
    """The videos of a command with photos after them, in a run folder opened here: no ``summary.json`` (the
    photos' run writes it), unless Ctrl-C stopped a video: then it is written here, the photos not processed."""
    with video_run_folder(out, rec, options["config"], options["settings"]) as folder:
        summary_file = summary_name(folder)
        run = reconstruct_sources(videos, rec, folder, **options)
        if run.interrupted:
            run.not_processed = [str(p) for p in photos]
            write_summary_file(folder, run, summary_file)
    return run
