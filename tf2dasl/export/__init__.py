"""Export a model directory for deployment: SavedModel (TF Serving), TFLite (mobile, GPU delegate) and ONNX.

This package owns the deployment artifacts and their description, one job per module: :mod:`.saved_model`
(the TF Serving module, in-graph image decoding/cropping, warm-up requests), :mod:`.mobile` (the TFLite graph
with the float16-safe :class:`LandmarkHead`, and its conversion), :mod:`.tflite_lint` (offline op and
GPU-delegate checks of a flatbuffer), :mod:`.onnx_graph` (the ONNX file: the graph built from the weights) over
:mod:`.onnx_layers` (Keras layers → NCHW ONNX nodes, BatchNorm folded), the int8 files — :mod:`.quantize`
(the exact uint8 input, full-integer TFLite) and :mod:`.onnx_quantize` (static QDQ ONNX), calibrated on the faces
the caller reads with :mod:`tf2dasl.data.calibration` —, :mod:`.manifest` (export.json, its input/output
descriptions read from the artifacts themselves), :mod:`.exporter` (``export_model``, atomic writes through
:mod:`tf2dasl.io.outputs`) and :mod:`.common` (the error and ``tf.Module`` plumbing). The
TensorFlow graphs call the task model (:class:`~tf2dasl.models.task.FaceTask`,
:class:`~tf2dasl.models.preprocessor.CropPreprocessor`) for preprocessing, the two passes and the morphable
decoding and re-implement none of it; the ONNX graph, written node by node for speed, is checked against that
task model whenever it is built. It must not import the CLI (:mod:`tf2dasl.commands`), the reconstructor/API,
training, evaluation or data pipelines, and :mod:`tf2dasl.inference` (whose runtimes read exports) must not
import it.

Layout of ``EXPORT_DIR`` (``NAME`` = the model spec's name, ``V`` = ``--version``, default 1)::

    EXPORT_DIR/
      export.json                      what every artifact is: files, inputs/outputs, normalisation, spec
      saved_model/NAME/V/              TF Serving's tree (mount EXPORT_DIR/saved_model as /models)
        saved_model.pb, variables/
        assets/model.json              the model directory's model.json
        assets.extra/tf_serving_warmup_requests
      NAME_float32.tflite              float32 normalised crops [1, S, S, 3] → params_whitened, landmarks
      NAME_float16.tflite              float16 weights (the GPU delegate recipe)
      NAME_int8.tflite                 full-integer int8: uint8 crops [1, S, S, 3] → the same outputs (XNNPACK QS8)
      NAME.onnx                        float32 normalised crops [N, 3, S, S] (NCHW) → params, landmarks (opset 17)
      NAME_with_map.onnx               4-channel models: crops and landmark maps [N, 1, S, S] → one pass
      NAME_int8.onnx                   static int8 QDQ: uint8 crops [N, 3, S, S] (NCHW) → params, landmarks

The SavedModel takes uint8 crops (or encoded images + roi boxes) and normalises inside; the float TFLite and ONNX
graphs take *normalised* float32 crops (the app normalises: 3DDFA_V2 weights want BGR, ``(x - 127.5) / 128``),
the int8 ones raw uint8 crops (their input's quantisation is the normalisation, docs/deployment.md), TFLite in NHWC, ONNX in NCHW (the layout of a PyTorch export such as 3DDFA_V2's; export.json's ``layout`` says
which, and a model whose backbone falls back to tf2onnx keeps NHWC). A 4-channel (2DASL) model runs its two
passes inside every graph; its artifacts still take 3-channel crops, and the float ones also offer one pass with a
given landmark map (the SavedModel's and float TFLite files' ``with_map`` signature, ``NAME_with_map.onnx``). The
morphable model's arrays are non-trainable *weights* (:class:`~tf2dasl.models.morphable.MorphableLayer`): ``tf.constant`` attributes break
tf2onnx's freezing silently, and TFLite conversion from concrete functions keeps resource ops.
"""
from __future__ import annotations

from ..inference.export_dir import (EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_JSON, ONNX_VARIANTS,  # noqa: F401
                                    TFLITE_VARIANTS)
from .common import ExportError, hold, tf_variables_of  # noqa: F401
from .exporter import FORMATS, check_formats, export_model  # noqa: F401
from .manifest import describe_function, describe_onnx, describe_tflite  # noqa: F401
from .mobile import LandmarkHead, MobileModule, convert_tflite, save_mobile  # noqa: F401
from .onnx_graph import ONNX_OPSET, convert_onnx, face_graph  # noqa: F401
from .saved_model import (SIGNATURES, WARMUP_BATCH_SIZES, ServingModule, decode_and_crop,  # noqa: F401
                          save_serving_model)
from .tflite_lint import (GPU_OPS, RESOURCE_OPS, TfliteModel, gpu_analysis, gpu_check, gpu_op_issues,  # noqa: F401
                          parse_tflite, tflite_ops)
