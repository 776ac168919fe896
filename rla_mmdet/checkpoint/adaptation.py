"""Fitting a checkpoint's tensors to a backbone.

What a checkpoint must hold to fit a backbone is declared by the backbone
(:class:`CheckpointAdapterMixin`) and checked by :func:`fit_state_dict`, for
:func:`load_backbone_weights` and the converters alike. The file itself is
read by :func:`rla_mmdet.checkpoint.load_checkpoint_file`.
"""
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

import torch
from mmengine.logging import print_log

from .loading import abbreviate, load_checkpoint_file


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
            f'{abbreviate(checkpoint)}).')
    if all(k.startswith('module.') for k in state_dict):
        state_dict = OrderedDict(
            (k[len('module.'):], v) for k, v in state_dict.items())
    return OrderedDict(state_dict)


def split_unbuilt(state_dict: Mapping[str, Any], prefixes: Tuple[str, ...]
                  ) -> Tuple['OrderedDict', List[str]]:
    """Split off the tensors of modules a backbone does not build.

    Args:
        state_dict: A checkpoint's tensors.
        prefixes: Key prefixes with no module in the model, e.g.
            ``RLAResNet.unbuilt_prefixes()`` (the ImageNet classifier and
            the norm of the last hidden-state update), with ``'backbone.'``
            in front for a whole detector.

    Returns:
        The kept tensors (in their order) and the dropped keys.
    """
    kept = OrderedDict(
        (k, v) for k, v in state_dict.items() if not k.startswith(prefixes))
    return kept, [k for k in state_dict if k.startswith(prefixes)]


def fit_state_dict(state_dict: Mapping[str, torch.Tensor],
                   model: torch.nn.Module,
                   unbuilt: Tuple[str, ...],
                   source: str,
                   target: str,
                   hint: Optional[Callable[[List[str], List[str]], str]] = None
                   ) -> Tuple['OrderedDict', List[str]]:
    """The tensors of ``state_dict`` that ``model`` takes, in its key order.

    Keys starting with ``unbuilt`` are dropped; every other key must be one
    of ``model``'s with its shape, and every key of ``model`` must be there
    (BatchNorm's ``num_batches_tracked`` counters, which older files lack,
    excepted). The loader and both converters check files with this.

    Args:
        state_dict: The checkpoint's tensors.
        model: The module they are for (a backbone or a whole detector).
        unbuilt: Key prefixes without a module in ``model``.
        source: The file, as named in the error (e.g. ``repr(path)``).
        target: The model, as named in the error.
        hint: ``hint(missing, unexpected)`` returns what a mismatching
            file probably is (e.g.
            :meth:`CheckpointAdapterMixin.checkpoint_hint`), appended to
            the error.

    Returns:
        The kept tensors and the dropped keys.

    Raises:
        ValueError: naming ``source``, ``target`` and the first missing,
            unexpected and mismatching keys.
    """
    own = model.state_dict()
    kept, dropped = split_unbuilt(state_dict, unbuilt)
    missing = [
        k for k in own
        if k not in kept and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in kept if k not in own]
    shapes = [
        f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in kept.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'missing keys: {abbreviate(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {abbreviate(unexpected)}')
        if shapes:
            parts.append(f'shape mismatches: {abbreviate(shapes, 3)}')
        raise ValueError(f'{source} does not fit {target}: ' +
                         '; '.join(parts) + '.' +
                         (hint(missing, unexpected) if hint else ''))
    return OrderedDict((k, kept[k]) for k in own if k in kept), dropped


