"""RLA-Net (Recurrent Layer Aggregation) backbones for MMDetection 3.x.

Importing the package registers ``RLAResNet``, ``RLAECANet``,
``RLAMobileNetV2`` and the legacy
``RLA_ResNet`` builder in ``mmdet.registry.MODELS`` and the hooks of
:mod:`rla_mmdet.engine` in MMEngine's ``HOOKS``; it makes MMEngine read
checkpoints through :mod:`rla_mmdet.checkpoint` (weights-only unpickling
with MMEngine's own types allowed) and write local files atomically.
"""
from .backbones import RLAECANet, RLAMobileNetV2, RLAResNet
from .checkpoint import install_mmengine_loader, register_safe_globals
from .engine import (EpochSeedHook, NonFiniteLossHook,
                     register_atomic_local_backend)
from .ssd_head import SSDLiteHead
from .version import __version__

register_safe_globals()
install_mmengine_loader()
register_atomic_local_backend()

__all__ = ['RLAResNet', 'RLAECANet', 'RLAMobileNetV2', '__version__']
