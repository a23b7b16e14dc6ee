"""Import a textured OBJ (``tf2dasl reconstruct --obj``) into Blender, headless, and report what Blender made of it.

    python benchmarks/blender_obj_import.py --obj out/photo_0.obj
    python benchmarks/blender_obj_import.py --model models/mb05 --photo ../shared/data/images/JianzhuGuo.jpg

Runs ``blender -b --factory-startup --python benchmarks/blender_obj_import.py -- FILE.obj`` (this same file: inside
Blender it imports the OBJ with ``bpy.ops.wm.obj_import`` into an empty scene) and prints the mesh's vertex and
polygon counts, its UV layers, materials and the images its material's texture nodes hold (name, size, whether
the pixels loaded), with the import time and Blender's whole run time. ``--json`` prints them as one JSON line
too. Needs Blender on the PATH (Debian: ``apt-get install blender``, 3.4); without it, says so and exits 2.
With ``--model`` (a model directory with UVs) and ``--photo`` it first writes the photo's textured OBJ.
(Blender 3.4's glTF importer does not run with Debian's numpy, so GLB files are checked with trimesh and
pygltflib in the tests instead.)
"""
from __future__ import annotations

import json
import sys
import time


def inside_blender() -> None:
    import bpy  # noqa: F401 (only inside Blender)

    path = sys.argv[sys.argv.index("--") + 1]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    bpy.ops.wm.obj_import(filepath=path)
    seconds = time.perf_counter() - t0
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    me = meshes[0].data if meshes else None
    images = set()
    for mat in (me.materials if me else []):
        if mat is not None and mat.use_nodes:
            for node in mat.node_tree.nodes:
                if node.type == "TEX_IMAGE" and node.image is not None:
                    images.add((node.image.name, tuple(node.image.size), bool(node.image.has_data)))
    result = {"objects": len(meshes), "vertices": len(me.vertices) if me else 0,
              "polygons": len(me.polygons) if me else 0, "uv_layers": len(me.uv_layers) if me else 0,
              "materials": len(me.materials) if me else 0,
              "images": [[n, list(s), d] for n, s, d in sorted(images)], "import_seconds": round(seconds, 3),
              "blender": bpy.app.version_string}
    print("TF2DASL_BLENDER_RESULT " + json.dumps(result))


def main(argv=None) -> int:
    import argparse
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--obj", help="a textured OBJ (its MTL and PNG next to it)")
    ap.add_argument("--model", help="model directory with UVs: make the OBJ from --photo first")
    ap.add_argument("--photo", help="photo to reconstruct with --model")
    ap.add_argument("--blender", default=shutil.which("blender"), help="the blender executable")
    ap.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    args = ap.parse_args(argv)
    if not args.blender:
        print("blender not found on the PATH (Debian: apt-get install blender)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        obj = args.obj
        if obj is None:
            if not (args.model and args.photo):
                ap.error("give --obj, or --model and --photo")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            from tf2dasl.api import make_reconstructor
            from tf2dasl.texture.edit import find_face
            from tf2dasl.texture.assets import textured_face
            from tf2dasl.io.images import read_image

            rec = make_reconstructor(args.model)
            image = read_image(args.photo)
            face = find_face(rec, image, args.photo)
            obj = str(textured_face(rec.model.mm, image, face).write_obj(Path(tmp) / "face.obj")[0])
        t0 = time.perf_counter()
        proc = subprocess.run([args.blender, "-b", "--factory-startup", "--python", __file__, "--", obj],
                              capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("TF2DASL_BLENDER_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(f"blender failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    result = json.loads(line.split(" ", 1)[1])
    result["blender_run_seconds"] = round(wall, 2)
    print(f"Blender {result['blender']} imported {Path(obj).name}: {result['objects']} mesh object, "
          f"{result['vertices']} vertices, {result['polygons']} polygons, {result['uv_layers']} UV layer(s), "
          f"{result['materials']} material(s), images {result['images']}; import {result['import_seconds']:.2f} s, "
          f"whole Blender run {wall:.1f} s")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        import bpy  # noqa: F401
    except ImportError:
        raise SystemExit(main())
    inside_blender()
