"""Fitting a checkpoint's tensors to a backbone.

The backbones are plain modules that know no file. How the published
checkpoints map onto them (the modules a detection backbone does not build,
the stored layouts it refuses, the hints for the common mistakes) is data
here, one :class:`Adaptation` per backbone family in :data:`ADAPTATIONS`,
found by the backbone's type; a backbone without one loads its own
checkpoints. :func:`fit_state_dict` checks a file against a model for
:func:`load_backbone_weights` and the converters alike; the file itself is
read by :func:`rla_mmdet.checkpoint.load_checkpoint_file`. Importing this
module makes a ``Pretrained`` ``init_cfg`` of the RLA backbones load through
:func:`load_backbone_weights` (strict).
"""
from collections import OrderedDict
from typing import (Any, Callable, Dict, Iterable, List, Mapping, NamedTuple,
                    Optional, Tuple)

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ..backbones import RLAMobileNetV2, RLAResNet
from ..backbones.base import (register_pretrained_loader,
                              register_state_dict_adapter)
from ..backbones.rla_mobilenet_v2 import NUM_STORED_COPIES
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
            ``unbuilt_prefixes(model)`` (the ImageNet classifier and
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
            :func:`checkpoint_hint`), appended to
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


# ------------------------------------------ how the published files map
def marker_hint(missing: List[str], unexpected: List[str], marker: str,
                has: str, lacks: str) -> str:
    """``has`` when only the file has keys with ``marker`` in them,
    ``lacks`` when only the model has them, else ``''``."""
    if any(marker in k for k in unexpected):
        return has
    if any(marker in k for k in missing):
        return lacks
    return ''


def _no_hint(model: nn.Module, missing: List[str],
             unexpected: List[str]) -> str:
    return ''


def _any_layout(state_dict: Mapping[str, torch.Tensor], source: str,
                prefix: str) -> None:
    pass


class Adaptation(NamedTuple):
    """How the published checkpoints of one backbone family map onto it.

    Attributes:
        unbuilt: ``unbuilt(model)``: key prefixes of the published files
            that the model has no module for; loading drops them quietly.
        check: ``check(state_dict, source, prefix)`` refuses a stored
            layout the family cannot take (``source`` names the file).
        variant_hint: ``variant_hint(model, missing, unexpected)``: which
            variant of the family a mismatching file is from, or ``''``.
        plain_network: The network of the family without RLA, whose
            files have ``plain_key_prefixes`` and lack ``rla_modules``.
    """
    unbuilt: Callable[[nn.Module], Tuple[str, ...]] = lambda model: ()
    check: Callable[[Mapping[str, torch.Tensor], str, str],
                    None] = _any_layout
    variant_hint: Callable[[nn.Module, List[str], List[str]],
                           str] = _no_hint
    plain_network: str = ''
    plain_key_prefixes: Tuple[str, ...] = ()
    rla_modules: Tuple[str, ...] = ()


def _resnet_unbuilt(model: RLAResNet) -> Tuple[str, ...]:
    """The ImageNet classifier (``bn2``, ``fc``), the stages beyond
    ``num_stages``, and the norm of the update after the last block, which
    no output reads."""
    prefixes = ['fc.', 'bn2.']
    for s in range(model.num_stages, 4):
        prefixes += [f'stages.{s}.', f'stage_bns.{s}.', f'conv_outs.{s}.',
                     f'recurrent_convs.{s}.']
    last = model.num_stages - 1
    prefixes.append(f'stage_bns.{last}.{model.stage_blocks[last] - 1}.')
    return tuple(prefixes)


def _resnet_variant_hint(model: RLAResNet, missing: List[str],
                         unexpected: List[str]) -> str:
    """Whether a mismatching file is of the other ECA setting or of
    another depth."""
    eca = marker_hint(
        missing, unexpected, '.eca.',
        has=(' The file has ECA weights: it is an RLA-ECANet checkpoint; '
             "use type='RLAECANet'."),
        lacks=(' The file has no ECA weights: it is an RLA-ResNet '
               "checkpoint; use type='RLAResNet' instead of "
               f'{type(model).__name__}.'))
    if eca or not any(k.startswith('stages.') for k in unexpected + missing):
        return eca
    return (' The number of blocks differs: check that depth matches the '
            'checkpoint (e.g. 50 vs 101).')


