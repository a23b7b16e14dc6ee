"""End-to-end latency per stage and photos/s on a 720p photo with one face (single process, CPU).

    python benchmarks/e2e_throughput.py --model models/mb05 --assets ../shared/assets [--runs 50] [--threads 1]

The photo is scikit-image's public-domain ``astronaut`` (512x512, one face) upscaled to 720x720 and
reflect-padded to 1280x720, JPEG-encoded (quality 90) in memory and written to a temp file (``--photo FILE``
uses a photo of yours, resized/padded the same way). Stages, as :class:`tf2dasl.reconstruct.Reconstructor`
runs them, each the median over ``--runs`` (after warm-up):

  decode       ``read_image`` of the JPEG file (page-cached): bytes → (H, W, 3) uint8 BGR, EXIF checked
  detect       the detector (default: BlazeFace full range + short range) and ``box_to_faceboxes``
  pass 1       roi from the box, 120x120 crop, regression, 68 landmarks to image pixels
  pass 2       roi refined from those landmarks, crop, regression, landmarks, pose, ``Face`` objects
  dense mesh   ``Reconstructor.add_vertices`` (38,365 vertices in image pixels; only renders and meshes need it)
  JSON         ``json.dumps`` of the per-image record (docs/output_format.md)

Each stage is timed in wall-clock ms and in process CPU ms (``time.process_time``: with one thread per library
it is the work done, and moves less than wall time when other processes load the machine).
photos/s is 1000 / the median of whole-photo times (decode + ``Reconstructor(image)`` + JSON, measured as
one loop, not the sum of the stage medians), without and with the dense mesh; no renders. ``--threads N``
caps TensorFlow (intra-op), LiteRT, OpenCV and OpenBLAS threads before anything is imported (0: library defaults).
The first calls at new batch sizes are reported too: the Keras predictor's graph is a ``tf.function`` with an input
signature (any batch size), so a photo with more faces costs no new trace.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mb05"), help="model directory")
    ap.add_argument("--assets", default=None, help="BlazeFace .tflite folder (default: $TF2DASL_ASSETS or ../shared/assets)")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--photo", default=None, help="a photo with one face instead of skimage's astronaut")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="threads per library (0: library defaults)")
    # tf2dasl.inference.RUNTIMES, spelt out: nothing that imports numpy may load before --threads is applied
    ap.add_argument("--runtime", default="keras", choices=("keras", "savedmodel", "tflite", "onnx"),
                    help="regressor backend (non-keras ones need --export-dir, as `reconstruct --runtime`)")
    ap.add_argument("--export-dir", default=str(REPO / "export" / "mb05"))
    ap.add_argument("--variant", default=None, help="the export's variant (tflite: float32|float16|int8, onnx: "
                                                   "float32|int8; default float32)")
    return ap.parse_args(argv)


def make_photo(path: str | None):
    """A 1280x720 BGR uint8 photo: the face photo scaled to 720 px high, reflect-padded to 1280 wide."""
    import cv2
    import numpy as np

    if path:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"{path}: cannot read")
    else:
        from skimage import data

        img = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    s = 720 / img.shape[0]
    w = min(1280, round(img.shape[1] * s))
    img = cv2.resize(img, (w, 720), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    left = (1280 - w) // 2
    return cv2.copyMakeBorder(img, 0, 0, left, 1280 - w - left, cv2.BORDER_REFLECT_101)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.threads > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import json
    import statistics

    import cv2
    import numpy as np
    import tensorflow as tf

    if args.threads > 0:
        cv2.setNumThreads(args.threads)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, str(REPO))
    from tf2dasl.api import image_record, make_reconstructor
    from tf2dasl.geometry.roi import roi_from_bbox, roi_from_landmarks
    from tf2dasl.io.images import read_image

    assets = args.assets or os.environ.get("TF2DASL_ASSETS") or str(REPO.parent / "shared" / "assets")
    photo = make_photo(args.photo)
    ok, jpg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "photo_720p.jpg"
    path.write_bytes(jpg.tobytes())

    t = time.perf_counter()
    opts = {"num_threads": args.threads} if args.threads > 0 else {}
    rec = make_reconstructor(args.model, args.detector, assets, opts, runtime=args.runtime,
                             export_dir=args.export_dir if args.runtime != "keras" else None,
                             num_threads=args.threads or None, variant=args.variant)
    load_s = time.perf_counter() - t
    size, predictor = rec.size, rec.predictor

    # first calls at new batch sizes (tf.function tracing), before anything else touches the model
    trace_ms = []
    for b in (1, 1, 2, 3, 2):
        crops = np.zeros((b, size, size, 3), np.uint8)
        t = time.perf_counter()
        predictor.predict(crops)
        trace_ms.append((b, (time.perf_counter() - t) * 1e3))
    traces = predictor._infer.experimental_get_tracing_count() if predictor.runtime == "keras" else 0

    image = read_image(path)
    state = {}

    def decode():
        state["image"] = read_image(path)

    def detect():
        boxes, scores = rec.detect(state["image"])
        state["boxes"], state["scores"] = boxes, scores
        state["fb"] = rec.detector.box_to_faceboxes(boxes) if len(boxes) else boxes

    def pass1():
        state["rois"] = roi_from_bbox(state["fb"])
        state["params"], state["lm"] = rec.regress(state["image"], state["rois"])

    def pass2():
        rois = roi_from_landmarks(state["lm"])
        params, lm = rec.regress(state["image"], rois)
        state["faces"] = rec.make_faces(state["boxes"], state["scores"], rois, params, lm)

    def dense():
        state["vertices"] = rec.add_vertices(state["faces"])

    def to_json():
        state["json"] = json.dumps(image_record(path, state["image"], state["faces"]))

    stages = [("decode", decode), ("detect", detect), ("crop + regress, pass 1", pass1),
              ("refine crop + regress, pass 2", pass2), ("dense mesh", dense), ("JSON", to_json)]
    decode(); detect()  # noqa: E702
    n_faces = len(state["boxes"])
    if n_faces == 0:
        raise SystemExit("no face detected in the photo")

    def photo_json():
        faces = rec(read_image(path))
        return json.dumps(image_record(path, image, faces))

    def photo_mesh():
        faces = rec(read_image(path))
        rec.add_vertices(faces)
        return json.dumps(image_record(path, image, faces))

    for _ in range(args.warmup):
        for _, fn in stages:
            fn()
        photo_json()
    times = {name: [] for name, _ in stages}
    cpu = {name: [] for name, _ in stages}
    whole_json, whole_mesh, cpu_json, cpu_mesh = [], [], [], []

    def timed(fn, wall, proc):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        proc.append((time.process_time() - c) * 1e3)

    for _ in range(args.runs):  # interleaved so that load changes hit every stage alike
        for name, fn in stages:
            timed(fn, times[name], cpu[name])
        timed(photo_json, whole_json, cpu_json)
        timed(photo_mesh, whole_mesh, cpu_mesh)

    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"tf {tf.__version__}, {os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f}), "
          f"threads per library: {args.threads or 'default'}; model {predictor.name} ({predictor.channels}-channel, "
          f"runtime {args.runtime}{' ' + args.variant if args.variant else ''}), "
          f"detector {rec.detector.name}; loaded in {load_s:.1f} s")
    print(f"photo: {'astronaut (skimage)' if not args.photo else args.photo} at 1280x720, JPEG {len(jpg) / 1024:.0f} KB, "
          f"{n_faces} face(s) detected; median of {args.runs} runs\n")
    print("| stage | wall ms (median) | wall p90 ms | CPU ms (median) |")
    print("|---|---|---|---|")
    for name, v in times.items():
        print(f"| {name} | {med[name]:.2f} | {np.percentile(v, 90):.2f} | {cmed[name]:.2f} |")
    no_mesh = sum(v for k, v in med.items() if k != "dense mesh")
    cpu_no_mesh = sum(v for k, v in cmed.items() if k != "dense mesh")
    print(f"| sum of stage medians, without dense mesh | {no_mesh:.2f} | | {cpu_no_mesh:.2f} |")
    wj, wm, cj, cm = (statistics.median(v) for v in (whole_json, whole_mesh, cpu_json, cpu_mesh))
    print(f"| whole photo (decode + Reconstructor + JSON) | {wj:.2f} | {np.percentile(whole_json, 90):.2f} | {cj:.2f} |")
    print(f"| whole photo with dense mesh | {wm:.2f} | {np.percentile(whole_mesh, 90):.2f} | {cm:.2f} |")
    print(f"\nphotos/s (1000 / whole-photo median): wall {1000 / wj:.1f} without renders or meshes (target >= 30), "
          f"{1000 / wm:.1f} with the dense mesh; from CPU time (what an otherwise idle core would give with "
          f"--threads 1): {1000 / cj:.1f} and {1000 / cm:.1f}")
    print("first predict calls (batch: ms): "
          + ", ".join(f"{b}: {ms:.0f}" for b, ms in trace_ms) + f"; tf.function traces: {traces}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
