"""Is there per-face size information in ../shared beyond the teacher's? On the AFLW2000-3D dev slice (a monitor: for
explaining, never for choosing), for each model listed:

* **averaging** (first table): the reconstruction NME and the per-face size ratio's sd per yaw bin of the parameters
  as predicted; of the model's fit of the crop averaged with its fit of the crop's mirror image mirrored back
  (:meth:`tf2dasl.profiling.fitting.MeshFitter.flip_average`, as the profiling sources are fitted); of the mean of its
  parameters over :data:`JITTERS` (similarity transforms of the crop, each prediction mapped back by
  :func:`tf2dasl.data.teacher.transform_params`); and, one row, the mean of every listed model's parameters (an
  ensemble). What averaging over views or models removes of the per-face size error: if that error were noise, these
  rows would shrink it.
* **a second opinion** (second table): MediaPipe's face mesh (``assets/detectors/face_landmark.tflite``, 468 3D
  points from a 192x192 crop, trained on other data than the teacher's 300W-LP). ``corr.`` is, per yaw bin, the
  correlation of the log of MediaPipe's 3D size over the model's (root-mean-square radius of the points, crop pixels)
  with the model's log size error (ground truth over predicted, as in ``reconstruction_diagnostic.py --size-only``);
  ``bin mean size`` scales every mesh by its bin's mean size ratio, ``+ MediaPipe`` by the best linear function of
  that log ratio per bin. Both take their coefficients from the dev slice's own truth: oracles, the most that a size
  correction common to a bin, or one read from MediaPipe, could give.

The models listed share one morphable model and crop convention (every model trained from an import does).

    python benchmarks/size_sources.py models/mb05 runs/X/model ... [--data DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, shared_dir  # noqa: E402
from reconstruction_diagnostic import (CROP, bin_masks, bin_mean, header, per_bin, rms_size, row,  # noqa: E402
                                       scaled, size_ratios)

sys.path.insert(0, str(REPO))

#: crop jitters averaged: (scale, shift x, shift y in crop pixels) about the crop's centre
JITTERS = ((1.0, 0, 0), (0.93, 0, 0), (1.07, 0, 0), (1.0, 4, 0), (1.0, -4, 0), (1.0, 0, 4), (1.0, 0, -4),
           (0.95, 3, 3), (1.05, -3, -3))
MP_INPUT = 192    # MediaPipe face mesh's input side
MP_MARGIN = 0.2   # the protocol crop is tighter than MediaPipe's detection box: padded by this fraction of its side
MP_POINTS = 468


def jitter_affine(scale: float, dx: float, dy: float, size: int):
    """``(2, 3)`` crop pixels → jittered crop pixels: ``scale`` about the crop's centre, then the shift."""
    import numpy as np

    c = (size - 1) / 2
    return np.array([[scale, 0, c - scale * c + dx], [0, scale, c - scale * c + dy]], np.float32)


