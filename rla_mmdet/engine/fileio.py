"""Checkpoint IO for MMEngine runs: atomic writes and clear loader errors.

MMEngine saves a checkpoint with ``LocalBackend.put``, which opens the final
path and writes into it: a process killed during the write leaves a
truncated ``epoch_N.pth`` behind. :class:`AtomicLocalBackend` writes to a
temporary file in the same directory, flushes it to disk and renames it over
the target, so a checkpoint path holds either the previous complete file or
the new complete file, never a partial one (through
:func:`rla_mmdet.atomic.atomic_write`, the package's one atomic writer).

Nothing here is switched on by ``import rla_mmdet``. :func:`enable_checkpoint_io`
makes MMEngine use :class:`AtomicLocalBackend` for local paths and read
every checkpoint, by path or by any of its prefixes (``http(s)://``,
``torchvision://``, ``open-mmlab://``, ``s3://``...), through
:func:`rla_mmdet.checkpoint.load_checkpoint_file` (the allow-list, URLs
downloaded and checked, schemes it cannot check refused, one-sentence
errors for a missing, corrupt or unsafe file); the ``CheckpointIOHook`` of
this package's configs and its ``tools/`` scripts call it.
"""
from pathlib import Path
from collections import OrderedDict
from typing import Any, Dict, NamedTuple, Union

from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.fileio.backends import registry_utils as _backends
from mmengine.runner.checkpoint import CheckpointLoader

from ..atomic import atomic_write
from ..checkpoint import load_from_local_weights_only, load_from_remote


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` are atomic."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), filepath)


class CheckpointIOState(NamedTuple):
    """What MMEngine used before :func:`enable_checkpoint_io`: pass it to
    :func:`restore_checkpoint_io`."""
    backend: Any  # registered as 'local'
    prefix_backend: Any  # for paths without a prefix
    loaders: Dict[str, Any]  # CheckpointLoader's scheme of each prefix


def current_checkpoint_io() -> CheckpointIOState:
    """The local file backend and checkpoint loaders MMEngine uses now."""
    return CheckpointIOState(
        _backends.backends.get('local'),
        _backends.prefix_to_backends.get(''),
        OrderedDict(CheckpointLoader._schemes))


def checkpoint_io_enabled() -> bool:
    """Whether :func:`enable_checkpoint_io` is in effect."""
    state = current_checkpoint_io()
    return (state.prefix_backend is AtomicLocalBackend
            and state.loaders.get('') is load_from_local_weights_only
            and all(loader is load_from_remote
                    for prefix, loader in state.loaders.items() if prefix))


def enable_checkpoint_io() -> CheckpointIOState:
    """Make MMEngine write local files atomically and load checkpoints,
    by path and by every prefix it has a loader for, through
    :func:`rla_mmdet.checkpoint.load_checkpoint_file`.

    Returns:
        The state before, for :func:`restore_checkpoint_io`.
    """
    before = current_checkpoint_io()
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    for prefix in before.loaders:
        CheckpointLoader.register_scheme(
            prefixes=prefix,
            loader=load_from_remote if prefix else
            load_from_local_weights_only,
            force=True)
    return before


def restore_checkpoint_io(state: CheckpointIOState) -> None:
    """Put back what :func:`current_checkpoint_io` returned."""
    if state.backend is not None:
        _backends.backends['local'] = state.backend
    if state.prefix_backend is not None:
        _backends.prefix_to_backends[''] = state.prefix_backend
    CheckpointLoader._schemes = OrderedDict(state.loaders)
