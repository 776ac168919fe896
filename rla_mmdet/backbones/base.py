"""What the RLA backbones share besides the recurrence, as MMDetection's
backbones share it.

:class:`RLABackboneMixin` adds to :class:`~.rla_engine.RLAEngine` (the life
of ``h``) the same initialisation (MMEngine's declarative ``init_cfg``,
:data:`DEFAULT_INIT_CFG` unless one is given), mmdet's ``frozen_stages`` /
``norm_eval`` in ``train()``, and the SyncBN guard. The backbones read no
file: a ``Pretrained`` ``init_cfg`` is loaded by the loader that
:func:`register_pretrained_loader` plugs in (:mod:`rla_mmdet.checkpoint`
plugs in its strict one of the published layouts), else by MMEngine, and
every ``load_state_dict`` first hands the state dict to the adapter that
:func:`register_state_dict_adapter` plugs in (the same package's fitting of
the published layouts).
"""
from typing import Callable, Iterable, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from .rla_engine import RLAEngine

__all__ = [
    'DEFAULT_INIT_CFG', 'RLABackboneMixin', 'freeze',
    'register_pretrained_loader', 'register_state_dict_adapter'
]

#: The initialisation without ``init_cfg``, as mmdet's ``ResNet`` and
#: ``MobileNetV2`` declare it: Kaiming convolutions, unit norms.
DEFAULT_INIT_CFG = [
    dict(type='Kaiming', layer='Conv2d'),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]

_pretrained_loader: Optional[Callable[[nn.Module], bool]] = None


def register_pretrained_loader(
        loader: Optional[Callable[[nn.Module], bool]]) -> None:
    """Make ``loader(backbone)`` load a ``Pretrained`` ``init_cfg`` of the
    RLA backbones in ``init_weights``: it returns whether it loaded
    (``False`` leaves the ``init_cfg`` to MMEngine); ``None`` removes it."""
    global _pretrained_loader
    _pretrained_loader = loader


_state_dict_adapter: Optional[Callable[[nn.Module, dict, str], None]] = None


def register_state_dict_adapter(
        adapter: Optional[Callable[[nn.Module, dict, str], None]]) -> None:
    """Make ``adapter(backbone, state_dict, prefix)`` fit a state dict to
    the RLA backbones before every load (a plain ``load_state_dict`` or
    MMEngine's ``load_checkpoint``): it checks the stored layout and drops
    the tensors of modules the backbone does not build, in place;
    ``None`` removes it."""
    global _state_dict_adapter
    _state_dict_adapter = adapter


def freeze(modules: Iterable[nn.Module]) -> None:
    """Eval mode and no gradient for every parameter of ``modules``."""
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad = False


class RLABackboneMixin(RLAEngine):
    """The shared part of the RLA backbones.

    A backbone sets what :class:`~.rla_engine.RLAEngine` reads; one that
    takes no ``frozen_stages``, ``norm_eval`` or ``with_cp`` argument keeps
    the defaults below (all off). List it before ``BaseModule`` in the
    bases.
    """

    #: Stages to freeze (-1: none); see :meth:`_freeze_stages`.
    frozen_stages: int = -1
    #: Keep every BatchNorm in eval mode while training.
    norm_eval: bool = False
    #: Recompute each block in backward (gradient checkpointing).
    with_cp: bool = False

    def init_weights(self) -> None:
        """The registered loader for a ``Pretrained`` ``init_cfg`` (with
        :mod:`rla_mmdet.checkpoint`: strict, the authors' ImageNet files
        and, with ``prefix``, whole-detector checkpoints), else MMEngine's
        declarative ``init_cfg``."""
        if _pretrained_loader is None or not _pretrained_loader(self):
            super().init_weights()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Whichever loader is used, the registered adapter (that of
        # rla_mmdet.checkpoint) fits the published layout first.
        if _state_dict_adapter is not None:
            _state_dict_adapter(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _freeze_stages(self) -> None:
        """Freeze stages ``0..frozen_stages-1`` with their recurrent
        modules; a backbone with a stem freezes it too
        (``frozen_stages >= 0``)."""
        for i in range(self.frozen_stages):
            freeze((self.stages[i], self.stage_bns[i], self.conv_outs[i],
                    self.recurrent_conv(i)))

    def train(self, mode: bool = True):
        """``train()`` that keeps the frozen stages frozen and, with
        ``norm_eval``, every BatchNorm in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def check_sync_bn(self, img: torch.Tensor) -> None:
        """Refuse to train SyncBN layers on CPU tensors in a distributed
        run, where they cannot synchronise."""
        if (self.training and not self.norm_eval
                and img.device.type == 'cpu' and dist.is_available()
                and dist.is_initialized() and any(
                    isinstance(m, nn.SyncBatchNorm) for m in self.modules())):
            raise ValueError(
                "norm_cfg=dict(type='SyncBN') synchronises batch statistics "
                'only for GPU tensors, and this distributed run trains on the '
                "CPU: use norm_cfg=dict(type='BN') (or norm_eval=True), or "
                'convert the model with '
                'mmengine.model.revert_sync_batchnorm(model).')
