"""Tests for tf2dasl.io.pth: the torch-free, restricted .pth reader.

Test checkpoints are written here without torch: a pure-Python pickler emits the same opcodes
torch.save does (``torch._utils._rebuild_tensor_v2`` globals, ``('storage', ...)`` persistent ids)
in both the legacy and the zip layout.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from tf2dasl.io.pth import CheckpointError, load_state_dict, read_checkpoint

# ---------------------------------------------------------------------------- writer helpers

_STORAGE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                  "bfloat16": "BFloat16Storage", "int64": "LongStorage", "int32": "IntStorage",
                  "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
                  "bool": "BoolStorage"}


class G:
    """A global `module.name` the writer emits verbatim (a GLOBAL opcode), importable or not."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce insists on a callable
        raise AssertionError("never called")


class Store:
    """A storage: 1-D array `data` under `key`; `view_of=(root, offset)` makes a legacy view."""

    def __init__(self, data, key, view_of=None, numel=None, untyped=False):
        self.data, self.key, self.view_of, self.untyped = data, key, view_of, untyped
        self.numel = data.size if numel is None else numel


class T:
    """A tensor pickled as torch does: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride, v3_dtype=None):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.v3_dtype = v3_dtype

    def __reduce__(self):
        if self.v3_dtype:
            return (G("torch._utils", "_rebuild_tensor_v3"),
                    self.args + (False, collections.OrderedDict(), G("torch", self.v3_dtype)))
        hooks = collections.OrderedDict()
        return G("torch._utils", "_rebuild_tensor_v2"), self.args + (False, hooks)


class Param:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        hooks = collections.OrderedDict()
        return G("torch._utils", "_rebuild_parameter"), (self.tensor, True, hooks)


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


_keys = iter(range(10**6))


def tensor(arr):
    arr = np.array(arr, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    stride = [s // arr.itemsize for s in arr.strides] if arr.size else [1] * arr.ndim
    return T(Store(arr.ravel().copy(), str(next(_keys))), 0, arr.shape, stride)


class Writer(pickle._Pickler):
    def __init__(self, file, legacy, bad_pid=False):
        super().__init__(file, protocol=2)
        self.legacy, self.bad_pid, self.storages = legacy, bad_pid, {}

    def persistent_id(self, obj):
        if self.bad_pid and isinstance(obj, Store):
            return ("module", "evil_source.py")
        if not isinstance(obj, Store):
            return None
        root, offset = obj.view_of or (obj, 0)
        self.storages[root.key] = root
        stype = "UntypedStorage" if root.untyped else _STORAGE_NAMES[str(root.data.dtype)]
        pid = ("storage", G("torch", stype), root.key, "cpu", root.numel)
        if self.legacy:
            pid += ((obj.key, offset, obj.data.size) if obj.view_of else None,)
        return pid

    def save_g(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[G] = save_g


def save_legacy(obj, path, bad_pid=False, count_delta=0):
    f = io.BytesIO()
    for head in (0x1950A86A20F9469CFC6C, 1001,
                 {"protocol_version": 1001, "little_endian": True,
                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(head, f, protocol=2)
    w = Writer(f, legacy=True, bad_pid=bad_pid)
    w.dump(obj)
    keys = sorted(w.storages)
    pickle.dump(keys, f, protocol=2)
    for k in keys:
        data = w.storages[k].data
        f.write(struct.pack("<q", data.size + count_delta) + data.tobytes())
    path.write_bytes(f.getvalue())
    return path


def save_zip(obj, path, archive="archive", bad_pid=False, byteorder=b"little"):
    f = io.BytesIO()
    w = Writer(f, legacy=False, bad_pid=bad_pid)
    w.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", f.getvalue())
        z.writestr(f"{archive}/byteorder", byteorder)
        for k, s in w.storages.items():
            data = s.data.astype(s.data.dtype.newbyteorder(">")) if byteorder == b"big" else s.data
            z.writestr(f"{archive}/data/{k}", data.tobytes())
        z.writestr(f"{archive}/version", b"3\n")
    return path


SAVERS = {"legacy": save_legacy, "zip": save_zip}


@pytest.fixture(params=sorted(SAVERS))
def save(request):
    return SAVERS[request.param]


def check_error(excinfo, path, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg, msg
    for word in words:
        assert word in msg, msg


# ---------------------------------------------------------------------------- round trips


def test_round_trip_dtypes_and_views(save, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    base = np.arange(40, dtype=np.float32)
    shared = Store(base, "shared")
    sd = collections.OrderedDict([
        ("conv.weight", Param(tensor(w))),
        ("bn.num_batches_tracked", tensor(np.array(7, np.int64))),
        ("half", tensor(np.array([1.5, -2.0, 65504.0], np.float16))),
        ("ids", tensor(np.array([[1, -2], [3, 2**40]], np.int64))),
        ("mask", tensor(np.array([True, False, True]))),
        ("bytes", tensor(np.array([0, 255], np.uint8))),
        ("f64", tensor(np.array([np.pi], np.float64))),
        ("empty", tensor(np.zeros((0, 5), np.float32))),
        ("view_t", T(shared, 3, (5, 4), (1, 5))),  # transposed block at offset 3
        ("view_row", T(shared, 30, (2, 3), (3, 1))),  # same storage, another offset
        ("expanded", T(shared, 1, (2, 3), (0, 1))),  # stride 0 (expand)
    ])
    ck = read_checkpoint(save(sd, tmp_path / "ck.pth"))
    assert isinstance(ck, collections.OrderedDict) and list(ck) == list(sd)
    np.testing.assert_array_equal(ck["conv.weight"], w)
    assert ck["conv.weight"].dtype == np.float32 and ck["conv.weight"].flags.writeable
    assert ck["bn.num_batches_tracked"].shape == () and ck["bn.num_batches_tracked"] == 7
    assert ck["half"].dtype == np.float16 and ck["half"].tolist() == [1.5, -2.0, 65504.0]
    assert ck["ids"].dtype == np.int64 and ck["ids"][1, 1] == 2**40
    assert ck["mask"].dtype == np.bool_ and ck["mask"].tolist() == [True, False, True]
    assert ck["bytes"].dtype == np.uint8 and ck["f64"][0] == np.pi
    assert ck["empty"].shape == (0, 5)
    np.testing.assert_array_equal(ck["view_t"], base[3:23].reshape(4, 5).T)
    np.testing.assert_array_equal(ck["view_row"], base[30:36].reshape(2, 3))
    np.testing.assert_array_equal(ck["expanded"], np.broadcast_to(base[1:4], (2, 3)))
    for key in ("view_t", "expanded"):
        assert ck[key].flags.c_contiguous and ck[key].flags.owndata


def test_wrapped_state_dict_and_prefixes(save, tmp_path):
    inner = collections.OrderedDict([("module.fc.weight", tensor(np.ones((2, 3), np.float32))),
                                     ("module.fc.bias", tensor(np.zeros(2, np.float32)))])
    path = save({"epoch": 62, "state_dict": inner, "note": "hi"}, tmp_path / "ck.pth")
    sd = load_state_dict(path)
    assert list(sd) == ["fc.weight", "fc.bias"] and sd["fc.weight"].shape == (2, 3)
    assert list(load_state_dict(path, strip_prefixes=())) == ["module.fc.weight", "module.fc.bias"]
    ck = read_checkpoint(path)
    assert ck["epoch"] == 62 and ck["note"] == "hi"
    path2 = save({"model_state_dict": {"a": tensor(np.ones(1, np.float32))}}, tmp_path / "m.pth")
    assert list(load_state_dict(path2)) == ["a"]
    with pytest.raises(CheckpointError) as e:
        load_state_dict(save({"epoch": 1}, tmp_path / "none.pth"))
    check_error(e, tmp_path / "none.pth", "no tensors")


def test_zip_details(tmp_path):
    """Any archive folder name; big-endian byteorder; torch>=2.3 untyped storage + dtype (v3)."""
    sd = {"w": tensor(np.arange(6, dtype=np.float32).reshape(2, 3))}
    path = save_zip(sd, tmp_path / "be.pth", archive="mb05_120x120", byteorder=b"big")
    np.testing.assert_array_equal(load_state_dict(path)["w"], np.arange(6).reshape(2, 3))
    raw = np.array([1, 2, 65535], np.uint16)
    v3 = T(Store(raw.view(np.uint8).copy(), "u", untyped=True), 1, (2,), (1,), v3_dtype="uint16")
    assert read_checkpoint(save_zip({"u": v3}, tmp_path / "v3.pth"))["u"].tolist() == [2, 65535]


def test_bfloat16(save, tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    arr = np.array([1.0, -0.5, 3.0], ml_dtypes.bfloat16)
    out = read_checkpoint(save({"b": tensor(arr)}, tmp_path / "bf.pth"))["b"]
    assert out.dtype == ml_dtypes.bfloat16 and out.astype(np.float32).tolist() == [1.0, -0.5, 3.0]


def test_legacy_storage_view(tmp_path):
    root = Store(np.arange(10, dtype=np.float32), "root")
    view = Store(root.data[4:8], "view", view_of=(root, 4))
    ck = read_checkpoint(save_legacy({"v": T(view, 1, (3,), (1,))}, tmp_path / "v.pth"))
    assert ck["v"].tolist() == [5.0, 6.0, 7.0]


# ---------------------------------------------------------------------------- security


@pytest.mark.parametrize("how", ["os.system", "posix.system", "builtins.eval"])
def test_malicious_pickle_refused(save, tmp_path, how):
    marker = tmp_path / "pwned"
    if how == "builtins.eval":
        evil = Evil(eval, f"open({str(marker)!r}, 'w').close()")
    else:
        fn = G("os", "system") if how == "os.system" else os.system
        evil = Evil(fn, f"touch {marker}")
    path = save({"w": tensor(np.ones(2, np.float32)), "x": evil}, tmp_path / "mb.pth")
    with pytest.raises(CheckpointError) as e:
        load_state_dict(path)
    check_error(e, path, "refused to load", how, "never needs")
    assert not marker.exists()


def test_other_globals_and_pids_refused(save, tmp_path):
    for i, fn in enumerate([G("subprocess", "Popen"), G("builtins", "getattr"),
                            G("torch.nn.modules.conv", "Conv2d"), G("numpy", "load")]):
        path = save({"x": Evil(fn, "echo")}, tmp_path / f"g{i}.pth")
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(path)
        check_error(e, path, "refused to load", f"{fn.module}.{fn.name}")
    path = save({"w": tensor(np.ones(2, np.float32))}, tmp_path / "pid.pth", bad_pid=True)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "refused to load", "persistent id")


def test_plain_malicious_pickle_and_tampering(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(Evil(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "refused to load", "posix.system")
    assert not marker.exists()
    # BUILD on a shared stand-in (trying to turn FloatStorage into int64) must fail, not stick
    tamper = tmp_path / "tamper.pth"
    tamper.write_bytes(b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypeX\x05\x00\x00\x00"
                       b"int64s\x86b.")
    with pytest.raises(CheckpointError):
        read_checkpoint(tamper)
    ok = save_legacy({"w": tensor(np.ones(2, np.float32))}, tmp_path / "ok.pth")
    assert read_checkpoint(ok)["w"].dtype == np.float32


def test_out_of_bounds_view_refused(save, tmp_path):
    oob = T(Store(np.ones(6, np.float32), "s"), 2, (2, 3), (3, 1))  # needs 8 elements, has 6
    path = save({"w": oob}, tmp_path / "oob.pth")
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "past its storage")


# ---------------------------------------------------------------------------- broken files


def test_missing_empty_and_foreign_files(tmp_path):
    cases = {"missing.pth": (None, "not found"), "empty.pth": (b"", "empty"),
             "photo.pth": (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(100), "JPEG"),
             "notes.pth": (b"this is a text file\n", "text"),
             "other.zip": (None, "not a PyTorch checkpoint")}
    for name, (content, word) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("readme.txt", "hello")
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(path)
        check_error(e, path, word)
    other = tmp_path / "not_torch.pkl"
    other.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(other)
    check_error(e, other, "not a PyTorch checkpoint")


@pytest.mark.parametrize("cut", [1, 7, 100, 300, 600])
def test_truncated(save, tmp_path, cut):
    sd = {"w": tensor(np.ones((8, 8), np.float32)), "b": tensor(np.ones(8, np.float32))}
    data = save(sd, tmp_path / "full.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:-cut])
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "truncated")


def test_element_count_disagrees(tmp_path):
    path = save_legacy({"w": tensor(np.ones(4, np.float32))}, tmp_path / "l.pth", count_delta=1)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "holds 5 elements", "expect 4")
    lie = T(Store(np.ones(4, np.float32), "s", numel=5), 0, (4,), (1,))
    path = save_zip({"w": lie}, tmp_path / "z.pth")
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    check_error(e, path, "holds 16 bytes", "expect 5")


# ---------------------------------------------------------------------------- real checkpoints


def test_real_mb05(v2_checkout):
    path = v2_checkout / "weights" / "mb05_120x120.pth"
    ck = read_checkpoint(path)
    assert set(ck) == {"epoch", "state_dict"}
    assert all(k.startswith("module.") for k in ck["state_dict"])
    sd = load_state_dict(path)
    assert len(sd) == 166
    expected = {"conv1.weight": (16, 3, 3, 3), "bn1.running_mean": (16,),
                "dw2_1.conv_dw.weight": (16, 1, 3, 3), "dw2_1.conv_sep.weight": (32, 16, 1, 1),
                "dw6.conv_sep.weight": (512, 512, 1, 1), "fc_param.weight": (62, 512),
                "fc_param.bias": (62,), "fc_lm.weight": (136, 512), "bn1.num_batches_tracked": ()}
    for key, shape in expected.items():
        assert sd[key].shape == shape, key
    for key, value in sd.items():
        assert value.dtype == (np.int64 if key.endswith("num_batches_tracked") else np.float32), key
        assert np.isfinite(value).all(), key
        if key.endswith("running_var"):
            assert (value > 0).all(), key
    assert np.abs(sd["conv1.weight"]).max() > 1e-3


def test_real_faceboxes(v2_checkout):
    sd = load_state_dict(v2_checkout / "FaceBoxes" / "weights" / "FaceBoxesProd.pth")
    assert len(sd) == 174
    assert sd["conv1.conv.weight"].shape == (24, 3, 7, 7)
    assert sd["loc.0.weight"].shape == (84, 128, 3, 3) and sd["conf.2.bias"].shape == (2,)
    assert all((v > 0).all() for k, v in sd.items() if k.endswith("running_var"))
