"""Keras layers → ONNX nodes, written the way a hand-made inference graph is: NCHW, BatchNorm folded into the
convolution before it, zero padding inside the convolution's ``pads``, no transposes.

:class:`GraphBuilder` collects nodes and initializers (``onnx.helper``); :func:`backbone_nodes` walks a Keras
functional backbone (MobileNetV1/V2, ResNet-50: the layer types of :data:`SUPPORTED`) in topological order and
emits its nodes; a layer it does not know raises :class:`UnsupportedLayer` (the caller falls back to tf2onnx).
Weights are read from the layers (``get_weights``) and folded in float64. The same backbone emitted twice with
another ``prefix`` shares its initializers (2DASL's two passes store the weights once).
"""
from __future__ import annotations

import collections

import keras
import numpy as np
from onnx import helper, numpy_helper

SUPPORTED = ("InputLayer", "ZeroPadding2D", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU",
             "Activation", "Add", "MaxPooling2D", "GlobalAveragePooling2D", "Dropout")


#: BatchNormalization ``axis`` values meaning "the channels of an NHWC image"
CHANNEL_AXES = (-1, 3, [-1], [3])


class UnsupportedLayer(Exception):
    """A layer (type or configuration) the ONNX builder does not translate."""


class GraphBuilder:
    """Nodes and initializers of one ONNX graph; value names are made unique."""

    def __init__(self):
        self.nodes, self.initializers = [], {}
        self._used = collections.Counter()

    def fresh(self, base: str) -> str:
        """``base``, or ``base_<n>`` when a value or initializer already has that name."""
        name = base
        while name in self._used or name in self.initializers:
            self._used[base] += 1
            name = f"{base}_{self._used[base]}"
        self._used[name] += 1
        return name

    def const(self, name: str, value, dtype=np.float32) -> str:
        """An initializer (created once per name: a second call with the same name reuses it)."""
        if name in self._used:
            raise ValueError(f"initializer name {name!r} is already a node output")
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, outputs: int = 1, **attrs):
        """Add a node; returns its output name (or names when ``outputs > 1``)."""
        base = self.fresh(name or op_type.lower())
        outs = [base] if outputs == 1 else [f"{base}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=base, **attrs))
        return outs[0] if outputs == 1 else outs

    def rename(self, old: str, new: str) -> None:
        """Give the value ``old`` the name ``new`` everywhere (graph outputs get their public names this way)."""
        for node in self.nodes:
            node.input[:] = [new if v == old else v for v in node.input]
            node.output[:] = [new if v == old else v for v in node.output]


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's ``same`` padding along one axis: (before, after); the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(layer, in_shape, extra=(0, 0, 0, 0)) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right] of a conv/pool layer on an NHWC input shape, plus ``extra``."""
    kh, kw = (layer.kernel_size if hasattr(layer, "kernel_size") else layer.pool_size)
    sh, sw = layer.strides
    dh, dw = getattr(layer, "dilation_rate", (1, 1))
    if layer.padding == "valid":
        p = [0, 0, 0, 0]
    elif layer.padding == "same":
        (t, b), (le, r) = _same_pads(in_shape[1], kh, sh, dh), _same_pads(in_shape[2], kw, sw, dw)
        p = [t, le, b, r]
    else:
        raise UnsupportedLayer(f"{layer.name}: padding {layer.padding!r}")
    return [a + b for a, b in zip(p, extra)]


def _activation(g: GraphBuilder, layer, x: str, name: str) -> str:
    act = getattr(layer.activation, "__name__", str(layer.activation))
    if act == "linear":
        return x
    if act == "relu":
        return g.op("Relu", [x], name + "_relu")
    raise UnsupportedLayer(f"{layer.name}: activation {act!r}")


def _bn_fold(bn) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization layer (inference) as ``y = x * scale + shift`` per channel (float64)."""
    ws = [np.asarray(w, np.float64) for w in bn.get_weights()]
    gamma = ws.pop(0) if bn.scale else None
    beta = ws.pop(0) if bn.center else None
    mean, var = ws
    scale = (gamma if gamma is not None else 1.0) / np.sqrt(var + bn.epsilon)
    shift = (beta if beta is not None else 0.0) - mean * scale
    return np.broadcast_to(scale, mean.shape), shift


def _check_layout(layer) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayer(f"{layer.name}: data_format {layer.data_format}")


def backbone_nodes(g: GraphBuilder, backbone, x: str, prefix: str = "") -> str:
    """Emit the nodes of a Keras functional ``backbone`` (``(N, H, W, C)`` → pooled ``(N, F)``) reading the NCHW
    value ``x``; returns the name of the ``(N, F)`` feature. Initializers are named by layer (shared across
    prefixes); node outputs carry ``prefix``."""
    nodes = [n for d in sorted(backbone._nodes_by_depth, reverse=True) for n in backbone._nodes_by_depth[d]]
    consumers = collections.defaultdict(list)
    for node in nodes:
        for t in node.input_tensors:
            consumers[id(t)].append(node.operation)
    values = {id(backbone.inputs[0]): x}
    pad_of = {}  # tensor id -> zero padding folded into the consumers' pads [top, left, bottom, right]
    folded_bn = set()
    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    for node in nodes:
        layer = node.operation
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind not in SUPPORTED:
            raise UnsupportedLayer(f"{layer.name}: layer type {kind}")
        _check_layout(layer)
        ins = [values[id(t)] for t in node.input_tensors]
        out_t = node.outputs[0]
        name = prefix + layer.name
        if kind in ("Dropout",) or id(layer) in folded_bn:
            values[id(out_t)] = ins[0]
            continue
        if kind == "ZeroPadding2D":
            (t, b), (le, r) = layer.padding
            if all(isinstance(c, convs) for c in consumers[id(out_t)]):
                values[id(out_t)] = ins[0]
                pad_of[id(out_t)] = [t, le, b, r]
            else:
                pads = g.const(layer.name + "_pads", [0, 0, t, le, 0, 0, b, r], np.int64)
                values[id(out_t)] = g.op("Pad", [ins[0], pads], name)
            continue
        if isinstance(layer, convs):
            in_t = node.input_tensors[0]
            k = np.asarray(layer.get_weights()[0], np.float64)  # (kh, kw, cin/groups, cout) or (kh, kw, cin, m)
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                kh, kw, cin, mult = k.shape
                w = k.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]
                group = cin
            else:
                w, group = k.transpose(3, 2, 0, 1), int(getattr(layer, "groups", 1))
            b = np.asarray(layer.get_weights()[1], np.float64) if layer.use_bias else np.zeros(w.shape[0])
            next_layers = consumers[id(out_t)]
            act = getattr(layer.activation, "__name__", "linear")
            bn = next_layers[0] if len(next_layers) == 1 else None
            if act == "linear" and isinstance(bn, keras.layers.BatchNormalization) and bn.axis in CHANNEL_AXES:
                scale, shift = _bn_fold(bn)
                w, b = w * scale[:, None, None, None], b * scale + shift
                folded_bn.add(id(bn))
            y = g.op("Conv", [ins[0], g.const(layer.name + "_w", w), g.const(layer.name + "_b", b)], name,
                     kernel_shape=list(w.shape[2:]), strides=list(layer.strides),
                     dilations=list(layer.dilation_rate), group=group,
                     pads=_pads(layer, in_t.shape, pad_of.get(id(in_t), (0, 0, 0, 0))))
            values[id(out_t)] = _activation(g, layer, y, name)
            continue
        if kind == "BatchNormalization":
            if layer.axis not in CHANNEL_AXES or len(node.input_tensors[0].shape) != 4:
                raise UnsupportedLayer(f"{layer.name}: BatchNormalization other than over the channels of an image")
            scale, shift = _bn_fold(layer)
            c = len(scale)
            y = g.op("Mul", [ins[0], g.const(layer.name + "_scale", scale.reshape(1, c, 1, 1))], name + "_mul")
            values[id(out_t)] = g.op("Add", [y, g.const(layer.name + "_shift", shift.reshape(1, c, 1, 1))], name)
            continue
        if kind == "ReLU":
            mx, slope, th = layer.max_value, float(layer.negative_slope), float(layer.threshold)
            if th != 0.0 or (slope != 0.0 and mx is not None):
                raise UnsupportedLayer(f"{layer.name}: ReLU(max_value={mx}, negative_slope={slope}, threshold={th})")
            if slope != 0.0:
                values[id(out_t)] = g.op("LeakyRelu", ins, name, alpha=slope)
            elif mx is None:
                values[id(out_t)] = g.op("Relu", ins, name)
            else:
                lo, hi = g.const("zero_f", 0.0), g.const(f"clip_{float(mx):g}", float(mx))
                values[id(out_t)] = g.op("Clip", [ins[0], lo, hi], name)
            continue
        if kind == "Activation":
            values[id(out_t)] = _activation(g, layer, ins[0], name)
            continue
        if kind == "Add":
            y = ins[0]
            for other in ins[1:]:
                y = g.op("Add", [y, other], name)
            values[id(out_t)] = y
            continue
        if kind == "MaxPooling2D":
            in_t = node.input_tensors[0]
            values[id(out_t)] = g.op("MaxPool", ins, name, kernel_shape=list(layer.pool_size),
                                     strides=list(layer.strides), pads=_pads(layer, in_t.shape))
            continue
        if kind == "GlobalAveragePooling2D":
            if layer.keepdims:
                raise UnsupportedLayer(f"{layer.name}: keepdims=True")
            values[id(out_t)] = g.op("Flatten", [g.op("GlobalAveragePool", ins, name)], name + "_flat")
            continue
        raise UnsupportedLayer(f"{layer.name}: layer type {kind}")  # pragma: no cover - SUPPORTED covers the rest
    out = values.get(id(backbone.outputs[0]))
    if out is None or len(backbone.outputs[0].shape) != 2:
        raise UnsupportedLayer(f"{backbone.name}: the output must be a pooled (N, F) feature")
    return out
