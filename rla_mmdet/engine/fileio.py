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
from typing import Any, Dict, NamedTuple, Optional, Union

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


#: The loaders :func:`use_checked_loaders` installs.
CHECKED_LOADERS = (load_from_local_weights_only, load_from_remote)


def checked_loaders_enabled() -> bool:
    """Whether MMEngine loads every checkpoint, by path and by each prefix
    it has a loader for, through the checked loader."""
    loaders = CheckpointLoader._schemes
    return (loaders.get('') is load_from_local_weights_only
            and all(loader is load_from_remote
                    for prefix, loader in loaders.items() if prefix))


def use_checked_loaders() -> Dict[str, Any]:
    """Make MMEngine load checkpoints, by path and by every prefix it has a
    loader for, through :func:`rla_mmdet.checkpoint.load_checkpoint_file`.

    Returns:
        The loader of each prefix before (prefix ``''`` for paths).
    """
    before = OrderedDict(CheckpointLoader._schemes)
    for prefix in before:
        CheckpointLoader.register_scheme(
            prefixes=prefix,
            loader=load_from_remote if prefix else
            load_from_local_weights_only,
            force=True)
    return before


#: The loader of each prefix that :func:`enable_checked_loading` replaced;
#: ``None`` while the process-wide switch is off.
_replaced_for_process: Optional[Dict[str, Any]] = None


def enable_checked_loading() -> None:
    """Load every checkpoint of the process through the checked loader,
    until :func:`disable_checked_loading` (what importing
    :mod:`rla_mmdet.checked_loading` does)."""
    global _replaced_for_process
    if _replaced_for_process is None:
        _replaced_for_process = {}
    for prefix, loader in use_checked_loaders().items():
        if loader not in CHECKED_LOADERS:
            _replaced_for_process.setdefault(prefix, loader)


def disable_checked_loading() -> None:
    """Put back the loaders :func:`enable_checked_loading` replaced, where
    the checked loader is still in place. Call it outside a run: a
    ``CheckpointIOHook`` puts back at ``after_run`` the loaders it found at
    ``before_run``."""
    global _replaced_for_process
    for prefix, loader in (_replaced_for_process or {}).items():
        if CheckpointLoader._schemes.get(prefix) in CHECKED_LOADERS:
            CheckpointLoader.register_scheme(
                prefixes=prefix, loader=loader, force=True)
    _replaced_for_process = None


def checkpoint_io_enabled() -> bool:
    """Whether :func:`enable_checkpoint_io` is in effect."""
    return (_backends.prefix_to_backends.get('') is AtomicLocalBackend
            and checked_loaders_enabled())


def enable_checkpoint_io() -> CheckpointIOState:
    """Make MMEngine write local files atomically and load checkpoints,
    by path and by every prefix it has a loader for, through
    :func:`rla_mmdet.checkpoint.load_checkpoint_file`
    (:func:`use_checked_loaders`).

    Returns:
        The state before, for :func:`restore_checkpoint_io`.
    """
    before = current_checkpoint_io()
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    use_checked_loaders()
    return before


def restore_checkpoint_io(state: CheckpointIOState) -> None:
    """Put back what :func:`current_checkpoint_io` returned."""
    if state.backend is not None:
        _backends.backends['local'] = state.backend
    if state.prefix_backend is not None:
        _backends.prefix_to_backends[''] = state.prefix_backend
    CheckpointLoader._schemes = OrderedDict(state.loaders)
    if _replaced_for_process is not None:
        # switched on for the process while the state was in effect
        enable_checked_loading()