def jitter_average(predict, crops, convention):
    """``(N, 62)``: the mean over :data:`JITTERS` of ``predict`` on each jittered crop, mapped back to the crop."""
    import cv2
    import numpy as np

    from tf2dasl.data.teacher import transform_params

    out = []
    for j in JITTERS:
        a = jitter_affine(*j, CROP)
        moved = np.stack([cv2.warpAffine(c, a, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                          for c in crops])
        back = np.repeat(cv2.invertAffineTransform(a)[None], len(crops), axis=0)
        out.append(transform_params(predict(moved), back, CROP, convention).numpy())
    return np.mean(out, axis=0)


def mediapipe_points(crops, model_path):
    """``(N, 468, 3)`` MediaPipe face mesh points of BGR ``crops (N, S, S, 3)``, x and y in crop pixels, z in the same
    scale (MediaPipe's convention), from each crop padded by :data:`MP_MARGIN` (replicated border)."""
    import cv2
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(model_path))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (mesh,) = [o for o in interpreter.get_output_details() if int(np.prod(o["shape"])) == 3 * MP_POINTS]
    out = []
    for crop in crops:
        pad = int(round(MP_MARGIN * crop.shape[0]))
        big = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x = cv2.resize(big[:, :, ::-1], (MP_INPUT, MP_INPUT), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        pts = interpreter.get_tensor(mesh["index"]).reshape(MP_POINTS, 3).astype(np.float64) * big.shape[0] / MP_INPUT
        pts[:, :2] -= pad
        out.append(pts)
    return np.stack(out)


def fused_ratios(log_error, log_opinion, masks):
    """``(N,)`` size ratios: per bin, the least-squares line from ``log_opinion`` to ``log_error`` (an oracle: fitted
    on the truth it predicts), exponentiated."""
    import numpy as np

    fit = np.zeros_like(log_error)
    for m in masks.values():
        a = np.stack([log_opinion[m], np.ones(m.sum())], axis=1)
        fit[m] = a @ np.linalg.lstsq(a, log_error[m], rcond=None)[0]
    return np.exp(fit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", help="AFLW2000-3D (default: $TF2DASL_SHARED/data/aflw2000_3d_dev)")
    args = ap.parse_args()
    shared = shared_dir()
    data_dir = args.data or shared / "data" / "aflw2000_3d_dev"

    import numpy as np

    from tf2dasl.evaluate import load_aflw2000, model_under_test, reconstruction_nme, yaw_table
    from tf2dasl.evaluate.dense_truth import load_dense_truth
    from tf2dasl.profiling.fitting import MeshFitter

    data = load_aflw2000(data_dir, CROP)
    masks = bin_masks(data.yaws)
    models = [model_under_test("keras", m) for m in args.models]
    decoder = models[0].decoder
    if any(m.decoder.convention != decoder.convention or m.decoder.mm.num_vertices != decoder.mm.num_vertices
           for m in models):
        sys.exit("the models listed must share one morphable model and crop convention (every model trained "
                 "from an import does)")
    truth = load_dense_truth(data, decoder.mm)
    fitter = MeshFitter(decoder.mm, CROP, decoder.convention)

    def predict(model, crops):
        return model.predictor.predict(np.ascontiguousarray(crops)).params

    def cells(params, measured=None):
        ratio, pred, gt = measured or size_ratios(params, decoder, data, truth)
        return [yaw_table(reconstruction_nme(pred, gt), data.yaws), per_bin(masks, lambda m: ratio[m].std())]

    header(("reconstruction", "size ratio sd"), ("parameters",))
    predicted, measured = [], []   # each model's parameters as predicted and their size_ratios: decoded once
    for name, model in zip(args.models, models):
        plain = predict(model, data.crops)
        predicted.append(plain)
        measured.append(size_ratios(plain, decoder, data, truth))
        print(row([name, "as predicted"], cells(plain, measured[-1])))
        rows = {"flip-averaged fit": fitter.flip_average(plain, predict(model, data.crops[:, :, ::-1])),
                f"mean over {len(JITTERS)} crop jitters": jitter_average(lambda c: predict(model, c), data.crops,
                                                                       decoder.convention)}
        for label, params in rows.items():
            print(row([name, label], cells(params)))
    if len(models) > 1:
        print(row(["every model listed", "mean of the parameters"], cells(np.mean(predicted, axis=0))))
    print()

    points = mediapipe_points(data.crops, shared / "assets" / "detectors" / "face_landmark.tflite")
    mp_size = rms_size(points, step=1)
    header(("corr.", "as predicted", "bin mean size", "+ MediaPipe"))
    for name, params, (ratio, pred, gt) in zip(args.models, predicted, measured):
        log_error = np.log(ratio)
        log_opinion = np.log(mp_size / rms_size(decoder.crop_points(params, dense=True)))
        corr = per_bin(masks, lambda m: np.corrcoef(log_error[m], log_opinion[m])[0, 1])
        print(row([name], [corr] + [yaw_table(reconstruction_nme(scaled(pred, r), gt), data.yaws) for r in
                                    (np.ones_like(ratio), bin_mean(ratio, masks),
                                     fused_ratios(log_error, log_opinion, masks))]))


if __name__ == "__main__":
    main()
