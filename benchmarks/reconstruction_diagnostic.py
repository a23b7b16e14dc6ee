"""Where a model's 3D reconstruction error lives on the AFLW2000-3D dev slice (a monitor: for explaining, never for
choosing): the reconstruction and dense 3D NME per yaw bin of each model's parameters as predicted and with one part
replaced —

* ``camera → scaled rotation``: the 3x3 of ``[M | t]`` replaced by its nearest scaled rotation (``s R``, 3DDFA_V2's
  ``P2sRt``): what the camera's anisotropy (a depth row of the wrong length, shear) costs;
* ``mean identity``: the 40 shape coefficients set to 0; ``identity halved``: the 40 shape coefficients halved
  (halfway to the mean face); ``no expression``: the 10 expression coefficients set to 0.

A second table gives each model's mesh size against the ground truth's per yaw bin: ``size ratio`` is the mean of
``size(truth) / size(predicted)`` (root-mean-square distance of the protocol's every-50th vertices from their centroid;
1 = the right size, below 1 = meshes too big) and ``reconstruction, size matched`` the reconstruction NME with each
predicted mesh scaled about its centroid to the ground truth's size before the protocol's rigid ICP (which aligns
rotation and translation, never scale): what the size error costs; ``camera depth row`` is the length of the
predicted camera's third row over the mean length of its first two (1 for a scaled rotation, as the ground truth's;
below 1: depth flattened).

A third table (``--size-only`` too) asks whether the size error is a bias or per face: ``size ratio sd`` is the
standard deviation of the per-face ratios in each bin, ``reconstruction, bin size matched`` the reconstruction NME
with every predicted mesh scaled by its bin's *mean* ratio (what the best size correction common to a yaw bin could
give, against ``size matched`` per face), and ``size error, corr. with first`` the correlation of the per-face log
size ratios with those of the first model listed (the teacher, when it comes first: how much of a student's per-face
size error is inherited).

``--manual-refit`` adds an oracle no model can use (the test faces' own manual points): each model's parameters
refined to AFLW2000-3D's re-annotated 68 points (``profiling.refine``, prior 1: the camera and expression, or also the
identity; without the 17 jaw points, with only the chin among them, or with all), with the reconstruction NME and the
size ratio sd per bin — what the 68 points, and the jaw among them, know of a face's 3D size.

    python benchmarks/reconstruction_diagnostic.py models/mb05 runs/X/model ... [--params 2DASL=FILE.npy:3ddfa_v1]
                                                   [--data DIR] [--bfm PATH] [--size-only] [--manual-refit]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, shared_dir  # noqa: E402

sys.path.insert(0, str(REPO))

METRICS = ("reconstruction", "dense_3d")
CROP = 120  # the protocol's crop side
CHIN_68 = 8  # the 68-point chin, the only jaw point AFLW's 21 annotate
BINS = ("yaw_0_30", "yaw_30_60", "yaw_60_90", "mean")


def variants():
    import numpy as np

    from tf2dasl.geometry.morphable_model import EXPRESSION, SHAPE
    from tf2dasl.geometry.pose import params_to_sRt

    def rotation(p):
        s, r, _ = params_to_sRt(p)
        out = np.array(p, np.float32, copy=True)
        cam = out[:, :12].reshape(-1, 3, 4)
        cam[:, :, :3] = s[:, None, None] * r
        out[:, :12] = cam.reshape(-1, 12)
        return out

    def scale(part, k):
        def fn(p):
            out = np.array(p, np.float32, copy=True)
            out[:, part] *= k
            return out
        return fn

    return {"as predicted": lambda p: p, "camera → scaled rotation": rotation, "mean identity": scale(SHAPE, 0.0),
            "identity halved": scale(SHAPE, 0.5), "no expression": scale(EXPRESSION, 0.0)}


def rms_size(meshes, step: int | None = None):
    """``(N, V, 3)`` → ``(N,)`` the root-mean-square distance of the protocol's vertices (every 50th; ``step``: every
    ``step``-th point instead, 1 for all) from their centroid."""
    import numpy as np

    from tf2dasl.evaluate.dense import RECONSTRUCTION_STEP

    v = np.asarray(meshes, np.float64)[:, ::step or RECONSTRUCTION_STEP]
    return np.sqrt(((v - v.mean(axis=1, keepdims=True)) ** 2).sum(axis=-1).mean(axis=1))


def depth_row(params):
    """``(N, 62)`` raw → ``(N,)`` the camera's third row length over the mean of its first two (1 for a scaled
    rotation, below 1: depth flattened)."""
    import numpy as np

    rows = np.linalg.norm(np.asarray(params, np.float64)[:, :12].reshape(-1, 3, 4)[:, :, :3], axis=2)  # (N, 3)
    return rows[:, 2] / rows[:, :2].mean(axis=1)


def size_ratios(params, decoder, data, truth):
    """``(N,)`` ground-truth size over predicted size per face, the predicted meshes ``(N, V, 3)`` and the truth's."""
    import numpy as np

    pred = decoder.vertices(params, data.roi_boxes).astype(np.float64)
    gt = truth.vertices(np.arange(len(pred)))
    return rms_size(gt) / rms_size(pred), pred, gt


