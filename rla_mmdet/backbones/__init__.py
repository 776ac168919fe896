"""The RLA backbones and the public pieces a variant builds on.

- :class:`RLAResNet`, :class:`RLAECANet`, :class:`RLAMobileNetV2`: the
  registered backbones;
- their blocks (:class:`RLABasicBlock`, :class:`RLABottleneck`,
  :class:`RLAInvertedResidual`, the base :class:`RLABlock`);
- :class:`RLAEngine` (the life of ``h``: its start, the loop, its pooling,
  its update) and :func:`build_rla_modules` (a stage's recurrent modules),
  with :class:`RLABackboneMixin` (initialisation, freezing) for a new RLA
  backbone.

Nothing here reads a file: how the published checkpoints map onto these
backbones lives in :mod:`rla_mmdet.checkpoint.adaptation`.
"""
from .base import DEFAULT_INIT_CFG, RLABackboneMixin, freeze
from .legacy import build_legacy_rla_resnet
from .rla_engine import RLAEngine, build_rla_modules
from .rla_mobilenet_v2 import RLAInvertedResidual, RLAMobileNetV2
from .rla_resnet import (RLABasicBlock, RLABlock, RLABottleneck, RLAECANet,
                         RLAResNet)

__all__ = [
    'RLAResNet', 'RLAECANet', 'RLAMobileNetV2', 'RLABlock', 'RLABasicBlock',
    'RLABottleneck', 'RLAInvertedResidual', 'RLAEngine', 'RLABackboneMixin',
    'build_rla_modules', 'DEFAULT_INIT_CFG', 'freeze',
    'build_legacy_rla_resnet'
]
