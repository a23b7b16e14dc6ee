"""Face profiling: large-pose faces with exact 3D labels, made from near-frontal photos (3DDFA's 300W-LP recipe).

Owns the choice of source faces where a teacher is reliable, the flip-averaged fits, the synthesis of new views
(the fitted mesh rotated out of plane with the image around it warped by an extrapolated depth), and the
on-disk data set they make (3DDFA's layout: crops, a list, raw parameters), cached by content and resumable.
Sits beside training, over :mod:`tf2dasl.data` and :mod:`tf2dasl.inference`: must not import TensorFlow or Keras
itself (a teacher is a loaded model run through the predictor contract, :class:`.teacher.Teacher`), the models,
training, the CLI, evaluation, export or the photo pipeline. The views are rendered by worker processes that
import numpy, OpenCV, SciPy and this package's numpy modules only (:mod:`.shards`), never TensorFlow: so this
package imports only those modules here, and the set on disk is :func:`.dataset.make_profiled_set` with its
settings :class:`.config.ProfiledDataConfig` (both import :mod:`tf2dasl.data`'s TensorFlow pipeline).
"""
from .fitting import MeshFitter  # noqa: F401
from .poses import PoseConfig  # noqa: F401
from .selection import SelectConfig  # noqa: F401
from .surroundings import SurroundConfig  # noqa: F401
from .views import Profiler, Source, View, ViewPose  # noqa: F401
