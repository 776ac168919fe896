"""The attention of the RLA blocks: one slot, built in one place.

As timm's ``create_attn``, a backbone takes one ``attention`` argument:
``None`` (none), ``'se'``, ``'eca'`` or a dict with a ``type`` and that
module's keys, ``dict(type='se', reduction=16)`` or
``dict(type='eca', kernel_size=...)``. A block takes the same dict, with
one ECA ``kernel_size``; a backbone's ECA ``kernel_size`` gives one per
stage (its default is the backbone's published one).

:func:`check_attention` checks and completes a backbone's argument,
:func:`stage_attention` picks the config of one stage's blocks, and
:func:`build_attention` builds a block's module. Each module keeps the name
the published checkpoints give it (``se.fc.0``, ``eca.conv``) in its
:attr:`name`. :func:`refuse_arguments` names the one slot to a caller that
still writes the earlier spellings (``se=True``, ``eca_kernel_sizes=``...).
"""
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from .checks import check_int, check_int_tuple

__all__ = [
    'SE', 'ECA', 'ATTENTIONS', 'AttentionType', 'check_attention',
    'stage_attention', 'build_attention', 'refuse_arguments'
]

#: What a backbone's ``attention`` argument may be.
AttentionType = Optional[Union[str, Dict[str, Any]]]


class SE(nn.Module):
    """Squeeze-and-excitation with bias-free linear layers.

    Args:
        channels: Channels of the input.
        reduction: Ratio between the input and the hidden channels.
    """

    #: The module's name inside a block (``se.fc.0`` in the checkpoints).
    name = 'se'

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return x * self.fc(x.mean((2, 3))).view(b, c, 1, 1)


class ECA(nn.Module):
    """Efficient channel attention: a 1-D convolution across channels.

    Global average pool, the convolution (no bias), sigmoid, scale.

    Args:
        channels: Channels of the input (the convolution does not depend on
            them; taken so that every attention builds alike).
        kernel_size: Odd size of the convolution along the channel axis.
    """

    #: The module's name inside a block (``eca.conv`` in the checkpoints).
    name = 'eca'

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weight = self.conv(x.mean((2, 3)).view(b, 1, c)).sigmoid()
        return x * weight.view(b, c, 1, 1)


#: The attention types by the ``type`` of their config.
ATTENTIONS: Dict[str, type] = dict(se=SE, eca=ECA)
#: The keys each type's config takes besides ``type`` (backbone and block).
ATTENTION_KEYS = dict(se=('reduction', ), eca=('kernel_size', ))


def check_attention(attention: AttentionType,
                    eca_kernel_size: Tuple[int, ...]) -> Optional[Dict]:
    """A backbone's ``attention`` argument, checked and completed.

    Args:
        attention: ``None``, ``'se'``, ``'eca'``, ``dict(type='se',
            reduction=...)`` or ``dict(type='eca', kernel_size=...)`` with
            one odd kernel size per stage.
        eca_kernel_size: The backbone's kernel sizes for ``'eca'``, one per
            stage (RLA-ResNet's published ``(5, 5, 5, 7)``).

    Returns:
        ``None`` or a dict with every key of its type, such as
        ``dict(type='eca', kernel_size=(5, 5, 5, 7))``.

    Raises:
        TypeError, ValueError: naming ``attention`` and what is allowed.
    """
    allowed = ("None, 'se', 'eca', dict(type='se', reduction=16) or "
               f"dict(type='eca', kernel_size={tuple(eca_kernel_size)})")
    if attention is None:
        return None
    if isinstance(attention, str):
        cfg = dict(type=attention)
    elif isinstance(attention, dict):
        cfg = dict(attention)
    else:
        raise TypeError(f'attention must be {allowed}, got {attention!r}.')
    kind = cfg.pop('type', None)
    if kind not in ATTENTIONS:
        raise ValueError(f'attention must be {allowed}, got {attention!r}.')
    unknown = set(cfg) - set(ATTENTION_KEYS[kind])
    if unknown:
        raise ValueError(
            f'attention of type {kind!r} takes the keys '
            f'{ATTENTION_KEYS[kind]}, got {attention!r} with '
            f'{sorted(unknown)}.')
    if kind == 'se':
        return dict(type='se', reduction=check_int(
            'reduction of attention', cfg.get('reduction', 16), 1))
    return dict(type='eca', kernel_size=check_int_tuple(
        'kernel_size of attention', cfg.get('kernel_size', eca_kernel_size),
        len(eca_kernel_size), low=1, odd=True))


def stage_attention(cfg: Optional[Dict], stage: int) -> Optional[Dict]:
    """The config of the blocks of ``stage`` from a backbone's checked
    ``cfg`` (:func:`check_attention`): ECA with that stage's kernel size."""
    if cfg is not None and cfg['type'] == 'eca':
        return dict(cfg, kernel_size=cfg['kernel_size'][stage])
    return cfg


def build_attention(cfg: Optional[Dict], channels: int) -> Optional[nn.Module]:
    """The attention module of ``cfg`` for ``channels`` channels.

    Args:
        cfg: ``None`` (no attention) or a dict with a ``type`` of
            :data:`ATTENTIONS` and that module's arguments, e.g.
            ``dict(type='eca', kernel_size=5)``.
        channels: Channels of the tensor the module scales.
    """
    if cfg is None:
        return None
    args = dict(cfg)
    kind = args.pop('type', None)
    if kind not in ATTENTIONS:
        raise ValueError(f'attention type must be one of '
                         f'{tuple(ATTENTIONS)}, got {kind!r} in {cfg!r}.')
    return ATTENTIONS[kind](channels, **args)


def _one_slot(name: str, value: Any) -> Optional[str]:
    """The ``attention=`` that replaces an earlier attention argument, or
    ``None`` for a name that never was one."""
    if name in ('se', 'eca'):
        return f'attention={name!r}' if value else 'attention=None'
    if name == 'se_reduction':
        return f"attention=dict(type='se', reduction={value!r})"
    if name == 'eca_kernel_sizes':
        return ('attention=None' if value is None else
                f"attention=dict(type='eca', kernel_size={value!r})")
    return None


def refuse_arguments(owner: str, kwargs: Dict[str, Any]) -> None:
    """Refuse the arguments a backbone's signature does not name.

    The earlier attention spellings (``se``, ``se_reduction``,
    ``eca_kernel_sizes``, ``eca``) get the ``attention=`` that replaces them;
    any other name is refused as Python refuses an unexpected keyword.

    Raises:
        TypeError: naming the first such argument.
    """
    for name, value in kwargs.items():
        new = _one_slot(name, value)
        if new is not None:
            raise TypeError(
                f'{owner} takes its attention in one argument: write {new} '
                f'instead of {name}={value!r}.')
        raise TypeError(f'{owner}.__init__() got an unexpected keyword '
                        f'argument {name!r}.')
