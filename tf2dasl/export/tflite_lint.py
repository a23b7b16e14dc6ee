"""Offline checks of a TFLite flatbuffer: the ops it uses (:func:`tflite_ops`) and whether TFLite's GPU delegate
takes every one of them (:func:`gpu_op_issues`, :func:`gpu_check`). Reads bytes only: no conversion here.

A file is parsed once (:func:`parse_tflite`, a :class:`TfliteModel`) and every check reads that parse; the checks
also take the bytes themselves (parsed there) for one-off use."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from dataclasses import dataclass

import tensorflow as tf
# the flatbuffer schema's generated classes, an internal module: neither TensorFlow nor LiteRT has a public reader
# of a model's operators and tensors (the public Analyzer only prints text), and the GPU rules need both
from tensorflow.lite.python import schema_py_generated as schema

#: TFLite ops that mean the weights were not frozen (the model would read uninitialised variables).
RESOURCE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
#: the schema's builtin op codes and tensor types → their names
OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TENSOR_TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class TfliteModel:
    """A TFLite flatbuffer (``content``) and its object tree (``tree``, the schema's ``ModelT``), parsed once."""

    content: bytes
    tree: schema.ModelT


def parse_tflite(model: bytes | TfliteModel) -> TfliteModel:
    """A TFLite flatbuffer's bytes parsed into a :class:`TfliteModel` (one already parsed is returned as it is)."""
    if isinstance(model, TfliteModel):
        return model
    return TfliteModel(bytes(model), schema.ModelT.InitFromPackedBuf(bytearray(model), 0))


def _op_name(operator_code) -> str:
    """The name of one of a model's operator codes (``CUSTOM:<name>`` for a custom op)."""
    code = max(int(operator_code.builtinCode), int(operator_code.deprecatedBuiltinCode))
    if code == schema.BuiltinOperator.CUSTOM:
        cc = operator_code.customCode
        return f"CUSTOM:{cc.decode() if isinstance(cc, bytes) else cc}"
    return OP_NAMES.get(code, str(code))


def tflite_ops(model: bytes | TfliteModel) -> list[str]:
    """Op names used by a TFLite flatbuffer (``FLEX_*`` / custom names reveal non-builtin ops)."""
    return sorted({_op_name(oc) for oc in parse_tflite(model).tree.operatorCodes})


#: Builtin ops TFLite's GPU delegate takes (``CheckGpuDelegateCompatibility`` in TF's
#: ``lite/tools/versioning/gpu_compatibility.cc``), with the per-op rules of :func:`gpu_op_issues`.
GPU_OPS = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD
FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC
LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE
REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT
SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE
STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())


def op_outputs(model: bytes | TfliteModel, subgraph: int = 0) -> list[tuple[str, str, str]]:
    """``(op name, first output tensor's name, its type)`` of every operator of one subgraph of a TFLite flatbuffer,
    in execution order (types as the schema names them: ``FLOAT32``, ``INT8``, ...)."""
    m = parse_tflite(model).tree
    sg, out = m.subgraphs[subgraph], []
    for op in sg.operators:
        t = sg.tensors[op.outputs[0]]
        out.append((_op_name(m.operatorCodes[op.opcodeIndex]), t.name.decode(),
                    TENSOR_TYPES.get(t.type, str(t.type))))
    return out