def _mobilenet_v2_unbuilt(model: RLAMobileNetV2) -> Tuple[str, ...]:
    """The ImageNet classifier, the stages after the last requested output
    with their RLA modules, and the parts only the head reads (the last
    update, ``bn2``, ``conv2``) when output 7 is not requested."""
    prefixes = ['classifier.']
    built = len(model.stages)
    for j in range(built, len(model.arch_settings)):
        prefixes += [f'stages.{j}.', f'stage_bns.{j}.', f'conv_outs.{j}.']
    if not model.with_head:
        prefixes += ['bn2.', 'conv2.']
        last = built - 1
        prefixes.append(f'stage_bns.{last}.{len(model.stages[last]) - 1}.')
        if len(model.conv_outs) < built:
            prefixes.append(f'conv_outs.{last}.')
        if not len(model.conv_outs):
            prefixes.append('recurrent_dsconvs.')
    return tuple(prefixes)


def _mobilenet_v2_check(state_dict: Mapping[str, torch.Tensor], source: str,
                        prefix: str) -> None:
    """Refuse a state dict whose stored copies of the one recurrent
    convolution (``recurrent_dsconvs.0`` ... ``.4``) differ: such a file
    was not written by that network."""
    keys = [f'{prefix}recurrent_dsconvs.{i}.weight'
            for i in range(NUM_STORED_COPIES)]
    present = [k for k in keys if k in state_dict]
    if not present:
        return
    first = state_dict[present[0]]
    for key in present[1:]:
        other = state_dict[key]
        if other.shape != first.shape or not torch.equal(other, first):
            raise ValueError(
                f'{source} holds different tensors under {present[0]} and '
                f'{key}: RLA-MobileNetV2 has one recurrent convolution, '
                'stored as identical copies recurrent_dsconvs.0-4, so this '
                'file is corrupt or not an RLA-MobileNetV2 checkpoint.')


def _mobilenet_v2_variant_hint(model: RLAMobileNetV2, missing: List[str],
                               unexpected: List[str]) -> str:
    """Whether a mismatching file is of the other ECA setting."""
    return marker_hint(
        missing, unexpected, '.conv.3.conv.',
        has=(' The file has ECA weights (conv.3): it is an '
             "RLA-ECA-MobileNetV2 checkpoint; set attention='eca'."),
        lacks=(' The file has no ECA weights (conv.3): it is an '
               'RLA-MobileNetV2 checkpoint without ECA; set '
               'attention=None.'))


#: The adaptation of each backbone family, found by type (a subclass takes
#: its base's). A new backbone needs none to load its own checkpoints; add
#: one here to load files of another layout.
ADAPTATIONS: Dict[type, Adaptation] = {
    RLAResNet: Adaptation(
        unbuilt=_resnet_unbuilt, variant_hint=_resnet_variant_hint,
        plain_network='ResNet', plain_key_prefixes=('layer1.', 'layer2.'),
        rla_modules=('stage_bns', 'conv_outs', 'recurrent_convs')),
    RLAMobileNetV2: Adaptation(
        unbuilt=_mobilenet_v2_unbuilt, check=_mobilenet_v2_check,
        variant_hint=_mobilenet_v2_variant_hint,
        plain_network='MobileNetV2',
        plain_key_prefixes=('layer1.', 'features.'),
        rla_modules=('stage_bns', 'conv_outs', 'recurrent_dsconvs')),
}


def adaptation_of(model: Any) -> Adaptation:
    """The :class:`Adaptation` of a backbone (or backbone class): that of
    the nearest class of its type in :data:`ADAPTATIONS`, else one that
    maps nothing."""
    cls = model if isinstance(model, type) else type(model)
    for base in cls.__mro__:
        if base in ADAPTATIONS:
            return ADAPTATIONS[base]
    return Adaptation()


def unbuilt_prefixes(model: nn.Module) -> Tuple[str, ...]:
    """Key prefixes of the published files that ``model`` builds no module
    for (e.g. ``RLAResNet``'s classifier ``fc.`` / ``bn2.`` and the norm
    of its last hidden-state update)."""
    return tuple(adaptation_of(model).unbuilt(model))


def check_state_dict(model: Any, state_dict: Mapping[str, torch.Tensor],
                     source: str = 'the state dict',
                     prefix: str = '') -> None:
    """Refuse a state dict whose stored layout the backbone (or backbone
    class) ``model`` cannot take, naming ``source`` (keys under
    ``prefix``)."""
    adaptation_of(model).check(state_dict, source, prefix)


