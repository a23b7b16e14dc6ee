"""`tf2dasl reconstruct-beam` (tf2dasl.beam): the same faces as `tf2dasl reconstruct` on the same photos, bad files
in the dead letter with their reasons, one-line errors before anything runs, remote folders staged through Beam's
FileSystems. Skipped with a reason when apache-beam is not installed (`pip install -e ".[beam]"`)."""
from __future__ import annotations

import glob
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from helpers import one_line_error
from tf2dasl.cli import main
from tf2dasl.errors import UserError

HAS_BEAM = importlib.util.find_spec("apache_beam") is not None
needs_beam = pytest.mark.skipif(not HAS_BEAM, reason="apache-beam is not installed (pip install -e '.[beam]')")
#: landmarks of the Beam pipeline and of `tf2dasl reconstruct` agree to this (image pixels)
LANDMARK_TOL = 1e-3
#: the bad files' decode limit (a PNG above it is refused, a JPEG above it decoded at a reduced size)
MAX_PIXELS = 1_000_000
#: the shared photos the pipeline tests run on (a group photo, a photo decoded at 1/2 under MAX_PIXELS, ...)
PHOTOS = ("group_t1.jpg", "3ddfa_test1.jpg", "emma.jpg", "takeo.ppm")
#: the group photo (5 faces) and a --max-faces below its faces
GROUP, FEW_FACES = "group_t1.jpg", 2


def bad_files(folder: Path, good_jpeg: Path) -> dict[str, str]:
    """Files the pipeline must dead-letter: name → the stage it fails in."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_jpeg.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:400])
    (folder / "text.jpg").write_text("these are notes, not a photo\n" * 20)
    cv2.imwrite(str(folder / "huge.png"), np.zeros((1100, 1000, 3), np.uint8))  # above MAX_PIXELS, not a JPEG
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 127, np.uint8))
    return {"truncated.jpg": "decode", "text.jpg": "decode", "huge.png": "decode", "blank.png": "no_face"}


def read_lines(pattern: str) -> list[dict]:
    return [json.loads(line) for f in sorted(glob.glob(pattern)) for line in Path(f).read_text().splitlines()]


# ---------------------------------------------------------------------------- fast: errors before anything runs
def test_without_beam_the_command_says_how_to_install_it(capsys, monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "tf2dasl.beam" or m.startswith(("tf2dasl.beam.", "apache_beam"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # what `import apache_beam` sees without the package
    one_line_error(capsys, ["reconstruct-beam", str(tmp_path / "*.jpg"), "--model", "m", "--export-dir", "e",
                            "--out", f"{tmp_path}/"], "pip install 'tf2dasl[beam]'", "apache_beam")


def test_other_commands_still_refuse_unknown_options(capsys):
    with pytest.raises(SystemExit):
        main(["export", "m", "--out", "e", "--direct_num_workers=2"])
    assert "unrecognized arguments: --direct_num_workers=2" in capsys.readouterr().err


@needs_beam
def test_an_empty_match_is_a_clear_error(capsys, tmp_path):
    one_line_error(capsys, ["reconstruct-beam", str(tmp_path / "*.jpg"), "--model", "m", "--export-dir", "e",
                            "--out", f"{tmp_path}/out/"], f"{tmp_path / '*.jpg'}: matches no file")


@needs_beam
def test_a_used_prefix_is_refused(capsys, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "run-photos-00000-of-00001.jsonl").write_text("")
    one_line_error(capsys, ["reconstruct-beam", str(tmp_path / "*.png"), "--model", "m", "--export-dir", "e",
                            "--out", f"{tmp_path}/run-"], "already holds a run's outputs", "fresh prefix")


@needs_beam
def test_a_missing_model_is_a_clear_error(capsys, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    one_line_error(capsys, ["reconstruct-beam", str(tmp_path / "*.png"), "--model", str(tmp_path / "nope"),
                            "--export-dir", "e", "--out", f"{tmp_path}/out/"], "nope")


@needs_beam
def test_a_bad_detector_setting_is_a_clear_error_before_the_run(capsys, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    one_line_error(capsys, ["reconstruct-beam", str(tmp_path / "*.png"), "--model", "m", "--export-dir", "e",
                            "--out", f"{tmp_path}/out/", "--assets", str(tmp_path)], f"--assets {tmp_path}",
                   "no BlazeFace model")


@pytest.fixture
def fake_remote():
    """A ``fakeremote://`` FileSystem (this machine's files under another scheme): what gs:// is to a worker."""
    pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install -e '.[beam]')")
    from apache_beam.io.localfilesystem import LocalFileSystem

    class FakeRemote(LocalFileSystem):
        prefix = "fakeremote://"

        @classmethod
        def scheme(cls):
            return "fakeremote"

        def match(self, patterns, limits=None):
            results = super().match([p.removeprefix(self.prefix) for p in patterns], limits)
            for r in results:
                for m in r.metadata_list:
                    m.path = self.prefix + m.path
            return results

        def open(self, path, *args, **kwargs):
            return super().open(path.removeprefix(self.prefix), *args, **kwargs)

    return FakeRemote.prefix


