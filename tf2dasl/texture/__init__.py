"""A face's appearance: UV texture maps sampled from photos, textured meshes, face swap and expression retargeting.

Owns :mod:`.uv` (the UV layout of a model and a face's texture from its photo: z-buffer visibility, mirrored fill,
inpainting), :mod:`.assets` (a face as a textured mesh in the pose-free object frame: the arrays the OBJ/GLB
writers of :mod:`tf2dasl.io.mesh` take), :mod:`.edit` (swap and retargeting on photos) and :mod:`.edit_video`
(retargeting driven by a clip, through :mod:`tf2dasl.video`'s reader and tracker). Numpy and OpenCV only: must not
import TensorFlow, Keras, the models, training or the CLI; faces come in as :class:`tf2dasl.reconstruct.Face`
records and renders go through :mod:`tf2dasl.render`.
"""
from .uv import (INPAINTED, MIRRORED, OBSERVED, OUTSIDE, SOURCE_NAMES, Texture, TextureConfig, UVLayout,  # noqa: F401
                 uv_layout)
