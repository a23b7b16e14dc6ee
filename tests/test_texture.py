"""UV textures (tf2dasl.texture), textured rendering (tf2dasl.render) and the object frame
(tf2dasl.geometry.object_frame), on a synthetic UV-mapped face and, where ../shared is, on the real BFM UVs."""
from __future__ import annotations

import numpy as np
import pytest

from synthetic_faces import place_face, smooth_texture, uv_face_model
from tf2dasl import render
from tf2dasl.geometry.morphable_model import MorphableModel, NoUVError
from tf2dasl.geometry.object_frame import apply_pose, object_vertices, pose_matrices, similarity
from tf2dasl.texture import INPAINTED, MIRRORED, OBSERVED, OUTSIDE, TextureConfig, UVLayout, uv_layout

BACKGROUND = 90


@pytest.fixture(scope="module")
def mm():
    return uv_face_model()


def photo_of(mm, face, texture, shape=(300, 320)):
    img = np.full((*shape, 3), BACKGROUND, np.uint8)
    return render.render_textured(img, face.vertices, mm.triangles, mm.uv, texture)


# ------------------------------------------------------------------------------------------- render_textured
def test_sample_bilinear_matches_exact_interpolation():
    img = np.zeros((4, 5, 3), np.uint8)
    img[1, 2] = (200, 100, 50)
    got = render.sample_bilinear(img, np.array([2.0, 2.5, 1.5, -3.0]), np.array([1.0, 1.25, 0.5, 1.0]))
    np.testing.assert_allclose(got[0], [200, 100, 50])
    np.testing.assert_allclose(got[1], np.array([200, 100, 50]) * 0.5 * 0.75)
    np.testing.assert_allclose(got[2], np.array([200, 100, 50]) * 0.25)
    np.testing.assert_allclose(got[3], 0)  # clamped to column 0
    grey = render.sample_bilinear(img[..., 0], np.array([2.0]), np.array([1.0]))
    assert grey.shape == (1,) and grey[0] == 200


def test_render_textured_reproduces_an_affine_texture_and_leaves_the_rest():
    # a plane whose UVs are affine in the image: every covered pixel shows the texel it maps to
    h, w = 60, 80
    xs, ys = np.meshgrid(np.linspace(10.3, 70.6, 9), np.linspace(5.2, 50.9, 7))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    i = (np.arange(6)[:, None] * 9 + np.arange(8)[None, :]).ravel()
    tri = np.concatenate([np.stack([i, i + 1, i + 9], 1), np.stack([i + 1, i + 10, i + 9], 1)])
    uv = np.stack([(v[:, 0] - 10.3) / 60.3, 1.0 - (v[:, 1] - 5.2) / 45.7], 1)
    tex_h, tex_w = 32, 48
    ty, tx = np.mgrid[0:tex_h, 0:tex_w]
    tex = np.stack([tx * 5, ty * 7, np.full_like(tx, 30)], -1).astype(np.uint8)  # linear: bilinear is exact
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out, mask = render.render_textured(img, v, tri, uv, tex, return_mask=True)
    yy, xx = np.nonzero(mask)
    assert mask.sum() > 0.9 * 60 * 45
    np.testing.assert_array_equal(out[~mask], img[~mask])
    u = (xx - 10.3) / 60.3
    vv = 1.0 - (yy - 5.2) / 45.7
    ex, ey = np.clip(u * tex_w - 0.5, 0, tex_w - 1), np.clip((1 - vv) * tex_h - 0.5, 0, tex_h - 1)
    np.testing.assert_allclose(out[yy, xx, 0], 5 * ex, atol=1.01)   # OpenCV's 1/32 texel steps: within a level
    np.testing.assert_allclose(out[yy, xx, 1], 7 * ey, atol=1.01)
    # alpha and one texture per face
    half = render.render_textured(img, [v], tri, uv, [tex], alpha=0.5)
    np.testing.assert_allclose(half[yy, xx].astype(float), (img[yy, xx].astype(float) + out[yy, xx]) / 2, atol=1.01)
    with pytest.raises(ValueError, match="one texture"):
        render.render_textured(img, [v, v], tri, uv, [tex, tex, tex])


