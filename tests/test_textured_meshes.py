"""Textured meshes (tf2dasl.texture.assets, tf2dasl.io.mesh): OBJ + MTL + PNG and GLB, parsed independently, loaded by
trimesh and pygltflib; reconstruct's --uv-texture/--obj/--glb; Blender's OBJ import where Blender is installed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthetic_faces import place_face, smooth_texture, uv_face_model
from tf2dasl import render
from tf2dasl.texture.assets import textured_face
from tf2dasl.texture import TextureConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def textured():
    mm = uv_face_model()
    face = place_face(mm, yaw=20, roll=5, height=200)
    photo = render.render_textured(np.full((300, 320, 3), 90, np.uint8), face.vertices, mm.triangles, mm.uv,
                                   smooth_texture(128))
    return mm, face, textured_face(mm, photo, face, TextureConfig(size=128))


def parse_textured_obj(path: Path):
    lines = path.read_text().splitlines()
    get = lambda tag: np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.split()[:1] == [tag]])  # noqa
    faces = [ln.split()[1:] for ln in lines if ln.startswith("f ")]
    idx = np.array([[[int(i) for i in c.split("/")] for c in f] for f in faces])  # (T, 3 corners, v/vt/vn)
    mtllib = next(ln.split()[1] for ln in lines if ln.startswith("mtllib "))
    return lines, get("v"), get("vt"), get("vn"), idx, mtllib


def test_obj_mtl_png_structure(tmp_path, textured):
    mm, face, tf = textured
    obj, mtl, png = tf.write_obj(tmp_path / "face.obj")
    assert (obj.name, mtl.name, png.name) == ("face.obj", "face.mtl", "face.png")
    lines, v, vt, vn, idx, mtllib = parse_textured_obj(obj)
    assert mtllib == "face.mtl" and "usemtl face" in lines
    n = len(mm.uv)
    assert v.shape == (n, 3) and vt.shape == (n, 2) and vn.shape == (n, 3) and idx.shape == (len(mm.triangles), 3, 3)
    np.testing.assert_allclose(v, tf.vertices, atol=1e-5)
    np.testing.assert_allclose(vt, mm.uv, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vn, axis=1), 1.0, atol=1e-4)
    assert (idx[..., 0] == idx[..., 1]).all() and (idx[..., 0] == idx[..., 2]).all()  # f v/vt/vn, one numbering
    np.testing.assert_array_equal(idx[..., 0] - 1, tf.triangles)
    # counter-clockwise seen from outside: face normals agree with the written vertex normals
    a, b, c = (v[idx[:, k, 0] - 1] for k in range(3))
    fn = np.cross(b - a, c - a)
    assert (np.einsum("ij,ij->i", fn, vn[idx[:, 0, 0] - 1]) > 0).mean() > 0.95
    # the frame: y up, the face looking along +z (the nose is the nearest point)
    assert vn[np.argmax(v[:, 2]), 2] > 0.9
    mtl_text = mtl.read_text()
    assert "newmtl face" in mtl_text and "map_Kd face.png" in mtl_text
    np.testing.assert_array_equal(cv2.imread(str(png)), tf.texture.image)
    assert any("pose (object -> photo frame" in ln for ln in lines[:6])


def test_trimesh_loads_obj_and_glb_with_their_textures(tmp_path, textured):
    trimesh = pytest.importorskip("trimesh")
    mm, face, tf = textured
    obj = tf.write_obj(tmp_path / "face.obj")[0]
    m = trimesh.load(obj, process=False, maintain_order=True)
    assert isinstance(m.visual, trimesh.visual.TextureVisuals)
    assert m.vertices.shape == tf.vertices.shape and len(m.faces) == len(tf.triangles)
    np.testing.assert_allclose(m.visual.uv, mm.uv, atol=1e-6)
    img = np.asarray(m.visual.material.image.convert("RGB"))[:, :, ::-1]
    np.testing.assert_array_equal(img, tf.texture.image)

    glb = tf.write_glb(tmp_path / "face.glb")
    scene = trimesh.load(glb, process=False)
    g = scene.geometry["face"]
    np.testing.assert_allclose(g.vertices, tf.vertices, atol=1e-5)
    np.testing.assert_array_equal(g.faces, tf.triangles)
    np.testing.assert_allclose(g.visual.uv, mm.uv, atol=1e-6)  # trimesh undoes glTF's top-left v on reading
    tex = np.asarray(g.visual.material.baseColorTexture.convert("RGB"))[:, :, ::-1]
    np.testing.assert_array_equal(tex, tf.texture.image)
    matrix, _ = scene.graph.get("face")
    np.testing.assert_allclose(matrix, tf.node_matrix(), atol=1e-5)


def test_glb_structure_with_pygltflib(tmp_path, textured):
    pygltflib = pytest.importorskip("pygltflib")
    mm, face, tf = textured
    path = tf.write_glb(tmp_path / "face.glb")
    assert path.read_bytes()[:4] == b"glTF"
    g = pygltflib.GLTF2().load(str(path))
    assert g.asset.version == "2.0" and len(g.scenes) == 1 and len(g.meshes) == 1
    node = next(n for n in g.nodes if n.mesh is not None)
    assert node.name == "face"
    m = np.array(node.matrix).reshape(4, 4).T  # glTF matrices are column-major
    np.testing.assert_allclose(m, tf.node_matrix(), atol=1e-5)
    R = m[:3, :3] / np.cbrt(np.linalg.det(m[:3, :3]))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)  # decomposable: rotation, uniform scale, translation
    assert node.extras["image_size"] == [320, 300] and len(node.extras["pose_affine"]) == 4
    prim = g.meshes[0].primitives[0]
    blob = g.binary_blob()

    def accessor(i):
        acc = g.accessors[i]
        view = g.bufferViews[acc.bufferView]
        comps = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc.type]
        dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}[acc.componentType]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        return np.frombuffer(blob, dtype, acc.count * comps, start).reshape(acc.count, comps), acc

    pos, acc = accessor(prim.attributes.POSITION)
    np.testing.assert_allclose(pos, tf.vertices, atol=1e-5)
    np.testing.assert_allclose(acc.min, pos.min(0), atol=1e-5)  # required by the spec for POSITION
    np.testing.assert_allclose(acc.max, pos.max(0), atol=1e-5)
    uv, _ = accessor(prim.attributes.TEXCOORD_0)
    np.testing.assert_allclose(uv, np.c_[mm.uv[:, 0], 1.0 - mm.uv[:, 1]], atol=1e-6)  # glTF: v from the top
    nrm, _ = accessor(prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-4)
    idx, _ = accessor(prim.indices)
    np.testing.assert_array_equal(idx.reshape(-1, 3), tf.triangles)
    mat = g.materials[prim.material]
    tex = g.textures[mat.pbrMetallicRoughness.baseColorTexture.index]
    image = g.images[tex.source]
    assert image.mimeType == "image/png" and image.uri is None  # embedded, not a side file
    view = g.bufferViews[image.bufferView]
    png = blob[(view.byteOffset or 0):(view.byteOffset or 0) + view.byteLength]
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, tf.texture.image)


def _no_uv_model_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    with np.load(dst / "morphable_model.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "uv"}
    np.savez(dst / "morphable_model.npz", **arrays)
    return dst


def test_reconstruct_textured_outputs(mb05_dir, shared_dir, tmp_path, capsys):
    trimesh = pytest.importorskip("trimesh")
    from tf2dasl.cli import main

    photo = shared_dir / "data" / "images" / "JianzhuGuo.jpg"
    out = tmp_path / "out"
    rc = main(["reconstruct", str(photo), "--model", str(mb05_dir), "--out", str(out),
               "--uv-texture", "--obj", "--glb", "--texture-size", "256"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    for n in ("JianzhuGuo_0_texture.png", "JianzhuGuo_0.mtl", "JianzhuGuo_0.obj", "JianzhuGuo_0.glb"):
        assert n in names
    tex = cv2.imread(str(out / "JianzhuGuo_0_texture.png"))
    assert tex.shape == (256, 256, 3)
    assert "map_Kd JianzhuGuo_0_texture.png" in (out / "JianzhuGuo_0.mtl").read_text()
    m = trimesh.load(out / "JianzhuGuo_0.obj", process=False, maintain_order=True)
    assert len(m.vertices) == 38365 and m.visual.material.image.size == (256, 256)
    g = trimesh.load(out / "JianzhuGuo_0.glb", process=False).geometry["face"]
    assert len(g.vertices) == 38365 and g.visual.material.baseColorTexture.size == (256, 256)
    # the GLB's node puts the mesh back on the photo: its transformed vertices land on the face's landmarks
    rec = json.loads((out / "JianzhuGuo.json").read_text())["faces"][0]
    scene = trimesh.load(out / "JianzhuGuo_0.glb", process=False)
    placed = scene.to_geometry().vertices
    lm_v = np.load(mb05_dir / "morphable_model.npz")["landmark_vertices"]
    lm = placed[lm_v][:, :2] * [1, -1]
    assert np.abs(lm - np.array(rec["landmarks_2d"])).mean() < 0.05 * np.ptp(lm[:, 0])  # similarity vs affine


def test_textured_outputs_need_uvs_one_line(mb05_dir, shared_dir, tmp_path, capsys):
    from tf2dasl.cli import main

    model = _no_uv_model_dir(mb05_dir, tmp_path / "no_uv")
    photo = shared_dir / "data" / "images" / "JianzhuGuo.jpg"
    for flag in ("--obj", "--glb", "--uv-texture"):
        rc = main(["reconstruct", str(photo), "--model", str(model), "--out", str(tmp_path / "o"), flag])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert "no UV coordinates" in err[0] and "import-3ddfa" in err[0] and flag in err[0]
    assert not (tmp_path / "o").exists() or not any(p.suffix == ".json" for p in (tmp_path / "o").iterdir())
    # --all with such a model: everything but the textured outputs
    rc = main(["reconstruct", str(photo), "--model", str(model), "--out", str(tmp_path / "all"), "--all"])
    assert rc == 0
    names = {p.name for p in (tmp_path / "all").iterdir()}
    assert "JianzhuGuo_0.ply" in names and not any(n.endswith((".obj", ".glb")) for n in names)


# ------------------------------------------------------------------------------------------------ Blender
BLENDER_SCRIPT = REPO / "benchmarks" / "blender_obj_import.py"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (apt-get install blender)")
def test_blender_imports_the_obj_with_uvs_material_and_image(tmp_path, textured):
    mm, face, tf = textured
    obj = tf.write_obj(tmp_path / "face.obj")[0]
    proc = subprocess.run([sys.executable, str(BLENDER_SCRIPT), "--obj", str(obj), "--json"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["vertices"] == len(mm.uv) and got["polygons"] == len(mm.triangles)
    assert got["uv_layers"] == 1 and got["materials"] == 1
    assert got["images"] == [["face.png", [128, 128], True]]


def test_texture_from_a_reduced_decode_matches_the_full_image(textured):
    """A huge JPEG is decoded at 1/2 (api's image_scale): the texture sampled from the small image with the
    full-image face is the full image's texture, a little blurred, and the pose stays in full-image pixels."""
    mm, face, tf = textured
    full = render.render_textured(np.full((600, 640, 3), 90, np.uint8), face.vertices * [2, 2, 2] + [0.5, 0.5, 0],
                                  mm.triangles, mm.uv, smooth_texture(128))
    big = place_face(mm, yaw=20, roll=5, height=400, centre=(320.5, 300.5))
    small = cv2.resize(full, (320, 300), interpolation=cv2.INTER_AREA)
    a = textured_face(mm, full, big, TextureConfig(size=128))
    b = textured_face(mm, small, big, TextureConfig(size=128), image_scale=0.5)
    assert b.image_size == (640, 600)
    np.testing.assert_allclose(b.pose, a.pose)
    seen = (a.texture.weight > 0.9) & (b.texture.weight > 0.9)
    assert np.median(np.abs(a.texture.image.astype(int) - b.texture.image)[seen]) <= 3


def test_textured_outputs_are_for_photos(tmp_path, capsys):
    from tf2dasl.cli import main

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    for flag in ("--uv-texture", "--glb"):
        rc = main(["reconstruct", str(clip), "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o"), flag])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and flag in err[0] and "apply to photos" in err[0]