@needs_beam
def test_remote_folders_are_copied_to_the_worker_once(tmp_path, fake_remote):
    from tf2dasl.beam.staging import StagingError, local_dir

    (tmp_path / "model" / "sub").mkdir(parents=True)
    (tmp_path / "model" / "model.json").write_text("{}")
    (tmp_path / "model" / "sub" / "w.bin").write_bytes(b"\x1f\x8b not gzip")
    (tmp_path / "model" / "other.txt").write_text("not asked for")
    assert local_dir(str(tmp_path / "model"), ("model.json",)) == tmp_path / "model"  # local: read in place
    remote = fake_remote + str(tmp_path / "model")
    copy = local_dir(remote, ("model.json", "sub/**"))
    assert copy != tmp_path / "model" and local_dir(remote, ("model.json", "sub/**")) == copy
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()) == ["model.json", "sub/w.bin"]
    assert (copy / "sub" / "w.bin").read_bytes() == b"\x1f\x8b not gzip"  # copied as bytes, never decompressed
    with pytest.raises(StagingError, match="none of"):
        local_dir(fake_remote + str(tmp_path / "missing"), ("model.json",))


@needs_beam
def test_an_empty_inference_batch_is_no_call():
    """BatchElements sends an empty batch at the end of some bundles: no signature call, no failed batch."""
    from tf2dasl.beam.model_handler import infer_photos

    assert infer_photos(None, []) == []


@needs_beam
def test_the_detect_step_dead_letters_bad_files_with_their_reason(mb05_dir, shared_dir, tmp_path):
    from tf2dasl.beam.photos import DEAD_LETTER, DetectFn, PhotoCrops, PhotoSettings

    expected = bad_files(tmp_path, shared_dir / "data" / "images" / "emma.jpg")
    step = DetectFn(PhotoSettings(str(mb05_dir), max_pixels=MAX_PIXELS))
    step.setup()

    def run(path):
        readable = SimpleNamespace(metadata=SimpleNamespace(path=str(path)), read=lambda: Path(path).read_bytes())
        return list(step.process(readable))

    for name, stage in expected.items():
        (out,) = run(tmp_path / name)
        assert out.tag == DEAD_LETTER and out.value["stage"] == stage, out.value
        assert out.value["error"].startswith(str(tmp_path / name)) and "\n" not in out.value["error"]
    assert "--max-pixels" in run(tmp_path / "huge.png")[0].value["error"]
    (photo,) = run(shared_dir / "data" / "images" / "emma.jpg")
    assert isinstance(photo, PhotoCrops) and photo.crops.shape[1:] == (120, 120, 3) and photo.image is not None


