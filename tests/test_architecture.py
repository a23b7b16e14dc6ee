"""The layout's promises, checked on the source: which package may import which (each package's docstring says
what it must not import), geometry and models without file I/O, TensorFlow only where a twin needs it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tf2dasl"


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name: str, path: Path):
    """``(imported module, line, at module level)`` for every import statement of a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.append((mod, node.lineno, id(node) in top))
    return tree, out


def _under(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


#: package → packages it must not import (at any level of the module)
_PIPELINE = ["tf2dasl.commands", "tf2dasl.training", "tf2dasl.evaluate", "tf2dasl.models", "tf2dasl.data",
             "tf2dasl.export"]
FORBIDDEN = {
    "tf2dasl.geometry": ["keras", "tf2dasl.io", "tf2dasl.models", "tf2dasl.inference", "tf2dasl.data",
                         "tf2dasl.training", "tf2dasl.evaluate", "tf2dasl.export", "tf2dasl.commands", "tf2dasl.api",
                         "tf2dasl.reconstruct"],
    "tf2dasl.models": ["tf2dasl.io", "tf2dasl.inference", "tf2dasl.data", "tf2dasl.training", "tf2dasl.evaluate",
                       "tf2dasl.export", "tf2dasl.commands", "tf2dasl.api", "tf2dasl.reconstruct"],
    "tf2dasl.inference": ["keras", "tf2dasl.export", "tf2dasl.reconstruct", "tf2dasl.batch", "tf2dasl.video",
                          "tf2dasl.texture", "tf2dasl.render", "tf2dasl.evaluate", "tf2dasl.training", "tf2dasl.data",
                          "tf2dasl.commands", "tf2dasl.api"],
    "tf2dasl.io": ["tf2dasl.commands", "tf2dasl.training", "tf2dasl.evaluate", "tf2dasl.inference", "tf2dasl.data"],
    "tf2dasl.data": ["tf2dasl.models", "tf2dasl.inference", "tf2dasl.training", "tf2dasl.evaluate", "tf2dasl.export",
                     "tf2dasl.commands", "tf2dasl.api"],
    "tf2dasl.evaluate": ["tf2dasl.commands", "tf2dasl.training", "tf2dasl.export"],
    "tf2dasl.export": ["tf2dasl.commands", "tf2dasl.api", "tf2dasl.reconstruct", "tf2dasl.training",
                       "tf2dasl.evaluate", "tf2dasl.data", "tf2dasl.video", "tf2dasl.batch", "tf2dasl.texture"],
    "tf2dasl.reconstruct": ["keras", "tensorflow", "tf2dasl.models"] + _PIPELINE,
    "tf2dasl.video": ["keras", "tensorflow", "tf2dasl.api"] + _PIPELINE,
    "tf2dasl.texture": ["keras", "tensorflow", "tf2dasl.api"] + _PIPELINE,
    "tf2dasl.batch": ["keras", "tensorflow", "tf2dasl.api"] + _PIPELINE,
    "tf2dasl.render": ["keras", "tensorflow", "tf2dasl.io", "tf2dasl.inference", "tf2dasl.api", "tf2dasl.video"]
    + _PIPELINE,
    "tf2dasl.beam": ["keras", "tf2dasl.api", "tf2dasl.commands", "tf2dasl.training", "tf2dasl.evaluate",
                     "tf2dasl.models", "tf2dasl.data", "tf2dasl.export"],
    "tf2dasl.profiling": ["keras", "tensorflow", "tf2dasl.models", "tf2dasl.commands", "tf2dasl.training",
                          "tf2dasl.evaluate", "tf2dasl.export", "tf2dasl.api", "tf2dasl.reconstruct", "tf2dasl.video",
                          "tf2dasl.batch", "tf2dasl.texture"],
}
#: profiling makes training data (on the side of training, over data and a predictor): what must not import training
#: must not import profiling either
for _pkg, _banned in FORBIDDEN.items():
    if "tf2dasl.training" in _banned and _pkg != "tf2dasl.profiling":
        _banned.append("tf2dasl.profiling")
#: Apache Beam is an optional extra (``[beam]``): only tf2dasl.beam imports it, and nothing imports tf2dasl.beam (the
#: reconstruct-beam command loads it by name), so the core package runs without Beam installed
BEAM_ONLY = ["apache_beam", "tf2dasl.beam"]
for _name in sorted({p.stem for p in PKG.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
                    - {"__init__", "beam"}):
    FORBIDDEN.setdefault(f"tf2dasl.{_name}", []).extend(BEAM_ONLY)
#: the longest a module may be (lines)
MAX_MODULE_LINES = 450
#: file-reading and -writing calls that geometry and models must not make
FILE_CALLS = {"open", "imread", "imwrite", "loadmat", "savemat", "read_text", "write_text", "read_bytes",
              "write_bytes", "load_weights", "save_weights", "savez", "savez_compressed", "loadtxt"}


def test_packages_import_only_what_their_docstrings_allow():
    problems = []
    for name, path in _modules():
        _, imports = _imports(name, path)
        for pkg, banned in FORBIDDEN.items():
            if not _under(name, pkg):
                continue
            for mod, line, _ in imports:
                if any(_under(mod, b) for b in banned):
                    problems.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod}")
        for mod, line, _ in imports:
            if _under(mod, "tf2dasl.commands") and not (_under(name, "tf2dasl.commands") or name == "tf2dasl.cli"):
                problems.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod} (only the CLI may)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pkg", ["tf2dasl.geometry", "tf2dasl.models", "tf2dasl.video.tracker",
                                 "tf2dasl.video.filters", "tf2dasl.video.smoothing"])
