"""Face profiling, stage by stage, on one core: where a view's time goes, and how exact the flip-averaged fits are.

    python benchmarks/profiling_speed.py --config configs/dasl_mb05_profiled.yaml --model models/mb05 [--faces 48]

Takes ``--faces`` candidates of the config (spread over the list: 300-W and AFLW), runs the teacher on their crops
and mirror images, and reports (a) the fits: a mirrored fit mirrored back against the fit (px), the flip-averaged
fit's 68 landmarks against the flip average of the two fits' landmarks (px); (b) CPU milliseconds per source face
(work image, mirror fit, mesh + sheet) and per view (rotation, crop, render, JPEG) with BLAS on one thread, as one
worker process of ``tf2dasl profile`` runs them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--faces", type=int, default=48)
    args = ap.parse_args()

    import cv2
    import numpy as np

    from tf2dasl.api import load_model
    from tf2dasl.data.teacher import flip_average_landmarks
    from tf2dasl.io.outputs import encode_image
    from tf2dasl.io.yaml_config import load_config
    from tf2dasl.profiling.config import ProfiledDataConfig
    from tf2dasl.profiling.dataset import training_faces
    from tf2dasl.profiling.fitting import MeshFitter
    from tf2dasl.profiling.poses import plan_views
    from tf2dasl.profiling.sources import load_source
    from tf2dasl.profiling.teacher import Teacher
    from tf2dasl.profiling.views import Profiler, Source
    from tf2dasl.training.train_config import TrainConfig, expand_data_paths

    cv2.setNumThreads(1)
    cfg = load_config(args.config, TrainConfig)
    expand_data_paths(cfg)
    prof = cfg.data.profiled or ProfiledDataConfig()
    teacher = Teacher.from_model(load_model(args.model))
    mm, size, conv = teacher.decoder.mm, teacher.decoder.size, teacher.decoder.convention
    cands = training_faces(cfg.data.wild, prof.select)
    faces = [cands[i] for i in np.linspace(0, len(cands) - 1, args.faces).round().astype(int)]
    crops = np.stack([load_source(f, size).crop for f in faces])
    plain = teacher.params(crops)
    mirrored = teacher.params(np.ascontiguousarray(crops[:, :, ::-1]))
    fitter = MeshFitter(mm, size, conv)
    profiler = Profiler(mm, size, conv, prof.surround)

    back = fitter.mirror(fitter.mirror(plain))
    avg = fitter.flip_average(plain, mirrored)
    lm, mesh = teacher.decoder.landmarks, teacher.decoder.vertices
    flip_lm = flip_average_landmarks(lm(plain)[..., :2], lm(mirrored)[..., :2], size)
    print(f"{len(faces)} faces: mirrored twice vs the fit, dense mesh: "
          f"{np.abs(mesh(back) - mesh(plain)).mean():.3f} px mean; flip-averaged fit's 68 landmarks vs "
          f"the flip average of the two fits' landmarks: "
          f"{np.linalg.norm(lm(avg)[..., :2] - flip_lm, axis=-1).mean():.3f} px mean")

    clock = time.process_time
    spent = dict.fromkeys(("work image", "mirror fit", "mesh + sheet", "view", "JPEG"), 0.0)
    views = 0
    t_wall = time.time()
    for i, face in enumerate(faces):
        t = clock()
        src = load_source(face, size)
        spent["work image"] += clock() - t
        t = clock()
        mirror = fitter.mirror(avg[i:i + 1])[0]
        spent["mirror fit"] += clock() - t
        t = clock()
        w = src.work.shape[1]
        x0, y0, x1, y1 = src.roi
        preps = {False: profiler.prepare(Source(face.image_path, src.work, src.roi, avg[i])),
                 True: profiler.prepare(Source(face.image_path, np.ascontiguousarray(src.work[:, ::-1]),
                                               np.array([w - x1, y0, w - x0, y1]), mirror))}
        spent["mesh + sheet"] += clock() - t
        for plan in plan_views(np.zeros(3), prof.poses, prof.seed, i):
            t = clock()
            view = profiler.view(preps[plan.mirrored], plan.pose)
            spent["view"] += clock() - t
            t = clock()
            encode_image("v.jpg", view.image, (cv2.IMWRITE_JPEG_QUALITY, prof.quality))
            spent["JPEG"] += clock() - t
            views += 1
    wall = time.time() - t_wall
    per_face = sum(spent[k] for k in ("work image", "mirror fit", "mesh + sheet")) / len(faces)
    per_view = (spent["view"] + spent["JPEG"]) / views
    print("| stage | CPU ms |\n|---|---|")
    for k, v in spent.items():
        unit = len(faces) if k in ("work image", "mirror fit", "mesh + sheet") else views
        print(f"| {k} (per {'source face' if unit == len(faces) else 'view'}) | {1000 * v / unit:.1f} |")
    total = per_face / prof.poses.views + per_view
    print(f"{prof.poses.views} views per face: {1000 * total:.1f} CPU ms per view in all "
          f"({1000 * wall / views:.1f} ms wall per view here); 30,000 views on 2 processes: "
          f"{30000 * total / 2 / 60:.1f} min of CPU each; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
