"""Face profiling: large-pose faces with exact 3D labels, made from near-frontal photos (3DDFA's 300W-LP recipe).

Owns the choice of source faces where a teacher is reliable, the flip-averaged fits, the synthesis of new views
(the fitted mesh rotated out of plane with the image around it warped by an extrapolated depth), and the
on-disk data set they make (3DDFA's layout: crops, a list, raw parameters), cached by content and resumable.
Numpy, OpenCV and SciPy only: must not import TensorFlow or Keras (a teacher comes in as a loaded model whose
``predict_params`` is called through :func:`.teacher.teacher_params`), training, the CLI, evaluation or export.
"""
from .config import PoseConfig, ProfiledDataConfig, SelectConfig  # noqa: F401,E402
from .dataset import ProfiledSet, make_profiled_set  # noqa: F401,E402
from .fitting import MeshFitter  # noqa: F401,E402
from .surroundings import SurroundConfig  # noqa: F401,E402
from .views import Profiler, Source, View, ViewPose  # noqa: F401,E402
