"""Hide native libraries' start-up chatter on stderr (TensorFlow's CUDA probing, LiteRT's delegate notice)."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_hidden():
    """Redirect file descriptor 2 while the block runs; what was written is replayed if the block raises an
    error (not on KeyboardInterrupt)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except Exception:  # not on Ctrl-C: the user asked to stop, not to see the chatter
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