def test_two_faces_get_their_own_textures(mm):
    red = np.full((16, 16, 3), (0, 0, 255), np.uint8)
    blue = np.full((16, 16, 3), (255, 0, 0), np.uint8)
    a, b = place_face(mm, centre=(80, 100), height=120), place_face(mm, centre=(240, 100), height=120)
    out = render.render_textured(np.zeros((200, 320, 3), np.uint8), [a.vertices, b.vertices], mm.triangles, mm.uv,
                                 [red, blue])
    assert (out[100, 80] == (0, 0, 255)).all() and (out[100, 240] == (255, 0, 0)).all()


# ------------------------------------------------------------------------------------------- UV round trip
def test_uv_round_trip_reproduces_the_texture(mm):
    """Texture → textured render → texture sampled back: the texels the photo shows come back within 2 levels."""
    tex = smooth_texture(256)
    face = place_face(mm, height=220)
    photo = photo_of(mm, face, tex)
    layout = UVLayout(mm.uv, mm.triangles, mm.u.reshape(-1, 3), TextureConfig(size=256))
    _, seen, _ = layout.observe(photo, face.vertices)
    got = layout.sample(photo, face.vertices)
    good = seen > 0.99
    assert good.sum() > 0.6 * layout.chart.sum()
    err = np.abs(got.image.astype(int) - tex.astype(int)).max(-1)
    assert err[good].mean() < 1.0 and np.percentile(err[good], 99) <= 3
    # nothing of the background came in: every chart texel is filled, none is the background grey
    assert (got.source[layout.chart] != OUTSIDE).all()


def test_profile_gets_a_full_texture_from_the_mirror(mm):
    """A face turned 55 degrees shows one side: the other is mirrored (the synthetic layout is symmetric), so with
    a symmetric texture the whole chart comes back close to it, and nothing is left empty."""
    tex = smooth_texture(256)
    tex = np.ascontiguousarray(np.concatenate([tex[:, :128], tex[:, :128][:, ::-1]], 1))  # left-right symmetric
    face = place_face(mm, yaw=55, height=220)
    layout = UVLayout(mm.uv, mm.triangles, mm.u.reshape(-1, 3), TextureConfig(size=256))
    got = layout.sample(photo_of(mm, face, tex), face.vertices)
    frac = got.fractions()
    assert frac["mirrored"] > 0.25 and frac["seen in the photo"] > 0.4, frac
    mirrored = got.source == MIRRORED
    err = np.abs(got.image.astype(int) - tex.astype(int)).max(-1)
    assert np.median(err[mirrored]) <= 4, np.median(err[mirrored])
    assert ((got.source == OBSERVED) | mirrored | (got.source == INPAINTED))[layout.chart].all()


def test_texels_hidden_behind_the_nose_get_no_weight(mm):
    """Turned 55 degrees, the nose hides part of the far cheek: those texels face the camera but the z-buffer says
    they are behind the nose, so they get weight 0 (not the nose's colours); texels the z-buffer shows get weight."""
    face = place_face(mm, yaw=55, height=220)
    layout = UVLayout(mm.uv, mm.triangles, None, TextureConfig(size=128))
    _, seen, frontal = layout.observe(photo_of(mm, face, smooth_texture(64)), face.vertices)
    v = face.vertices.astype(np.float64)
    b = layout.bary
    pts = sum(b[:, k:k + 1] * v[layout.corners[:, k]] for k in range(3))
    depth = render.rasterize(v, mm.triangles, 300, 320)[0]
    zb = depth[np.rint(pts[:, 1]).astype(int), np.rint(pts[:, 0]).astype(int)]
    normals = render.vertex_normals(v, mm.triangles)
    nz = sum(b[:, k] * normals[layout.corners[:, k], 2] for k in range(3))
    hidden = (zb - pts[:, 2] > 0.05 * 220) & (nz > 0.3)
    shown = (np.abs(zb - pts[:, 2]) < 0.5) & (nz > 0.5)
    w = seen.reshape(-1)[layout.texels]
    assert hidden.sum() > 50 and shown.sum() > 1000
    assert (w[hidden] == 0).all()
    assert (w[shown] > 0).mean() > 0.95


