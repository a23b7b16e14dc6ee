"""Bad values a user can write (model.json spec, train config, --epochs, 3DDFA_V2 yml, --resume with another
config) are one-line errors naming the file, the key and what is allowed — never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import WIDTH, one_line_error, train_config
from tf2dasl.io.import_3ddfa import ImportError3DDFA, import_3ddfa_v2
from tf2dasl.io.model_dir import load_model_dir, save_model_dir
from tf2dasl.io.model_files import ModelDirError
from tf2dasl.io.yaml_config import ConfigError, load_config
from tf2dasl.models.spec import ModelSpec
from tf2dasl.models.task import FaceTask
from tf2dasl.training.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- 1. model.json spec
@pytest.fixture(scope="module")
def model_dir(mm, tmp_path_factory):
    return save_model_dir(FaceTask(ModelSpec(name="tiny", width=WIDTH), mm), tmp_path_factory.mktemp("model") / "tiny")


def _corrupt(model_dir: Path, dst: Path, **spec_values) -> Path:
    shutil.copytree(model_dir, dst)
    meta = json.loads((dst / "model.json").read_text())
    meta["task"]["config"]["spec"].update(spec_values)
    (dst / "model.json").write_text(json.dumps(meta))
    return dst


def test_good_model_dir_loads(model_dir):
    assert load_model_dir(model_dir).spec.width == WIDTH


@pytest.mark.parametrize("key, value, allowed", [
    ("backbone", "resnet9000", "mobilenet_v1, mobilenet_v2, resnet50"),
    ("width", "abc", "a number"),
    ("width", 0.0, "a number in [0.03125, 4]"),
    ("width", 1000, "a number in [0.03125, 4]"),
    ("width", True, "a number"),
    ("input_size", "120", "an integer"),
    ("input_size", 0, "an integer in [32, 512]"),
    ("input_size", 100000, "an integer in [32, 512]"),
    ("name", "a b", "letters, digits"),
    ("channels", 5, "3 or 4"),
    ("num_params", 61, "62"),
    ("color_order", "RGB", "BGR"),
    ("crop_convention", "nope", "3ddfa_v1, 3ddfa_v2"),
    ("norm_scale", 0.0, "a positive number"),
    ("norm_mean", "mid", "a finite number"),
])
def test_bad_model_spec_is_a_model_dir_error(model_dir, tmp_path, key, value, allowed):
    bad = _corrupt(model_dir, tmp_path / "bad", **{key: value})
    with pytest.raises(ModelDirError) as info:
        load_model_dir(bad)
    msg = str(info.value)
    assert str(bad / "model.json") in msg and f"{key} must be" in msg and allowed in msg and repr(value) in msg, msg
    assert "\n" not in msg


def test_unknown_spec_key_and_non_mapping_spec(model_dir, tmp_path):
    with pytest.raises(ModelDirError,
                       match=r"model\.json: bad model description: unknown model spec key\(s\) \['depth'\]"):
        load_model_dir(_corrupt(model_dir, tmp_path / "a", depth=3))
    bad = shutil.copytree(model_dir, tmp_path / "b")
    meta = json.loads((bad / "model.json").read_text())
    meta["task"]["config"]["spec"] = [1, 2]
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="expected a mapping"):
        load_model_dir(bad)


def test_bad_model_spec_from_the_cli_is_one_line(synth, model_dir, tmp_path, capsys):
    bad = _corrupt(model_dir, tmp_path / "bad", crop_convention="nope")
    one_line_error(capsys, ["train", "--config", str(train_config(synth, tmp_path)), "--init", str(bad),
                        "--out", str(tmp_path / "run")], "model.json", "crop_convention", "3ddfa_v2")


# ---------------------------------------------------------------------------- 2. train config values
def test_shipped_configs_pass_the_checks():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path, TrainConfig)


@pytest.mark.parametrize("override, needles", [
    ("model.backbone=foo", ("model", "backbone", "mobilenet_v1, mobilenet_v2, resnet50", "'foo'")),
    ("model.width=0", ("model", "width must be a number in")),
    ("model.width=-0.5", ("model", "width must be a number in")),
    ("model.input_size=8", ("model", "input_size must be an integer in [32, 512]")),
    ("model.channels=5", ("model", "channels must be 3 or 4")),
    ("model.critic_hidden=[]", ("model", "critic_hidden must be")),
    ("model.critic_hidden=[32, 0]", ("model", "critic_hidden must be")),
    ("model.critic_param_slice=[0, 70]", ("model", "critic_param_slice", "<= 62")),
    ("model.critic_param_slice=[10, 10]", ("model", "critic_param_slice", "start < stop")),
    ("model.critic_param_slice=[-1, 62]", ("model", "critic_param_slice")),
    ("model.critic_param_slice=[52]", ("model", "critic_param_slice")),
    ("optim.lr=-0.001", ("optim", "lr must be a positive number")),
    ("optim.lr=0", ("optim", "lr must be a positive number")),
    ("optim.lr=.nan", ("optim", "lr must be a positive number")),
    ("optim.critic_lr=0", ("optim", "critic_lr must be a positive number")),
    ("optim.momentum=1.0", ("optim", "momentum must be in [0, 1)")),
    ("optim.critic_beta_1=-0.1", ("optim", "critic_beta_1 must be in [0, 1)")),
    ("optim.critic_beta_2=1.5", ("optim", "critic_beta_2 must be in [0, 1)")),
    ("optim.weight_decay=-1", ("optim", "weight_decay must be a number >= 0")),
    ("optim.map_lr_multiplier=-2", ("optim", "map_lr_multiplier must be a number >= 0")),
    ("optim.warmup_steps=-5", ("optim", "warmup_steps must be >= 0")),
    ("optim.clip_norm=0", ("optim", "clip_norm must be a positive number or null")),
    ("optim.optimizer=rmsprop", ("optim", "optimizer must be sgd or adam or adamw")),
    ("steps_per_epoch=0", ("steps_per_epoch must be >= 1", "null")),
    ("epochs=0", ("epochs must be >= 1",)),
    ("seed=-1", ("seed must be in [0,",)),
    ("distribute=everywhere", ("distribute must be one of",)),
    ("teacher_refine_max_yaw=0", ("teacher_refine_max_yaw", "positive angle")),
    ("name=''", ("name must be 1-128 letters",)),
    ("name='my model'", ("name must be 1-128 letters",)),
    ("data.wild.batch_size=0", ("wild", "batch_size must be positive")),
])
def test_bad_train_config_value_is_a_config_error(synth, tmp_path, override, needles):
    with pytest.raises(ConfigError) as info:
        load_config(train_config(synth, tmp_path), TrainConfig, overrides=[override])
    msg = str(info.value)
    assert msg.startswith("cfg.yaml") and "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_teacher_flip_fit_needs_a_teacher(synth, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(train_config(synth, tmp_path), TrainConfig, overrides=["teacher=false", "teacher_flip_fit=true"])
    msg = str(info.value)
    assert msg.startswith("cfg.yaml") and "\n" not in msg and "teacher_flip_fit" in msg and "teacher: true" in msg


def test_adam_is_adam_and_adamw_has_the_weight_decay(synth, tmp_path):
    """``adam`` is Adam (no weight decay: one is refused, naming adamw); ``adamw`` is AdamW with it."""
    from tf2dasl.training.trainer import _optimizers

    with pytest.raises(ConfigError, match="optimizer adam has no weight decay, got weight_decay 0.001: use "
                                          "optimizer: adamw"):
        load_config(train_config(synth, tmp_path), TrainConfig,
                    overrides=["optim.optimizer=adam", "optim.weight_decay=0.001"])
    for name, cls, decay in (("adam", "Adam", None), ("adamw", "AdamW", 0.001), ("sgd", "SGD", 0.001)):
        cfg = load_config(train_config(synth, tmp_path), TrainConfig,
                          overrides=[f"optim.optimizer={name}", f"optim.weight_decay={decay or 0}"])
        reg, critic = _optimizers(cfg, total_steps=10)
        assert type(reg).__name__ == cls and reg.weight_decay == decay and type(critic).__name__ == "Adam"


def test_good_edge_values_still_load(synth, tmp_path):
    cfg = load_config(train_config(synth, tmp_path), TrainConfig,
                      overrides=["steps_per_epoch=null", "optim.clip_norm=null", "optim.momentum=0",
                                 "model.critic_param_slice=[52, 62]", "optim.map_lr_multiplier=0", "seed=0"])
    assert cfg.steps_per_epoch is None and cfg.optim.clip_norm is None and cfg.model.critic_param_slice == [52, 62]


def test_bad_backbone_from_the_cli_is_one_line(synth, tmp_path, capsys):
    one_line_error(capsys, ["train", "--config", str(train_config(synth, tmp_path)), "--out", str(tmp_path / "run"),
                        "--set", "model.backbone=foo"], "cfg.yaml.model", "backbone", "mobilenet_v1")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- 3./4. 3DDFA_V2 yml values
def _checkout_with_yml(synth, tmp_path, text: str, name: str = "mine") -> Path:
    co = shutil.copytree(synth["checkout"], tmp_path / "checkout")
    (co / "configs" / f"{name}.yml").write_text(text)
    return co


GOOD_YML = "arch: mobilenet\nwiden_factor: 0.5\nsize: 120\nnum_params: 62\n"


@pytest.mark.parametrize("old, new, needles", [
    ("widen_factor: 0.5", "widen_factor: abc", ("widen_factor must be a number", "'abc'")),
    ("widen_factor: 0.5", "widen_factor: 0", ("widen_factor must be a number in",)),
    ("size: 120", "size: 0", ("size must be an integer in [32, 512]", "got 0")),
    ("size: 120", "size: big", ("size must be an integer", "'big'")),
    ("num_params: 62", "num_params: 40", ("num_params must be 62",)),
    ("arch: mobilenet", "arch: [mobilenet]", ("architecture", "not supported")),
])
def test_bad_yml_value_is_an_import_error(synth, tmp_path, capsys, old, new, needles):
    co = _checkout_with_yml(synth, tmp_path, GOOD_YML.replace(old, new))
    with pytest.raises(ImportError3DDFA) as info:
        import_3ddfa_v2(co, "mine")
    msg = str(info.value)
    assert str(co / "configs" / "mine.yml") in msg and "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    one_line_error(capsys, ["import-3ddfa", str(co), "--weights", "mine", "--out", str(tmp_path / "m")], "mine.yml",
               *needles)


def test_yml_that_is_not_a_mapping(synth, tmp_path, capsys):
    co = _checkout_with_yml(synth, tmp_path, "- arch\n- mobilenet\n")
    one_line_error(capsys, ["import-3ddfa", str(co), "--weights", "mine", "--out", str(tmp_path / "m")], "mine.yml",
               "expected a mapping")


def test_missing_weights_message_names_the_file(synth, tmp_path, capsys):
    co = _checkout_with_yml(synth, tmp_path, GOOD_YML)
    one_line_error(capsys, ["import-3ddfa", str(co), "--weights", "mine", "--out", str(tmp_path / "m")],
               "mine.pth", "copy or download mine.pth there")
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------- 5. train --epochs
@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_train_epochs_below_one_is_refused(synth, tmp_path, capsys, epochs):
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "--config", str(train_config(synth, tmp_path)), "--out", str(out), "--epochs", epochs],
               "--epochs must be >= 1", f"got {epochs}")
    assert not out.exists()  # nothing trained, no untrained model saved


# ---------------------------------------------------------------------------- 6. --resume checks the config
@pytest.fixture(scope="module")
def one_epoch_run(synth, tmp_path_factory):
    """A finished 1-epoch run of one step (CLI, as a user makes it)."""
    from tf2dasl.cli import main

    root = tmp_path_factory.mktemp("resume")
    cfg = train_config(synth, root, epochs=1)
    cfg.write_text(cfg.read_text().replace("steps_per_epoch: 2", "steps_per_epoch: 1"))
    out = root / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 0
    assert (out / "checkpoints/ckpt-1.index").is_file()
    return {"config": cfg, "out": out}


@pytest.mark.slow  # trains
def test_resume_with_another_config_names_the_keys(one_epoch_run, capsys):
    cfg, out = str(one_epoch_run["config"]), one_epoch_run["out"]
    before = (out / "config.yaml").read_text()
    one_line_error(capsys, ["train", "--config", cfg, "--out", str(out), "--resume", "--set", "optim.lr=0.01",
                        "--set", "loss.cycle=0"],
               "optim.lr: 0.001 in", "config.yaml, 0.01 now", "loss.cycle: 1.0 in", "0.0 now", "another --out")
    one_line_error(capsys, ["train", "--config", cfg, "--out", str(out), "--resume",
                        "--set", "model.critic_param_slice=[52, 62]"],
               "model.critic_param_slice: [0, 62] in", "[52, 62] now")
    assert (out / "config.yaml").read_text() == before  # a refused resume leaves the record alone


@pytest.mark.slow  # trains
def test_resume_with_fewer_epochs_is_refused(one_epoch_run, tmp_path, capsys):
    run = shutil.copytree(one_epoch_run["out"], tmp_path / "run")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["epochs"] = 3  # as if the run had been started with --epochs 3
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    one_line_error(capsys, ["train", "--config", str(one_epoch_run["config"]), "--out", str(run), "--resume"],
               "epochs: 3 in", "1 now", "--epochs 3")


@pytest.mark.slow  # trains
def test_resume_with_more_epochs_trains_on_and_records_them(one_epoch_run, tmp_path):
    from tf2dasl.cli import main

    run = shutil.copytree(one_epoch_run["out"], tmp_path / "run")
    assert main(["train", "--config", str(one_epoch_run["config"]), "--out", str(run), "--resume",
                 "--epochs", "2"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2
    assert (run / "checkpoints/ckpt-2.index").is_file()
    assert (run / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
    # the same config (now with --epochs 2) resumes the finished run without complaint and leaves the record as is
    before = (run / "config.yaml").read_text()
    assert main(["train", "--config", str(one_epoch_run["config"]), "--out", str(run), "--resume",
                 "--epochs", "2"]) == 0
    assert (run / "config.yaml").read_text() == before