@needs_beam
def test_the_detect_step_keeps_the_highest_scoring_max_faces_and_counts_all(mb05_dir, shared_dir):
    from tf2dasl.beam.photos import DetectFn, PhotoSettings
    from tf2dasl.reconstruct import DEFAULT_MAX_FACES

    assert PhotoSettings(str(mb05_dir)).max_faces == DEFAULT_MAX_FACES  # reconstruct's cap by default
    with pytest.raises(UserError, match="detector_options max_faces=2 would drop faces silently: pass max_faces"):
        PhotoSettings(str(mb05_dir), detector_options={"max_faces": 2})       # the detector's cap leaves no record
    group = shared_dir / "data" / "images" / GROUP
    readable = SimpleNamespace(metadata=SimpleNamespace(path=str(group)), read=group.read_bytes)
    photos = {}
    for cap in (None, FEW_FACES):
        step = DetectFn(PhotoSettings(str(mb05_dir), max_faces=cap))
        step.setup()
        (photos[cap],) = step.process(readable)
    everyone, few = photos[None], photos[FEW_FACES]
    assert few.found == everyone.found == everyone.num_faces > FEW_FACES == few.num_faces
    np.testing.assert_array_equal(few.boxes, everyone.boxes[:FEW_FACES])
    np.testing.assert_array_equal(few.crops, everyone.crops[:FEW_FACES])


@needs_beam
def test_the_command_takes_reconstructs_limits_and_fails_a_capped_run(monkeypatch, capsys, tmp_path):
    """--max-faces and --max-pixels as `reconstruct` has them (default cap, validation); a capped photo is a
    failure of the run, named with where its record went."""
    import tf2dasl.beam as beam_package
    from tf2dasl.io.images import DEFAULT_MAX_PIXELS
    from tf2dasl.reconstruct import DEFAULT_MAX_FACES

    runs = []

    def pipeline(patterns, model_dir, export_dir, out_prefix, pipeline_args, settings, **options):
        runs.append(settings)
        return beam_package.BeamSummary(out_prefix, photos=1, written=1, faces=FEW_FACES, capped=1)

    monkeypatch.setattr(beam_package, "reconstruct_beam", pipeline)
    command = ["reconstruct-beam", "photos/*.jpg", "--model", "m", "--export-dir", "e", "--out", f"{tmp_path}/"]
    assert main(command) == 1
    assert f"1 with more faces than --max-faces, the first reconstructed, in {tmp_path}/capped-*" in \
        capsys.readouterr().out
    assert (runs[0]["max_faces"], runs[0]["max_pixels"]) == (DEFAULT_MAX_FACES, DEFAULT_MAX_PIXELS)
    assert "max_faces" not in runs[0]["detector_options"]  # capped after detection, so the others are counted
    main([*command, "--max-faces", str(FEW_FACES), "--max-pixels", "0"])
    assert (runs[1]["max_faces"], runs[1]["max_pixels"]) == (FEW_FACES, None)
    for bad in (["--max-faces", "0"], ["--max-pixels", "-1"]):
        with pytest.raises(SystemExit):
            main([*command, *bad])
        assert "must be" in capsys.readouterr().err


# ---------------------------------------------------------------------------- slow: DirectRunner end to end
def reconstruct_reference(paths, model_dir, export_dir, out_dir, **options) -> dict:
    """`tf2dasl reconstruct` on the same photos with the same SavedModel (``options``: reconstruct_paths'):
    image path → its JSON record."""
    from tf2dasl.batch import reconstruct_paths
    from tf2dasl.reconstruct import make_reconstructor

    rec = make_reconstructor(model_dir, runtime="savedmodel", export_dir=export_dir)
    summary = reconstruct_paths(paths, rec, out_dir, progress=False, max_pixels=MAX_PIXELS, **options)
    assert not summary.failures
    return {r["image"]: r for r in map(json.loads, map(Path.read_text, Path(out_dir).glob("*.json")))
            if "image" in r}