def file_kind_hint(keys: Iterable[str],
                   detector_advice: str = "add prefix='backbone.' to the "
                   'init_cfg') -> str:
    """A sentence for a file of another kind (``keys`` are the ones the
    backbone does not have): a plain network of a family of
    :data:`ADAPTATIONS`, or a whole detector (then ``detector_advice``
    says what to do)."""
    keys = list(keys)
    for a in ADAPTATIONS.values():
        if a.plain_key_prefixes and any(
                k.startswith(a.plain_key_prefixes) for k in keys):
            return (f' It looks like a plain {a.plain_network} checkpoint: '
                    f'it has no RLA modules ({", ".join(a.rla_modules)}), '
                    'so it cannot initialise an RLA backbone.')
    if any(k.startswith('backbone.') for k in keys):
        return (' It looks like a whole-detector checkpoint: '
                f'{detector_advice}.')
    return ''


def checkpoint_hint(model: nn.Module, missing: List[str],
                    unexpected: List[str]) -> str:
    """A sentence on what a checkpoint that does not fit ``model``
    probably is."""
    return (file_kind_hint(unexpected)
            or adaptation_of(model).variant_hint(model, missing, unexpected))


def adapt_state_dict(model: nn.Module, state_dict: Mapping[str, Any],
                     source: str = 'the state dict') -> 'OrderedDict':
    """``state_dict`` of the published layout, checked and without the
    tensors of the modules ``model`` does not build, for
    ``model.load_state_dict``."""
    check_state_dict(model, state_dict, source)
    return split_unbuilt(state_dict, unbuilt_prefixes(model))[0]


def detector_unbuilt(detector: nn.Module) -> Tuple[str, ...]:
    """The unbuilt prefixes of a detector's backbone, under ``backbone.``
    (none for a backbone without an adaptation)."""
    backbone = getattr(detector, 'backbone', None)
    if backbone is None:
        return ()
    return tuple('backbone.' + p for p in unbuilt_prefixes(backbone))


def _describe(model: nn.Module) -> str:
    describe = getattr(model, 'describe', None)
    return f'{type(model).__name__}({describe() if describe else ""})'


def load_backbone_weights(model: torch.nn.Module,
                          filename: Any,
                          prefix: Optional[str] = None,
                          map_location: Any = 'cpu',
                          sha256: Optional[str] = None) -> None:
    """Load a checkpoint into a backbone, strictly.

    Every parameter and buffer of ``model`` must come from the file with the
    right shape, and every tensor of the file must be used, except the ones
    the detection backbone does not build (the ImageNet classifier ``bn2`` /
    ``fc``, see :func:`unbuilt_prefixes`). Anything else raises a
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
    check_state_dict(model, state_dict, source)
    state_dict, dropped = fit_state_dict(
        state_dict, model, unbuilt_prefixes(model), source, _describe(model),
        lambda missing, unexpected: checkpoint_hint(model, missing,
                                                    unexpected))
    model.load_state_dict(state_dict, strict=False)
    print_log(
        f'{type(model).__name__}: loaded {len(state_dict)} tensors from '
        f'{filename}' + (f' (prefix {prefix!r})' if prefix else '') +
        (f'; ignored {len(dropped)} tensors of unbuilt modules '
         f'({abbreviate(dropped, 2)})' if dropped else ''),
        logger='current')


def load_pretrained_init_cfg(model: torch.nn.Module) -> bool:
    """Load ``model.init_cfg`` if it is ``dict(type='Pretrained', ...)``.

    The RLA backbones' ``init_weights`` call this (this module registers
    it with :func:`rla_mmdet.backbones.base.register_pretrained_loader`):
    the ``checkpoint`` (a path or a URL), ``prefix``, ``map_location`` and
    ``sha256`` keys go to :func:`load_backbone_weights` (strict), and the
    model is marked initialised. Returns whether it loaded; any other
    ``init_cfg`` is left to the caller.
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


def adapt_in_place(model: nn.Module, state_dict: dict, prefix: str) -> None:
    """Check the layout of the keys of ``state_dict`` under ``prefix`` for
    ``model`` and delete those of the modules it does not build (what a
    plain ``load_state_dict`` of a published file needs)."""
    check_state_dict(model, state_dict, prefix=prefix)
    _, unbuilt = split_unbuilt(
        state_dict, tuple(prefix + p for p in unbuilt_prefixes(model)))
    for key in unbuilt:
        del state_dict[key]


register_pretrained_loader(load_pretrained_init_cfg)
register_state_dict_adapter(adapt_in_place)