def scaled(pred, ratio):
    """Meshes ``(N, V, 3)`` scaled about their centroids by ``ratio (N,)``."""
    centre = pred.mean(axis=1, keepdims=True)
    return (pred - centre) * ratio[:, None, None] + centre


def bin_masks(yaws) -> dict:
    """Yaw bin name → ``(N,)`` bool of its faces."""
    from tf2dasl.evaluate.metrics import BIN_NAMES, yaw_masks

    return dict(zip(BIN_NAMES, yaw_masks(yaws)))


def bin_mean(values, masks):
    """``(N,)`` each face's value replaced by its yaw bin's mean (``masks``: :func:`bin_masks`)."""
    import numpy as np

    out = np.ones_like(values)
    for m in masks.values():
        out[m] = values[m].mean()
    return out


def per_bin(masks, fn) -> dict[str, float]:
    """``fn(mask)`` per yaw bin (``masks``: :func:`bin_masks`) and the bins' balanced mean."""
    import numpy as np

    out = {b: float(fn(m)) for b, m in masks.items()}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def header(groups, lead=()) -> None:
    """The header of a table: the model, the ``lead`` columns, then one column per group and yaw bin."""
    cells = ["model", *lead] + [f"{m} {b[4:].replace('_', '-') if b != 'mean' else 'mean'}" for m in groups
                                for b in BINS]
    print("| " + " | ".join(cells) + " |")
    print("|" + "---|" * len(cells))


def row(labels, cells) -> str:
    """A table row: the ``labels``, then each of ``cells`` (bin → value) per yaw bin."""
    return "| " + " | ".join([*labels] + [f"{c[b]:.3f}" for c in cells for b in BINS]) + " |"


def size_row(name, params, measured, yaws) -> str:
    """One row of the size table from ``measured`` (:func:`size_ratios` of ``params``): the size ratio, the
    size-matched reconstruction NME and the depth row per bin."""
    from tf2dasl.evaluate import reconstruction_nme, yaw_table

    ratio, pred, gt = measured
    cells = [{b: v / 100 for b, v in yaw_table(t, yaws).items()} for t in (ratio, depth_row(params))]
    cells.insert(1, yaw_table(reconstruction_nme(scaled(pred, ratio), gt), yaws))
    return row([name], cells)


def precision_row(name, measured, yaws, first_log_ratio) -> str:
    """One row of the size-precision table from ``measured`` (:func:`size_ratios`): per bin the sd of the per-face
    size ratios, the reconstruction NME at the bin's mean size, and the correlation of the per-face log ratios with
    ``first_log_ratio (N,)``'s."""
    import numpy as np

    from tf2dasl.evaluate import reconstruction_nme, yaw_table

    ratio, pred, gt = measured
    masks = bin_masks(yaws)
    corr = per_bin(masks, lambda m: np.corrcoef(np.log(ratio[m]), first_log_ratio[m])[0, 1])
    matched = yaw_table(reconstruction_nme(scaled(pred, bin_mean(ratio, masks)), gt), yaws)
    return row([name], [per_bin(masks, lambda m: ratio[m].std()), matched, corr])