def assert_same_faces(beam_records: list[dict], reference: dict, model_dir) -> None:
    """Per photo: the same faces, landmarks within LANDMARK_TOL (decoded from the full-precision parameters)."""
    from tf2dasl.geometry.decoder import Decoder
    from tf2dasl.io.model_files import read_spec_and_morphable

    spec, mm = read_spec_and_morphable(model_dir)
    decoder = Decoder(mm, spec.input_size, spec.crop_convention)
    assert sorted(r["image"] for r in beam_records) == sorted(reference)
    for got in beam_records:
        want = reference[got["image"]]
        assert {k: v for k, v in got.items() if k != "faces"} == {k: v for k, v in want.items() if k != "faces"}
        assert len(got["faces"]) == len(want["faces"]) > 0
        for g, w in zip(got["faces"], want["faces"]):
            np.testing.assert_allclose(g["roi_box"], w["roi_box"], atol=LANDMARK_TOL)
            lm = [decoder.landmarks(np.array([f["params"]], np.float32), np.array([f["roi_box"]], np.float32))
                  for f in (g, w)]
            np.testing.assert_allclose(lm[0], lm[1], atol=LANDMARK_TOL, rtol=0)
            np.testing.assert_allclose(g["landmarks_3d"], w["landmarks_3d"], atol=LANDMARK_TOL + 1e-9, rtol=0)


@pytest.mark.slow
@needs_beam
def test_the_cli_pipeline_gives_reconstructs_faces_and_a_dead_letter_for_the_rest(mb05_dir, export_dir_mb05, shared_dir,
                                                                              tmp_path, capsys):
    import pyarrow.parquet as pq

    photos = tmp_path / "photos"
    expected = bad_files(photos, shared_dir / "data" / "images" / "emma.jpg")
    for name in PHOTOS:
        (photos / name).write_bytes((shared_dir / "data" / "images" / name).read_bytes())
    reference = reconstruct_reference([photos / n for n in PHOTOS], mb05_dir, export_dir_mb05, tmp_path / "ref")
    prefix = f"{tmp_path}/beam/run-"
    rc = main(["reconstruct-beam", f"{photos}/*", "--model", str(mb05_dir), "--export-dir", str(export_dir_mb05),
               "--out", prefix, "--parquet", f"--max-pixels={MAX_PIXELS}", "--faces-per-batch=4",
               "--direct_num_workers=1"])
    out = capsys.readouterr().out
    assert rc == 1, out  # the bad files are failures (all but the blank one, which has no face)
    assert f"{len(PHOTOS) + len(expected)} photos: {len(PHOTOS)} written" in out, out
    records = read_lines(prefix + "photos-*-of-*.jsonl")
    assert_same_faces(records, reference, mb05_dir)
    dead = {Path(r["image"]).name: r for r in read_lines(prefix + "dead_letter-*-of-*.jsonl")}
    assert {n: r["stage"] for n, r in dead.items()} == expected
    faces = pq.read_table(glob.glob(prefix + "faces-*.parquet")).to_pylist()
    assert len(faces) == sum(len(r["faces"]) for r in records)
    assert sorted(glob.glob(f"{tmp_path}/beam/*")) == sorted(glob.glob(f"{tmp_path}/beam/run-*-of-*.*"))  # no temp


@pytest.mark.slow
@needs_beam
def test_faces_over_max_faces_are_capped_and_listed_as_reconstruct_lists_them(mb05_dir, export_dir_mb05, shared_dir,
                                                                               tmp_path, capsys):
    group = shared_dir / "data" / "images" / GROUP
    reference = reconstruct_reference([group], mb05_dir, export_dir_mb05, tmp_path / "ref", max_faces=FEW_FACES)
    capped = json.loads((tmp_path / "ref" / "summary.json").read_text())["capped"]
    assert capped == [{"image": str(group), "faces": capped[0]["faces"], "reconstructed": FEW_FACES}]
    prefix = f"{tmp_path}/beam/"
    rc = main(["reconstruct-beam", str(group), "--model", str(mb05_dir), "--export-dir", str(export_dir_mb05),
               "--out", prefix, f"--max-pixels={MAX_PIXELS}", f"--max-faces={FEW_FACES}", "--direct_num_workers=1"])
    out = capsys.readouterr().out
    assert rc == 1 and f"1 photos: 1 written with {FEW_FACES} faces" in out and "1 with more faces than" in out, out
    assert read_lines(prefix + "capped-*-of-*.jsonl") == capped
    assert_same_faces(read_lines(prefix + "photos-*-of-*.jsonl"), reference, mb05_dir)


