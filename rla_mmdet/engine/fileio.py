"""Atomic writes for MMEngine's local file backend.

MMEngine saves a checkpoint with ``LocalBackend.put``, which opens the final
path and writes into it: a process killed during the write leaves a
truncated ``epoch_N.pth`` behind. :class:`AtomicLocalBackend` writes to a
temporary file in the same directory, flushes it to disk and renames it over
the target, so a checkpoint path holds either the previous complete file or
the new complete file, never a partial one.
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend, register_backend


def atomic_write(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` through a temporary file and rename."""
    filepath = os.fspath(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(filepath) + '.', suffix='.tmp',
        dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` are atomic."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


def register_atomic_local_backend() -> None:
    """Make MMEngine use :class:`AtomicLocalBackend` for local paths."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