# ------------------------------------------------ what a backbone declares
class CheckpointAdapterMixin(metaclass=ABCMeta):
    """What the checkpoint loader and the converters need of a backbone.

    A backbone declares how its checkpoints are laid out: the modules it
    does not build (:meth:`unbuilt_prefixes`), checks of stored layouts it
    reads (:meth:`check_state_dict`), and hints for the common mistakes
    (the plain network of its family through :attr:`plain_network`,
    :attr:`plain_key_prefixes` and :attr:`rla_modules`; its own variants
    through :meth:`variant_hint`). :func:`load_backbone_weights`, the
    converters and ``load_state_dict`` (through ``_load_from_state_dict``)
    use these and nothing else. List it before ``BaseModule`` in the bases.
    """

    #: The network of the family without RLA, for the hint on its files.
    plain_network: str = ''
    #: Key prefixes only that network's checkpoints have.
    plain_key_prefixes: Tuple[str, ...] = ()
    #: The RLA modules that network lacks, named in the hint.
    rla_modules: Tuple[str, ...] = ()

    @abstractmethod
    def describe(self) -> str:
        """A short description of the configuration, for error messages."""

    @abstractmethod
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of checkpoints that this backbone has no module
        for; loading drops them quietly."""

    @staticmethod
    def check_state_dict(state_dict: Mapping[str, torch.Tensor],
                         source: str = 'the state dict',
                         prefix: str = '') -> None:
        """Refuse a state dict whose stored layout this backbone cannot
        take (keys under ``prefix``; ``source`` names it in the error).
        Every layout passes unless a backbone says otherwise."""

    def variant_hint(self, missing: List[str], unexpected: List[str]) -> str:
        """A sentence on which variant of this backbone a mismatching file
        is from (``''`` when none fits)."""
        return ''

    @staticmethod
    def marker_hint(missing: List[str], unexpected: List[str], marker: str,
                    has: str, lacks: str) -> str:
        """``has`` when only the file has keys with ``marker`` in them,
        ``lacks`` when only the model has them, else ``''``."""
        if any(marker in k for k in unexpected):
            return has
        if any(marker in k for k in missing):
            return lacks
        return ''

    @classmethod
    def file_kind_hint(cls, keys: Iterable[str],
                       detector_advice: str = "add prefix='backbone.' to "
                       'the init_cfg') -> str:
        """A sentence for a file of another kind (``keys`` are the ones
        the backbone does not have): a plain network of the family, or a
        whole detector (then ``detector_advice`` says what to do)."""
        keys = list(keys)
        if cls.plain_key_prefixes and any(
                k.startswith(cls.plain_key_prefixes) for k in keys):
            return (f' It looks like a plain {cls.plain_network} checkpoint: '
                    f'it has no RLA modules ({", ".join(cls.rla_modules)}), '
                    'so it cannot initialise an RLA backbone.')
        if any(k.startswith('backbone.') for k in keys):
            return (' It looks like a whole-detector checkpoint: '
                    f'{detector_advice}.')
        return ''

    def checkpoint_hint(self, missing: List[str],
                        unexpected: List[str]) -> str:
        """A sentence on what a mismatching checkpoint probably is."""
        return (self.file_kind_hint(unexpected)
                or self.variant_hint(missing, unexpected))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Whichever loader is used (MMEngine's load_checkpoint, a plain
        # load_state_dict), the stored layout is checked and the tensors of
        # unbuilt modules are not reported as unexpected keys.
        self.check_state_dict(state_dict, prefix=prefix)
        _, unbuilt = split_unbuilt(
            state_dict, tuple(prefix + p for p in self.unbuilt_prefixes()))
        for key in unbuilt:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def detector_unbuilt(detector: torch.nn.Module) -> Tuple[str, ...]:
    """The unbuilt prefixes of a detector's RLA backbone, under
    ``backbone.`` (none for another backbone)."""
    backbone = getattr(detector, 'backbone', None)
    if not isinstance(backbone, CheckpointAdapterMixin):
        return ()
    return tuple('backbone.' + p for p in backbone.unbuilt_prefixes())


def load_backbone_weights(model: torch.nn.Module,
                          filename: Any,
                          prefix: Optional[str] = None,
                          map_location: Any = 'cpu',
                          sha256: Optional[str] = None) -> None:
    """Load a checkpoint into an RLA backbone, strictly.

    Every parameter and buffer of ``model`` must come from the file with the
    right shape, and every tensor of the file must be used, except the ones
    the detection backbone does not build (the ImageNet classifier ``bn2`` /
    ``fc``, see ``RLAResNet.unbuilt_prefixes``). Anything else raises a
    ``ValueError`` naming the file and the first mismatching keys, so a
    backbone is never left half initialised.

    Args:
        model: The backbone.
        filename: The checkpoint file, or its URL (see
            :func:`~rla_mmdet.checkpoint.load_checkpoint_file`).
        prefix: Take only the keys under this prefix (e.g. ``'backbone.'``
            for a whole-detector checkpoint) and strip it.
        map_location: Passed to :func:`torch.load`.
        sha256: The file's sha256 (or its first 8 or more hex digits),
            checked before the file is read.
    """
    if not isinstance(model, CheckpointAdapterMixin):
        raise TypeError(
            f'load_backbone_weights needs an RLA backbone (a subclass of '
            f'CheckpointAdapterMixin), got {type(model).__name__}; load other '
            "models with MMEngine's load_checkpoint.")
    checkpoint = load_checkpoint_file(filename, map_location, sha256=sha256)
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
                             f'{abbreviate(state_dict)}.')
        state_dict = picked
    source = repr(str(filename))
    model.check_state_dict(state_dict, source)
    state_dict, dropped = fit_state_dict(
        state_dict, model, model.unbuilt_prefixes(), source,
        f'{type(model).__name__}({model.describe()})', model.checkpoint_hint)
    model.load_state_dict(state_dict, strict=False)
    print_log(
        f'{type(model).__name__}: loaded {len(state_dict)} tensors from '
        f'{filename}' + (f' (prefix {prefix!r})' if prefix else '') +
        (f'; ignored {len(dropped)} tensors of unbuilt modules '
         f'({abbreviate(dropped, 2)})' if dropped else ''),
        logger='current')


def load_pretrained_init_cfg(model: torch.nn.Module) -> bool:
    """Load ``model.init_cfg`` if it is ``dict(type='Pretrained', ...)``.

    The backbones' ``init_weights`` call this: the ``checkpoint`` (a path
    or a URL), ``prefix``, ``map_location`` and ``sha256`` keys go to
    :func:`load_backbone_weights` (strict), and the model is marked
    initialised. Returns whether it
    loaded; any other ``init_cfg`` is left to the caller.
    """
    cfg = model.init_cfg
    if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
        return False
    load_backbone_weights(
        model,
        cfg.get('checkpoint'),
        prefix=cfg.get('prefix'),
        map_location=cfg.get('map_location', 'cpu'),
        sha256=cfg.get('sha256'))
    model._is_init = True
    return True