@pytest.mark.slow
@needs_beam
def test_a_four_channel_model_runs_one_pass_on_the_box_crop_as_reconstruct_does(model4_dir, export_dir_4ch,
                                                                                 shared_dir, tmp_path):
    from tf2dasl.beam import reconstruct_beam

    paths = [shared_dir / "data" / "images" / n for n in PHOTOS[:2]]
    reference = reconstruct_reference(paths, model4_dir, export_dir_4ch, tmp_path / "ref")
    summary = reconstruct_beam([str(p) for p in paths], str(model4_dir), str(export_dir_4ch), f"{tmp_path}/beam/",
                               settings={"max_pixels": MAX_PIXELS})
    assert summary.accounted and summary.written == len(paths) and not summary.failed
    assert_same_faces(read_lines(f"{tmp_path}/beam/photos-*-of-*.jsonl"), reference, model4_dir)


@pytest.mark.slow
@needs_beam
def test_photos_whose_inference_or_step_raises_land_in_the_dead_letter(mb05_dir, export_dir_mb05, shared_dir,
                                                                       tmp_path, monkeypatch):
    """A RunInference batch that raises dead-letters each of its photos (``inference``), a step that raises on one
    photo dead-letters that photo (``crash``); the others are written."""
    from tf2dasl.beam import model_handler, reconstruct_beam
    from tf2dasl.beam.photos import FacesFn

    images = shared_dir / "data" / "images"
    infer, faces_process = model_handler.infer_photos, FacesFn.process

    def infer_failing_on_emma(model, batch, *args):
        if any(p.path.endswith("emma.jpg") for p in batch):
            raise RuntimeError("the regressor failed on this batch")
        return infer(model, batch, *args)

    def faces_failing_on_takeo(self, result):
        if result.example.path.endswith("takeo.ppm"):
            raise ValueError("a bug in the faces step")
        return faces_process(self, result)

    monkeypatch.setattr(model_handler, "infer_photos", infer_failing_on_emma)
    monkeypatch.setattr(FacesFn, "process", faces_failing_on_takeo)
    summary = reconstruct_beam([str(images / n) for n in ("emma.jpg", "takeo.ppm", "JianzhuGuo.jpg")],
                               str(mb05_dir), str(export_dir_mb05), f"{tmp_path}/run/", faces_per_batch=1)
    assert (summary.photos, summary.written, summary.failed) == (3, 1, {"inference": 1, "crash": 1})
    dead = {Path(r["image"]).name: r for r in read_lines(f"{tmp_path}/run/dead_letter-*-of-*.jsonl")}
    assert dead["emma.jpg"]["stage"] == "inference" and "the regressor failed" in dead["emma.jpg"]["error"]
    assert dead["takeo.ppm"]["stage"] == "crash" and "a bug in the faces step" in dead["takeo.ppm"]["error"]
    assert [Path(r["image"]).name for r in read_lines(f"{tmp_path}/run/photos-*-of-*.jsonl")] == ["JianzhuGuo.jpg"]


@pytest.mark.slow
@needs_beam
def test_a_failed_run_leaves_no_shard_and_the_prefix_fresh(mb05_dir, export_dir_mb05, shared_dir, tmp_path,
                                                           monkeypatch):
    """Beam's sinks write the shards into a temporary folder and rename them only when the run succeeded."""
    from tf2dasl.beam import reconstruct_beam
    from tf2dasl.beam.photos import FacesFn

    def broken_setup(self):
        raise RuntimeError("a worker that cannot start")

    photo = str(shared_dir / "data" / "images" / "JianzhuGuo.jpg")
    prefix = f"{tmp_path}/run/"
    with monkeypatch.context() as patch:
        patch.setattr(FacesFn, "setup", broken_setup)
        with pytest.raises(Exception, match="a worker that cannot start"):
            reconstruct_beam([photo], str(mb05_dir), str(export_dir_mb05), prefix)
    assert not glob.glob(prefix + "*-of-*")
    summary = reconstruct_beam([photo], str(mb05_dir), str(export_dir_mb05), prefix)  # the same prefix: still fresh
    assert summary.written == 1 and len(read_lines(prefix + "photos-*-of-*.jsonl")) == 1
