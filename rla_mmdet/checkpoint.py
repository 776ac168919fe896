"""Checkpoint loading that never runs code from the file.

torch >= 2.6 loads checkpoints with ``weights_only=True``: the unpickler only
rebuilds tensors, containers and an allow-list of types. Checkpoints written
by MMEngine also hold its ``HistoryBuffer``, numpy arrays and scalars and a
``collections.Counter`` (``MultiStepLR`` milestones); without them on the
allow-list they cannot be loaded or resumed. :func:`register_safe_globals`
adds exactly those types (and a ``getattr`` that only returns the statistics
methods a ``HistoryBuffer`` pickles by name), so MMEngine's own ``torch.load`` calls keep
``weights_only=True`` and a pickle that would import anything else (and so
could run code) is still refused.

:func:`load_checkpoint_file` is the one place this package reads a
checkpoint file: it is also installed as MMEngine's loader for local paths,
so ``load_from``, ``--resume``, ``tools/test.py`` and ``Pretrained`` inits all
report a missing, corrupt or unsafe file in one clear sentence.
"""
import importlib
import os
import os.path as osp
import pickle
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'UnsafeCheckpointError', 'SAFE_GLOBALS', 'register_safe_globals',
    'load_checkpoint_file', 'get_state_dict', 'load_backbone_weights'
]


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds objects whose unpickling could run code."""


def _numpy_globals() -> List[Any]:
    major = int(np.__version__.split('.')[0])
    multiarray = importlib.import_module(
        'numpy._core.multiarray' if major >= 2 else 'numpy.core.multiarray')
    types = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their own classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType') and name != 'ObjectDType'
        ]
    return types


def _history_buffer_method(owner: Any, name: str) -> Any:
    """A ``getattr`` limited to the statistics methods of ``HistoryBuffer``.

    A ``HistoryBuffer`` pickles its ``_statistics_methods`` (``min``,
    ``max``, ``current``, ``mean`` and any registered with
    ``HistoryBuffer.register_statistics``) as ``getattr(HistoryBuffer,
    name)``. Allowing the builtin ``getattr`` would let a pickle reach any
    attribute of any allowed object, so the unpickler gets this instead.
    """
    # The class-level registry is only filled when a first HistoryBuffer is
    # created, which a fresh process loading a checkpoint has not done yet.
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in ('min', 'max', 'current', 'mean')
            or name in HistoryBuffer._statistics_methods):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refused getattr({owner!r}, {name!r}): only the statistics methods '
        'of mmengine.logging.HistoryBuffer may be looked up')


#: The types MMEngine checkpoints contain beyond tensors and containers.
SAFE_GLOBALS = [HistoryBuffer, Counter,
                (_history_buffer_method, 'builtins.getattr')
                ] + _numpy_globals()


def register_safe_globals() -> None:
    """Allow MMEngine's checkpoint types in ``torch.load(weights_only=True)``.

    ``weights_only`` stays on: a pickle naming any other global is refused.
    """
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


def load_checkpoint_file(filename: Any,
                         map_location: Any = 'cpu') -> Dict[str, Any]:
    """Load a checkpoint file with the weights-only unpickler.

    Args:
        filename: Path of a ``.pth`` / ``.pth.tar`` file.
        map_location: Passed to :func:`torch.load`.

    Raises:
        TypeError: ``filename`` is not a path.
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds objects outside the allow-list
            (such a pickle could run code when loaded).
        ValueError: The file is truncated, corrupt or not a checkpoint.
    """
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f'checkpoint must be a file path, got {filename!r}.')
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist; check the path '
            '(or the init_cfg / load_from / --resume argument that gave it).')
    register_safe_globals()
    try:
        checkpoint = torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if 'Weights only load failed' in str(exc):
            raise UnsafeCheckpointError(
                f'refused to load {filename!r}: it contains objects that are '
                'neither tensors nor MMEngine checkpoint types, and unpickling '
                'them could run code. Only load it with torch.load('
                'weights_only=False) if you trust its author. Details: '
                f'{_first_line(exc)}') from None
        raise _corrupt(filename, exc) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            UnicodeDecodeError, ValueError, KeyError, IndexError) as exc:
        raise _corrupt(filename, exc) from None
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{filename!r} holds a {type(checkpoint).__name__}, '
                         'not a checkpoint dict of tensors.')
    return checkpoint


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if 'refused' in line or 'Unsupported global' in line or \
                'GLOBAL' in line:
            return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _corrupt(filename: str, exc: BaseException) -> ValueError:
    return ValueError(
        f'{filename!r} is not a readable PyTorch checkpoint (truncated, '
        f'corrupt or another kind of file): {type(exc).__name__}: '
        f'{_first_line(exc)}')


# MMEngine logs 'Loads checkpoint by {name[10:]} backend', hence the name.
def load_from_local_weights_only(filename, map_location=None):
    return load_checkpoint_file(filename, map_location)


def install_mmengine_loader() -> None:
    """Make MMEngine read local checkpoints through
    :func:`load_checkpoint_file`."""
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        load_from_local_weights_only)


def get_state_dict(checkpoint: Mapping, filename: str = '') -> 'OrderedDict':
    """Return the state dict of a checkpoint in any of the common layouts.

    Accepts ``{'state_dict': ...}`` (MMEngine, mmdetection 2.x and the
    authors' ImageNet ``*.pth.tar``), ``{'model': ...}`` and a bare mapping
    of tensors. A ``module.`` prefix shared by every key (written by
    ``DistributedDataParallel``) is removed.
    """
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            state_dict = checkpoint[key]
            break
    else:
        state_dict = checkpoint
    if not state_dict or not all(
            torch.is_tensor(v) for v in state_dict.values()):
        raise ValueError(
            f'{filename!r} has no state dict of tensors (looked under '
            f"'state_dict', 'model' and the top level; its keys are "
            f'{_head(checkpoint)}).')
    if all(k.startswith('module.') for k in state_dict):
        state_dict = OrderedDict(
            (k[len('module.'):], v) for k, v in state_dict.items())
    return OrderedDict(state_dict)


def _head(keys: Iterable, n: int = 5) -> str:
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
    return ', '.join(map(str, keys[:n])) + more


def _hint(model: torch.nn.Module, missing: List[str],
          unexpected: List[str]) -> str:
    own_hint = getattr(model, 'checkpoint_hint', None)
    if own_hint is not None:  # a backbone that knows its own files
        return own_hint(missing, unexpected)
    name = type(model).__name__
    if any(k.startswith(('layer1.', 'layer2.')) for k in unexpected):
        return (' It looks like a plain ResNet checkpoint: it has no RLA '
                'modules (stage_bns, conv_outs, recurrent_convs), so it cannot '
                'initialise an RLA backbone.')
    if any('.eca.' in k for k in unexpected):
        return (' The file has ECA weights: it is an RLA-ECANet checkpoint; '
                "use type='RLAECANet'.")
    if any('.eca.' in k for k in missing) and not any('.eca.' in k
                                                     for k in unexpected):
        return (f' The file has no ECA weights: it is an RLA-ResNet '
                f"checkpoint; use type='RLAResNet' instead of {name}.")
    if any(k.startswith('backbone.') for k in unexpected):
        return (" It looks like a whole-detector checkpoint: add "
                "prefix='backbone.' to the init_cfg.")
    if any(k.startswith('stages.') for k in unexpected + missing):
        return (' The number of blocks differs: check that depth matches '
                'the checkpoint (e.g. 50 vs 101).')
    return ''


def load_backbone_weights(model: torch.nn.Module,
                          filename: Any,
                          prefix: Optional[str] = None,
                          map_location: Any = 'cpu') -> None:
    """Load a checkpoint into an RLA backbone, strictly.

    Every parameter and buffer of ``model`` must come from the file with the
    right shape, and every tensor of the file must be used, except the ones
    the detection backbone does not build (the ImageNet classifier ``bn2`` /
    ``fc``, see ``RLAResNet.unbuilt_prefixes``). Anything else raises a
    ``ValueError`` naming the file and the first mismatching keys, so a
    backbone is never left half initialised.

    Args:
        model: The backbone.
        filename: The checkpoint file.
        prefix: Take only the keys under this prefix (e.g. ``'backbone.'``
            for a whole-detector checkpoint) and strip it.
        map_location: Passed to :func:`torch.load`.
    """
    checkpoint = load_checkpoint_file(filename, map_location)
    state_dict = get_state_dict(checkpoint, str(filename))
    if prefix:
        if not isinstance(prefix, str):
            raise TypeError(f'prefix must be a str such as "backbone.", got '
                            f'{prefix!r}.')
        if not prefix.endswith('.'):
            prefix += '.'
        picked = OrderedDict((k[len(prefix):], v)
                             for k, v in state_dict.items()
                             if k.startswith(prefix))
        if not picked:
            raise ValueError(f'{filename!r} has no key starting with '
                             f'prefix={prefix!r}; its first keys are '
                             f'{_head(state_dict)}.')
        state_dict = picked
    check = getattr(model, 'check_state_dict', None)
    if check is not None:  # e.g. RLAMobileNetV2's copies of a shared conv
        check(state_dict, repr(str(filename)))
    dropped = [
        k for k in state_dict if k.startswith(model.unbuilt_prefixes())
    ]
    for k in dropped:
        del state_dict[k]
    own = model.state_dict()
    missing = [
        k for k in own
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'missing keys: {_head(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {_head(unexpected)}')
        if shapes:
            parts.append(f'shape mismatches: {_head(shapes, 3)}')
        raise ValueError(
            f'{filename!r} does not fit {type(model).__name__}'
            f'({model.describe()}): ' + '; '.join(parts) + '.' +
            _hint(model, missing, unexpected))
    model.load_state_dict(state_dict, strict=False)
    print_log(
        f'{type(model).__name__}: loaded {len(state_dict)} tensors from '
        f'{filename}' + (f' (prefix {prefix!r})' if prefix else '') +
        (f'; ignored {len(dropped)} tensors of unbuilt modules '
         f'({_head(dropped, 2)})' if dropped else ''),
        logger='current')
