"""Files that appear whole or not at all.

:func:`atomic_file` yields a temporary file in the target's own folder and
renames it over the target only when the ``with`` body finishes (after
flushing it to disk); on any failure it removes the temporary file, so the
target keeps its previous complete content or stays absent. The rename
(``os.replace``) is atomic on POSIX and Windows for two names in one folder.

This module imports nothing from the package: the checkpoint writer of
:mod:`rla_mmdet.engine.fileio` and the download cache of
:mod:`rla_mmdet.checkpoint.remote` both use it.
"""
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Union

__all__ = ['atomic_file', 'atomic_write']

PathLike = Union[str, 'os.PathLike[str]']


@contextmanager
def atomic_file(path: PathLike, suffix: str = '.tmp') -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into.

    Args:
        path: The file to create or replace; its folder must exist.
        suffix: The end of the temporary file's name
            (``.<name>.<random><suffix>``, beside ``path``), which lets a
            caller recognise its own leftovers after a crash.

    Yields:
        The open temporary file. When the body returns, it is flushed,
        synced and renamed to ``path``; when the body raises, it is removed
        and the exception goes on.
    """
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.',
                               suffix=suffix,
                               dir=osp.dirname(osp.abspath(path)))
    try:
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); the target gets the mode
        # open() would give a new file, so checkpoints stay shareable.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system
    tells it (Linux), else set and put back at once."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(data: bytes, path: PathLike) -> None:
    """Write ``data`` to ``path`` (creating its folders) through
    :func:`atomic_file`."""
    os.makedirs(osp.dirname(osp.abspath(os.fspath(path))), exist_ok=True)
    with atomic_file(path) as f:
        f.write(data)