def test_uv_layout_is_cached_and_models_without_uv_say_how_to_fix(mm):
    assert uv_layout(mm, 64) is uv_layout(mm, 64)
    no_uv = MorphableModel(**{**mm.__dict__, "uv": None, "derived": {}})
    assert not no_uv.has_uv
    with pytest.raises(NoUVError) as exc:
        uv_layout(no_uv, 64)
    msg = str(exc.value)
    assert "\n" not in msg and "UV coordinates" in msg and "tf2dasl import-3ddfa" in msg and "BFM_UV.mat" in msg


# ------------------------------------------------------------------------------------------- object frame
def test_pose_matrix_maps_the_object_frame_onto_the_image(mm):
    face = place_face(mm, yaw=25, pitch=-10, roll=8)
    obj = object_vertices(mm, face.params[None])
    M = pose_matrices(obj, face.vertices[None])
    np.testing.assert_allclose(apply_pose(M, obj)[0], face.vertices, atol=2e-3)
    t, R, s = similarity(M[0])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(R) > 0 and s > 0
    # the object frame is upright and faces +z: its outward normals point +z at the nose
    from tf2dasl.texture.assets import object_triangles

    n = render.vertex_normals(obj[0], object_triangles(mm))
    assert n[np.argmax(obj[0][:, 2]), 2] > 0.9


# ------------------------------------------------------------------------------------------- real BFM UVs
def test_bfm_uvs_import_and_texture_a_real_mesh(shared_dir, tmp_path):
    from tf2dasl.io.morphable_files import load_3ddfa_v2, read_uv

    cfg = shared_dir / "assets" / "3ddfa_v2" / "configs"
    if not (cfg / "BFM_UV.mat").is_file():
        pytest.skip("BFM_UV.mat not in the shared assets")
    mm = load_3ddfa_v2(cfg)
    assert mm.has_uv and mm.uv.shape == (38365, 2) and mm.uv.dtype == np.float32
    assert 0.0 <= mm.uv.min() and mm.uv.max() <= 1.0
    # the layout is mirrored by about u -> 1 - u (fitted from the mean shape's symmetric pairs)
    layout = uv_layout(mm, 128)
    (a0, a1, a2), (b0, b1, b2) = layout.mirror
    assert abs(a0 - 1) < 0.01 and abs(a1 + 1) < 0.01 and abs(b2 - 1) < 0.01
    # padding: outside the chart every texel repeats its nearest chart texel (no background at the chart's edge)
    tex = layout.sample(np.full((300, 300, 3), 128, np.uint8), np.full((38365, 3), 150.0) + np.c_[
        mm.u.reshape(-1, 3)[:, :2] * np.array([1e-3, -1e-3]), np.zeros(38365)])
    flat = tex.image.reshape(-1, 3)
    np.testing.assert_array_equal(flat[~layout.chart.reshape(-1)], flat[layout.nearest[~layout.chart.reshape(-1)]])
    # missing files: no UVs, a note; a malformed one: one line naming it
    uv, note = read_uv(tmp_path, 38365)
    assert uv is None and "not found" in note
    (tmp_path / "BFM_UV.mat").write_bytes(b"not a mat file")
    from tf2dasl.geometry.morphable_model import MorphableModelError

    with pytest.raises(MorphableModelError, match="BFM_UV.mat"):
        read_uv(tmp_path, 38365)


def test_model_dir_keeps_uvs_and_loads_without_them(tmp_path, mm):
    from tf2dasl.io.model_dir import load_model_dir, save_model_dir
    from tf2dasl.models.spec import ModelSpec
    from tf2dasl.models.task import FaceTask

    spec = ModelSpec(name="tiny", backbone="mobilenet_v1", width=0.25, input_size=120, channels=3)
    small = uv_face_model()
    model = FaceTask(spec, small)
    d = save_model_dir(model, tmp_path / "m")
    back = load_model_dir(d).mm
    np.testing.assert_array_equal(back.uv, small.uv)
    # a model directory written before UVs existed (no "uv" array) still loads and works, without UVs
    with np.load(d / "morphable_model.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "uv"}
    np.savez(d / "morphable_model.npz", **arrays)
    old = load_model_dir(d).mm
    assert not old.has_uv and old.is_dense
