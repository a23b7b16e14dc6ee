"""The one restricted unpickler: pickles from published model files, with nothing but an allow-list resolved.

Two kinds of pickle reach tf2dasl, both through :class:`RestrictedUnpickler`:

* PyTorch ``.pth`` checkpoints (:mod:`tf2dasl.io.pth` passes its tensor stand-ins and storage hook);
* 3DDFA's ``.pkl`` files (morphable model, triangles, whitening, parameter arrays): dicts of numpy arrays,
  read by :func:`load_numpy_pickle` with :data:`NUMPY_GLOBALS`.

Every global outside the caller's allow-list (``os.system``, ``builtins.eval``, a pickled class...) and every
persistent id the caller does not serve raises the caller's error *before* anything is called.
"""
from __future__ import annotations

import _compat_pickle  # python-2 names in protocol-2 pickles, for messages
import collections
import importlib
import pickle
import warnings
from pathlib import Path
from typing import Callable

#: What a numpy-only pickle may name: arrays, dtypes, scalars (numpy 1 and 2 module paths) and OrderedDict.
NUMPY_GLOBALS = {(m, n): None for m, n in (
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"))}
NUMPY_GLOBALS[("collections", "OrderedDict")] = collections.OrderedDict


def global_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 spells it (python-2 names mapped), printable and at most 80 characters."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # __builtin__ -> builtins
    return f"{module}.{name}"[:80].encode("ascii", "backslashreplace").decode()


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only what ``resolve(module, name)`` returns (None: refused).

    ``refuse(what)`` builds the exception raised for a refused global (``what`` is :func:`global_name`);
    ``persistent(pid)`` serves persistent ids (None: every persistent id is refused through ``refuse``).
    """

    def __init__(self, file, resolve: Callable[[str, str], object], refuse: Callable[[str], Exception],
                 persistent: Callable[[object], object] | None = None, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._resolve, self._refuse, self._persistent = resolve, refuse, persistent

    def find_class(self, module, name):
        obj = self._resolve(module, name)
        if obj is None:
            raise self._refuse(global_name(module, name))
        return obj

    def persistent_load(self, pid):
        if self._persistent is None:
            raise self._refuse(f"persistent id {pid!r:.60}")
        return self._persistent(pid)


def _numpy_resolve(module: str, name: str):
    if (module, name) not in NUMPY_GLOBALS:
        return None
    found = NUMPY_GLOBALS[(module, name)]
    if found is None:
        with warnings.catch_warnings():  # numpy 2 warns on numpy.core, which numpy 1 pickles name
            warnings.simplefilter("ignore", DeprecationWarning)
            found = getattr(importlib.import_module(module), name)
    return found


def load_numpy_pickle(path: str | Path, error: type[Exception]):
    """The object of a ``.pkl`` that holds only dicts/lists of numpy arrays (3DDFA's configs).

    A missing file, a refused global or a corrupt pickle → ``error`` with one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")

    def refuse(what):
        return error(f"{path}: refused to unpickle {what}: only numpy arrays are expected")

    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, _numpy_resolve, refuse, encoding="latin1").load()
    except error:
        raise
    except Exception as exc:  # corrupt pickle: several exception types
        raise error(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
