"""The pieces of the benchmarks that carry claims docs/deployment.md quotes: the MAC count behind the latency floor and the
ideal ONNX graph it is timed against (random weights, no shared data needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from synthetic import random_morphable_model  # noqa: E402

from tf2dasl.models.mobilenet_v1 import BLOCKS  # noqa: E402
from tf2dasl.models.spec import STEM_CHANNELS, ModelSpec  # noqa: E402
from tf2dasl.models.task import FaceTask  # noqa: E402


@pytest.fixture(scope="module")
def random_mb05():
    task = FaceTask(ModelSpec(name="mb05_random", width=0.5), random_morphable_model())
    rng = np.random.default_rng(0)
    for layer in task.regressor.backbone.layers:  # random BN statistics too, so that folding them is exercised
        ws = layer.get_weights()
        if len(ws) == 4:  # gamma, beta, moving mean, moving variance
            c = ws[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 2.0, c)])
    return task


def _macs_by_hand(width: float, size: int, params: int) -> int:
    """MobileNetV1 from its block table: stem 3x3/2 conv, then per block a 3x3 depthwise and a 1x1 conv."""
    side = (size + 1) // 2
    c = int(STEM_CHANNELS * width)
    total = side * side * c * 9 * 3
    for _, _, cout, stride in BLOCKS:
        side = (side + 1) // 2 if stride == 2 else side
        total += side * side * c * 9 + side * side * c * int(cout * width)
        c = int(cout * width)
    return total + c * params


def test_mac_count_matches_the_block_table(random_mb05):
    from latency_floor import count_macs

    macs = count_macs(random_mb05)
    assert macs == _macs_by_hand(0.5, 120, 62)
    assert 46e6 < macs < 47e6  # the figure docs/deployment.md's floor divides by


@pytest.mark.parametrize("batch,n", [(1, 1), ("N", 3)])  # 3DDFA_V2's fixed batch 1; free for export_speed's batch 8
def test_ideal_onnx_graph_equals_keras(random_mb05, batch, n):
    from latency_floor import direct_graph, session

    x = np.random.default_rng(1).normal(0, 1, (n, 120, 120, 3)).astype(np.float32)
    want = random_mb05.regressor(x, training=False).numpy()
    got = session(direct_graph(random_mb05, batch), 1).run(None, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