def test_no_file_io(pkg):
    problems = []
    for name, path in _modules():
        if not _under(name, pkg):
            continue
        tree, _ = _imports(name, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if called in FILE_CALLS:
                    problems.append(f"{path.relative_to(PKG.parent)}:{node.lineno} calls {called}()")
    assert not problems, "\n".join(problems)


def test_geometry_imports_tensorflow_only_in_its_twins():
    """TensorFlow in geometry only in tf_ops, the TensorFlow twins of the numpy modules."""
    problems = [f"{path.relative_to(PKG.parent)}:{line}" for name, path in _modules()
                if _under(name, "tf2dasl.geometry") and name != "tf2dasl.geometry.tf_ops"
                for mod, line, _ in _imports(name, path)[1] if _under(mod, "tensorflow")]
    assert not problems, "TensorFlow import in geometry outside tf_ops: " + ", ".join(problems)


def test_imports_are_at_module_top():
    """Dependencies in sight: every import statement at a module's top (an ``if TYPE_CHECKING:`` block counts). The
    runtimes and the commands are registries imported by name when asked for (``importlib``), not hidden imports."""
    problems = [f"{path.relative_to(PKG.parent)}:{line} imports {mod}" for name, path in _modules()
                for mod, line, top in _imports(name, path)[1] if not top]
    assert not problems, "\n".join(problems)


def test_no_module_imports_another_modules_private_name():
    problems = []
    for name, path in _modules():
        tree, _ = _imports(name, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    problems.append(f"{path.relative_to(PKG.parent)}:{node.lineno} imports {private}")
    assert not problems, "\n".join(problems)


def test_modules_stay_short():
    long = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"over {MAX_MODULE_LINES} lines: {long}"


def test_only_the_inference_package_predicts():
    """One predictor contract: ``def predict(`` / ``def predict_params`` only in tf2dasl/inference, once in its base
    and where a runtime must override it."""
    found = [f"{path.relative_to(PKG.parent)}:{node.lineno}" for name, path in _modules()
             for node in ast.walk(_imports(name, path)[0])
             if isinstance(node, ast.FunctionDef) and node.name in ("predict", "predict_params")]
    assert found and all(f.startswith("tf2dasl/inference/") for f in found), found


def test_every_package_says_what_it_owns():
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 12, f"{init.relative_to(PKG.parent)}: a one-paragraph docstring naming what the " \
                                       "package owns and what it must not import"


@pytest.mark.slow
def test_the_numpy_pipeline_imports_without_tensorflow():
    """The reconstructor, batch runs, video, textures and the export runtimes run on numpy: importing them must not
    pull in TensorFlow (the inference package imports a runtime's library only when that runtime is loaded)."""
    import subprocess
    import sys

    code = ("import sys, tf2dasl.reconstruct, tf2dasl.batch, tf2dasl.video, tf2dasl.texture.edit, tf2dasl.render, "
            "tf2dasl.inference.tflite_runtime, tf2dasl.inference.onnx_runtime, tf2dasl.evaluate, "
            "tf2dasl.profiling.shards; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PKG.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_design_layout_lists_every_module():
    """docs/design.md's Layout tree names every module and package of tf2dasl/ (a package's __init__.py by its
    folder), and nothing that is not there."""
    readme = (PKG.parent / "docs" / "design.md").read_text()
    block = readme.split("\n## Layout\n", 1)[1].split("```\n", 2)[1]
    listed, folder, inside = set(), None, False
    for line in block.splitlines():
        indent, name = len(line) - len(line.lstrip()), (line.split() or [""])[0]
        if indent == 0:
            inside = name == "tf2dasl/"
            continue
        if not inside:
            continue
        if indent == 2:
            folder = name if name.endswith("/") else None
            listed.add(name.rstrip("/"))
        elif indent == 4 and folder:
            listed.add(folder + name)
    actual = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
              if not (p.name == "__init__.py" and p.parent != PKG)}
    actual |= {str(p.relative_to(PKG)) for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert listed == actual, (f"missing from docs/design.md: {sorted(actual - listed)}; not in tf2dasl/: "
                              f"{sorted(listed - actual)}")
