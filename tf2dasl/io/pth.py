"""Read PyTorch ``.pth`` checkpoints safely, without torch: tensors come back as numpy arrays.

Two on-disk formats are understood (both written by ``torch.save``):

* **legacy** (torch < 1.6, or ``_use_new_zipfile_serialization=False``): consecutive pickles --
  the magic number ``0x1950a86a20f9469cfc6c``, the protocol version ``1001``, a ``sys_info`` dict
  (``little_endian``, ``type_sizes``), the main object whose persistent ids are
  ``('storage', storage_type, root_key, location, numel, view_metadata)``, a pickled list of
  storage keys, and then for each key in that order an 8-byte little-endian int64 element count
  followed by ``count * itemsize`` raw bytes.  ``view_metadata`` is ``None`` or
  ``(view_key, offset, size)`` in elements of the root storage.
* **zip** (torch >= 1.6): a zip with ``<archive>/data.pkl`` (persistent ids
  ``('storage', storage_type, key, location, numel)``) and each storage's raw bytes in
  ``<archive>/data/<key>``; ``<archive>/byteorder`` (``little``/``big``) is honoured when present.

Tensors are pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks[, metadata])`` (offset/size/stride in elements); they are rebuilt
with ``numpy.lib.stride_tricks.as_strided`` after a bounds check and returned as C-contiguous,
writable copies with the storage's dtype (``HalfStorage`` -> float16, ``LongStorage`` -> int64,
``BFloat16Storage`` -> ``ml_dtypes.bfloat16``, ...).  0-d tensors become 0-d arrays.

Security: unpickling goes through a restricted ``pickle.Unpickler`` whose ``find_class`` resolves
only ``collections.OrderedDict``, the ``torch._utils._rebuild_*`` tensor functions, the
``torch.*Storage`` classes and ``torch.<dtype>`` attributes -- each to a frozen stand-in defined
here (torch is never imported).  Every other global (``os.system``, ``builtins.eval``, a pickled
``nn.Module``...) and every persistent id that is not a storage tuple raises
:class:`CheckpointError`, before anything runs.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

from ..errors import UserError
from .pickles import RestrictedUnpickler

__all__ = ["CheckpointError", "load_state_dict", "read_checkpoint"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch dtype name -> numpy dtype (string) or ml_dtypes attribute name (prefixed "ml:")
_DTYPES = {
    "float16": "f2", "float32": "f4", "float64": "f8", "bfloat16": "ml:bfloat16",
    "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1", "bool": "?",
    "uint16": "u2", "uint32": "u4", "uint64": "u8",  # only via _rebuild_tensor_v3 (torch >= 2.3)
    "float8_e4m3fn": "ml:float8_e4m3fn", "float8_e5m2": "ml:float8_e5m2",
}
_STORAGES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}
_ALLOWED = "only tensors and OrderedDict are allowed"


class CheckpointError(UserError):
    """A checkpoint could not be read; the message is one line naming the file and the problem."""


class _Frozen:
    """Base for the stand-ins handed to the pickle: no ``__dict__`` and no ``setattr``, so a
    BUILD opcode cannot tamper with them (they are shared between loads)."""

    __slots__ = ()

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _init(self, **kw):
        for key, value in kw.items():
            object.__setattr__(self, key, value)


class _DType(_Frozen):
    """Stand-in for ``torch.<name>`` dtypes and ``torch.<X>Storage`` classes (``dtype`` = name)."""

    __slots__ = ("torch_name", "dtype")

    def __init__(self, torch_name: str, dtype: str):
        self._init(torch_name=torch_name, dtype=dtype)

    def numpy(self, name: str) -> np.dtype:
        spec = _DTYPES[self.dtype]
        if not spec.startswith("ml:"):
            return np.dtype(spec)
        return np.dtype(getattr(ml_dtypes, spec[3:]))  # ml_dtypes: bfloat16 & co (installed with TensorFlow)


class _Storage(_Frozen):
    """One storage: a 1-D numpy array ``data`` (``None`` while the legacy data is unread)."""

    __slots__ = ("data",)

    def __init__(self, data):
        self._init(data=data)


class _Func(_Frozen):
    """Stand-in for an allowed callable global; calls ``fn(file_name, *args)``."""

    __slots__ = ("fn", "name")

    def __init__(self, fn, name):
        self._init(fn=fn, name=name)

    def __call__(self, *args):
        return self.fn(self.name, *args)


def _ints(value, what, name, n=None):
    seq = value if isinstance(value, (tuple, list)) else [value]
    if (n is not None and len(seq) != n) or not all(type(v) is int and v >= 0 for v in seq):
        raise CheckpointError(f"{name}: malformed tensor record: {what} {value!r:.60}")
    return seq


def _strided(name, storage, offset, size, stride, dtype=None):
    """Contiguous copy of the view ``storage[offset + sum(i_k * stride_k)]`` of shape ``size``."""
    if not isinstance(storage, _Storage) or storage.data is None:
        if isinstance(storage, _Storage):  # first pass over a legacy pickle: data comes later
            return None
        raise CheckpointError(f"{name}: malformed tensor record: storage is "
                              f"{type(storage).__name__}")
    data = storage.data
    if dtype is not None:  # _rebuild_tensor_v3: untyped bytes reinterpreted as `dtype`
        if data.nbytes % dtype.itemsize:
            raise CheckpointError(f"{name}: storage of {data.nbytes} bytes is not a whole number "
                                  f"of {dtype} elements")
        data = data.view(dtype)
    (offset,) = _ints(offset, "offset", name)
    size = _ints(size, "size", name)
    stride = _ints(stride, "stride", name, len(size))
    if 0 in size:
        return np.empty(size, data.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= data.size:
        raise CheckpointError(f"{name}: tensor of size {tuple(size)} at offset {offset} reads "
                              f"past its storage of {data.size} elements")
    base = data[offset:]
    strides = tuple(st * base.itemsize for st in stride)
    view = np.lib.stride_tricks.as_strided(base, tuple(size), strides)
    return np.array(view, order="C", copy=True)


def _rebuild_tensor_v2(name, storage, offset, size, stride, *requires_grad_hooks_metadata):
    """Also serves ``_rebuild_tensor(storage, offset, size, stride)``; the extras are ignored."""
    if len(requires_grad_hooks_metadata) > 3:
        raise CheckpointError(f"{name}: malformed tensor record: too many arguments")
    return _strided(name, storage, offset, size, stride)


def _rebuild_tensor_v3(name, storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, _DType):
        raise CheckpointError(f"{name}: malformed tensor record: dtype {dtype!r:.60}")
    return _strided(name, storage, offset, size, stride, dtype.numpy(name))


def _rebuild_parameter(name, data, requires_grad=False, hooks=None):
    if data is not None and not isinstance(data, np.ndarray):
        raise CheckpointError(f"{name}: malformed parameter record ({type(data).__name__})")
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v2,
    **{("torch._utils", f.__name__): f for f in (_rebuild_tensor_v2, _rebuild_tensor_v3,
                                                 _rebuild_parameter)},
    **{("torch", k): _DType(k, v) for k, v in _STORAGES.items()},
    **{("torch", k): _DType(k, k) for k in _DTYPES},
}


def _resolver(name):
    """Allowed globals of a checkpoint: OrderedDict and dtype stand-ins as they are, tensor functions bound to
    the file ``name`` (for their messages)."""
    def resolve(module, qualname):
        obj = _GLOBALS.get((module, qualname))
        if obj is None or obj is collections.OrderedDict or isinstance(obj, _DType):
            return obj
        return _Func(obj, name)
    return resolve


def _storage_server(name, storage_fn):
    """The persistent-id hook: only ``('storage', <Storage class>, ...)`` tuples reach ``storage_fn``."""
    def serve(pid):
        if (storage_fn is None or not isinstance(pid, tuple) or len(pid) < 5
                or pid[0] != "storage" or not isinstance(pid[1], _DType)
                or pid[1].torch_name not in _STORAGES):
            raise CheckpointError(f"{name}: refused to load: persistent id {pid!r:.60} is "
                                  f"not a tensor storage ({_ALLOWED})")
        _ints(pid[4], "storage element count", name)
        return storage_fn(pid)
    return serve


def _unpickle(f, name, storage_fn=None, what="pickle"):
    try:
        refuse = lambda what: CheckpointError(  # noqa: E731
            f"{name}: refused to load: the pickle asks for {what}, which a checkpoint never needs ({_ALLOWED})")
        return RestrictedUnpickler(f, _resolver(name), refuse, _storage_server(name, storage_fn),
                                   encoding="utf-8").load()
    except CheckpointError:
        raise
    except (EOFError, pickle.UnpicklingError) as e:
        if isinstance(e, EOFError) or "truncated" in str(e):
            raise CheckpointError(f"{name}: truncated file: the {what} ends early "
                                  "(incomplete download or copy?)") from None
        raise CheckpointError(f"{name}: corrupt {what}: {str(e)[:80]}") from None
    except Exception as e:  # malformed opcodes, bad arguments to the stand-ins, ...
        raise CheckpointError(f"{name}: corrupt {what}: {type(e).__name__}: "
                              f"{str(e)[:80]}") from None


def _raw(buf, dtype, big_endian):
    """1-D array of ``dtype`` from raw storage bytes (byte-swapped if the file is big-endian)."""
    if big_endian and dtype.itemsize > 1:
        return np.frombuffer(buf, f"<u{dtype.itemsize}").byteswap().view(dtype)
    return np.frombuffer(buf, dtype)


def _read_legacy(f, name):
    for expected, what in ((LEGACY_MAGIC, "magic number"), (LEGACY_PROTOCOL, "protocol version")):
        value = _unpickle(f, name, what=what)
        if value != expected:
            raise CheckpointError(f"{name}: a pickle but not a PyTorch checkpoint (bad {what} "
                                  f"{value!r:.40}); only torch.save files are supported")
    file_size = os.fstat(f.fileno()).st_size
    sys_info = _unpickle(f, name, what="sys_info")
    big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    start = f.tell()
    roots = {}  # root_key -> (_DType, numel); pass 1 only records them

    def record(pid):
        if len(pid) != 6:
            raise CheckpointError(f"{name}: malformed legacy storage id {pid!r:.60}")
        stype, numel = roots.setdefault(pid[2], (pid[1], pid[4]))
        if stype.dtype != pid[1].dtype or numel != pid[4]:
            raise CheckpointError(f"{name}: storage {pid[2]!r:.30} is declared twice, differently")
        return _Storage(None)

    _unpickle(f, name, record, what="main pickle")
    keys = _unpickle(f, name, what="storage key list")
    if not isinstance(keys, list) or sorted(map(repr, keys)) != sorted(map(repr, roots)):
        raise CheckpointError(f"{name}: corrupt file: the storage key list does not match the "
                              "storages the tensors use")
    loaded = {}
    for key in keys:
        stype, numel = roots[key]
        dtype = stype.numpy(name)
        head = f.read(8)
        count = struct.unpack("<q", head)[0] if len(head) == 8 else None
        if count is not None and count != numel:
            raise CheckpointError(f"{name}: storage {key!r:.30} holds {count} elements but its "
                                  f"tensors expect {numel}; the file is corrupt")
        nbytes = numel * dtype.itemsize
        if count is None or nbytes > file_size - f.tell():
            raise CheckpointError(f"{name}: truncated file: storage {key!r:.30} needs {nbytes} "
                                  "bytes of data but the file ends early")
        loaded[key] = _Storage(_raw(f.read(nbytes), dtype, big))

    views = {}

    def serve(pid):
        root = loaded[pid[2]]
        if pid[5] is None:
            return root
        view_key, offset, size = pid[5]
        _ints([offset, size], "storage view", name)
        if offset + size > root.data.size:
            raise CheckpointError(f"{name}: storage view {view_key!r:.30} runs past its storage")
        return views.setdefault(view_key, _Storage(root.data[offset:offset + size]))

    f.seek(start)
    return _unpickle(f, name, serve, what="main pickle")


def _read_zip(f, name):
    try:
        zf = zipfile.ZipFile(f)
        pkls = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise CheckpointError(f"{name}: a zip file but not a PyTorch checkpoint (expected "
                                  f"one <folder>/data.pkl, found {len(pkls)})")
        root = pkls[0][:-len("data.pkl")]
        if any(n.startswith(root + "code/") for n in zf.namelist()):
            raise CheckpointError(f"{name}: a TorchScript archive (torch.jit.save), not a "
                                  "checkpoint; save model.state_dict() with torch.save instead")
        names = set(zf.namelist())
        big = (root + "byteorder" in names and zf.read(root + "byteorder").strip() == b"big")
        storages = {}

        def serve(pid):
            stype, key, numel = pid[1], str(pid[2]), pid[4]
            if key not in storages:
                member = f"{root}data/{key}"
                if member not in names:
                    raise CheckpointError(f"{name}: storage {key!r:.30} is missing from the zip")
                info = zf.getinfo(member)
                if info.CRC == 0:  # torch can be told to skip CRCs (set_crc32_options(False))
                    info.CRC = None
                dtype = stype.numpy(name)
                if info.file_size != numel * dtype.itemsize:
                    raise CheckpointError(f"{name}: storage {key!r:.30} holds {info.file_size} "
                                          f"bytes but its tensors expect {numel} x {dtype} "
                                          "elements; the file is corrupt")
                try:
                    storages[key] = _Storage(_raw(zf.read(info), dtype, big))
                except (zipfile.BadZipFile, EOFError, OSError) as e:
                    raise CheckpointError(f"{name}: corrupt zip checkpoint: storage {key!r:.30}: "
                                          f"{str(e)[:60]}; re-download or re-save it") from None
            return storages[key]

        with zf.open(pkls[0]) as pkl:
            return _unpickle(pkl, name, serve, what="data.pkl")
    except (zipfile.BadZipFile, EOFError, OSError, struct.error) as e:
        raise CheckpointError(f"{name}: truncated or corrupt zip checkpoint ({str(e)[:60]}); "
                              "re-download or re-save it") from None


_SIGNATURES = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image",
               b"\x1f\x8b": "gzip data", b"\x89HDF": "an HDF5 file", b"\x93NUMPY": "a .npy array"}


def read_checkpoint(path):
    """Unpickle a ``torch.save`` file; every tensor/Parameter becomes a numpy array.

    Returns whatever was saved (dicts, OrderedDicts, lists, numbers, strings, arrays), e.g.
    ``{'epoch': 62, 'state_dict': OrderedDict([('module.conv1.weight', ndarray(16,3,3,3)), ...])}``.
    Raises :class:`CheckpointError` for missing, empty, truncated, foreign or unsafe files.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise CheckpointError(f"{name}: not found")
    if os.path.isdir(name):
        raise CheckpointError(f"{name}: is a directory, expected a .pth/.pt file")
    with open(name, "rb") as f:
        head = f.read(8)
        f.seek(0)
        if not head:
            raise CheckpointError(f"{name}: empty file (0 bytes); re-download or re-save it")
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _read_zip(f, name)
        if head.startswith(b"\x80"):
            return _read_legacy(f, name)
    kind = next((v for k, v in _SIGNATURES.items() if head.startswith(k)), None)
    if kind is None and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        kind = "text"
    raise CheckpointError(f"{name}: not a PyTorch checkpoint (looks like {kind or 'unknown data'}, "
                          f"starts with {head!r})")


def load_state_dict(path, *, strip_prefixes=("module.",)):
    """Tensors of a checkpoint as ``OrderedDict[str, numpy.ndarray]``, in file order.

    Accepts a bare state dict or a dict holding one under ``'state_dict'``, ``'model_state_dict'``
    or ``'model'``.  Leading ``strip_prefixes`` (``module.`` from ``nn.DataParallel``) are removed
    from the keys; non-tensor values (epoch numbers, ``_metadata``...) are skipped.
    Shapes are PyTorch's: conv weights ``(out, in/groups, kh, kw)``, linear ``(out, in)``.
    """
    obj = read_checkpoint(path)
    name = os.fspath(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name}: holds a {type(obj).__name__}, not a state dict")
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    out = collections.OrderedDict()
    for key, value in obj.items():
        if not (isinstance(key, str) and isinstance(value, np.ndarray)):
            continue
        stripped = True
        while stripped:
            stripped = False
            for prefix in strip_prefixes:
                if prefix and key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if key in out:
            raise CheckpointError(f"{name}: key {key!r:.60} appears twice after stripping "
                                  f"{strip_prefixes}")
        out[key] = value
    if not out:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointError(f"{name}: no tensors found (top-level keys: {keys or 'none'})")
    return out
