"""The attention modules of the RLA blocks, and one builder for them.

A block has one attention slot, as in timm's ``create_attn``:
:func:`build_attention` turns a block's attention config (``None``,
``dict(type='se', reduction=16)`` or ``dict(type='eca', kernel_size=5)``)
into a module, or ``None`` for no attention. Each module keeps the name
the published checkpoints give it (``se.fc.0``, ``eca.conv``) in its
:attr:`name`.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn

__all__ = ['SE', 'ECA', 'ATTENTIONS', 'build_attention']


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