def gpu_op_issues(model: bytes | TfliteModel) -> list[str]:
    """Offline check of a TFLite flatbuffer against the GPU delegate's op rules; one line per problem.

    TF 2.21's pip build of the model analyzer prints "looks compatible with GPU delegate" for any model
    (checked: UNIQUE, WHERE, TOPK_V2 pass), so this re-implements the part of TF's
    ``CheckGpuDelegateCompatibility`` that matters for our graphs: the supported op set, STRIDED_SLICE/SLICE
    on 3D/4D tensors only without ellipsis/new-axis/shrink masks, GATHER with 1D int32 indices on a
    non-int32 input, FULLY_CONNECTED with a runtime input, no hybrid (int8-weight, float-input) convolutions
    or fully-connected layers, CAST between float32/int32/bool only, MUL of two
    same-rank tensors where one is not smaller in every dimension, and float32/float16/int32/bool tensors.
    """
    m = parse_tflite(model).tree
    ok_types = {"FLOAT32", "FLOAT16", "INT32", "BOOL", "INT8", "UINT8"}
    issues = []
    for sgi, sg in enumerate(m.subgraphs):
        const = {i for i, t in enumerate(sg.tensors) if m.buffers[t.buffer].data is not None and
                 len(m.buffers[t.buffer].data)}

        def shape(i):
            return [int(d) for d in sg.tensors[i].shape] if sg.tensors[i].shape is not None else []

        def ttype(i):
            return TENSOR_TYPES.get(sg.tensors[i].type, str(sg.tensors[i].type))

        for oi, op in enumerate(sg.operators):
            name = _op_name(m.operatorCodes[op.opcodeIndex])
            where = f"subgraph {sgi} op {oi} {name}"
            ins = [int(i) for i in op.inputs if i >= 0]
            opts = op.builtinOptions
            if name not in GPU_OPS:
                issues.append(f"{where}: not supported by the GPU delegate")
                continue
            bad_types = sorted({ttype(i) for i in ins + [int(o) for o in op.outputs]} - ok_types)
            if bad_types:
                issues.append(f"{where}: tensor types {bad_types}")
            if name in ("STRIDED_SLICE", "SLICE") and len(shape(ins[0])) not in (3, 4):
                issues.append(f"{where}: slices a {len(shape(ins[0]))}D tensor (GPU: 3D or 4D only)")
            if name == "STRIDED_SLICE" and opts is not None and (opts.ellipsisMask or opts.newAxisMask or
                                                                  opts.shrinkAxisMask):
                issues.append(f"{where}: ellipsis/new-axis/shrink mask")
            if name == "GATHER" and (ttype(ins[0]) == "INT32" or len(shape(ins[1])) != 1 or ttype(ins[1]) != "INT32"):
                issues.append(f"{where}: needs a non-int32 input and 1D int32 indices")
            if name == "FULLY_CONNECTED" and ins[0] in const:
                issues.append(f"{where}: constant input")
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(ins) > 1 and \
                    ttype(ins[0]) in ("FLOAT32", "FLOAT16") and ttype(ins[1]) == "INT8":
                issues.append(f"{where}: hybrid kernel (int8 weights, float input)")
            if name == "CAST":
                pair = (ttype(ins[0]), ttype(int(op.outputs[0])))
                allowed = {("BOOL", "FLOAT32"), ("BOOL", "FLOAT16"), ("FLOAT32", "BOOL"), ("FLOAT16", "BOOL"),
                           ("FLOAT32", "INT32"), ("INT32", "FLOAT32"), ("FLOAT32", "FLOAT32"), ("INT32", "INT32")}
                if pair not in allowed:
                    issues.append(f"{where}: cast {pair[0]} -> {pair[1]}")
            if name == "MUL" and len(ins) == 2:
                a, b = shape(ins[0]), shape(ins[1])
                if len(a) == len(b) and any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                    issues.append(f"{where}: broadcasts both inputs {a} x {b}")
    return issues


def gpu_check(model: bytes | TfliteModel) -> tuple[bool, list[str], str]:
    """GPU-delegate compatibility of a TFLite flatbuffer: ``(compatible, issues, report)``.

    ``issues``: :func:`gpu_op_issues`' lines; the report is TFLite's analyzer output
    (``Analyzer.analyze(gpu_compatibility=True)``, captured at the file descriptor level since it prints from C++)
    followed by those issues; compatible means the analyzer reports no incompatibility *and* there are no issues.
    """
    model = parse_tflite(model)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                tf.lite.experimental.Analyzer.analyze(model_content=model.content, gpu_compatibility=True)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = buf.getvalue() + tmp.read().decode(errors="replace")
    analyzer_ok = "looks compatible with GPU delegate" in text and "GPU COMPATIBILITY WARNING" not in text.upper()
    issues = gpu_op_issues(model)
    text += "\n=== tf2dasl GPU op check ===\n" + ("\n".join(issues) if issues else "no GPU-incompatible ops") + "\n"
    return analyzer_ok and not issues, issues, text


def gpu_analysis(model: bytes | TfliteModel) -> tuple[bool, str]:
    """``(compatible, report)`` of :func:`gpu_check`."""
    ok, _, report = gpu_check(model)
    return ok, report