def manual_refit_table(sources, measured, data, truth) -> None:
    """The ``--manual-refit`` table: each model's parameters refined to the re-annotated 68 points (module doc);
    ``measured``: each source's :func:`size_ratios` as predicted."""
    import numpy as np

    from tf2dasl.evaluate import reconstruction_nme, yaw_table
    from tf2dasl.geometry.camera import image_to_crop
    from tf2dasl.profiling.refine import ALL_POINTS, INNER_POINTS, refine_to_points

    manual = image_to_crop(data.ground_truth["reannotated"], data.roi_boxes, CROP, np.float64)   # (N, 68, 2)
    masks = bin_masks(data.yaws)
    header(("reconstruction", "size ratio sd"), ("refined to the re-annotated 68 points",))
    points = (("jaw out", INNER_POINTS), ("jaw out, chin in", np.r_[CHIN_68, INNER_POINTS]), ("jaw in", ALL_POINTS))
    modes = [("as predicted", None, None)] + [(f"{part}, {pts}", part == "camera, expression, identity", used)
                                             for part in ("camera, expression", "camera, expression, identity")
                                             for pts, used in points]
    for (name, params, decoder), as_predicted in zip(sources, measured):
        for label, shape, used in modes:
            ratio, pred, gt = as_predicted if used is None else size_ratios(np.stack([
                refine_to_points(decoder.mm, p, m, CROP, decoder.convention, prior=1.0, shape=shape, used=used)
                for p, m in zip(params, manual)]), decoder, data, truth)
            print(row([name, label], [yaw_table(reconstruction_nme(pred, gt), data.yaws),
                                      per_bin(masks, lambda m: ratio[m].std())]))
    print()


def variant_table(sources, data) -> None:
    """The first table: each model's reconstruction and dense 3D NME per yaw bin, as predicted and per variant."""
    import numpy as np

    from tf2dasl.evaluate import params_predictions, score_aflw2000

    header(METRICS, ("parameters",))
    for name, params, decoder in sources:
        for label, fn in variants().items():
            changed = fn(params)
            valid = np.isfinite(changed).all(axis=1)
            r = score_aflw2000(data, params_predictions(changed, valid, decoder), CROP, decoder, METRICS)
            print(row([name, label], [r[m] for m in METRICS]))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--params", action="append", default=[], metavar="NAME=FILE.npy:CONVENTION")
    ap.add_argument("--data", help="AFLW2000-3D (default: $TF2DASL_SHARED/data/aflw2000_3d_dev)")
    ap.add_argument("--bfm", help="decodes --params files (default: $TF2DASL_SHARED/assets/3ddfa_v2)")
    ap.add_argument("--size-only", action="store_true", help="print the size tables only")
    ap.add_argument("--manual-refit", action="store_true", help="add the oracle refit to the manual 68 points")
    args = ap.parse_args()
    data_dir = args.data or shared_dir() / "data" / "aflw2000_3d_dev"
    bfm = args.bfm or shared_dir() / "assets" / "3ddfa_v2"

    import numpy as np

    from tf2dasl.evaluate import load_aflw2000, load_params_file, model_under_test, params_decoder
    from tf2dasl.evaluate.dense_truth import load_dense_truth

    data = load_aflw2000(data_dir, CROP)
    sources = []
    for m in args.models:
        model = model_under_test("keras", m)
        sources.append((m, model.predictor.predict(data.crops).params, model.decoder))
    for spec in args.params:
        name, rest = spec.split("=", 1)
        path, conv = rest.rsplit(":", 1)
        params, _ = load_params_file(path, len(data.crops))
        sources.append((name, params, params_decoder(bfm, conv)))
    if not args.size_only:
        variant_table(sources, data)
    truth = load_dense_truth(data, sources[0][2].mm)
    measured = [size_ratios(params, decoder, data, truth) for _, params, decoder in sources]   # one decode each
    if args.manual_refit:
        manual_refit_table(sources, measured, data, truth)
    header(("size ratio", "reconstruction, size matched", "camera depth row"))
    for (name, params, _), m in zip(sources, measured):
        print(size_row(name, params, m, data.yaws))
    print()
    first = np.log(measured[0][0])
    header(("size ratio sd", "reconstruction, bin size matched", "size error, corr. with first"))
    for (name, _, _), m in zip(sources, measured):
        print(precision_row(name, m, data.yaws, first))

if __name__ == "__main__":
    main()
