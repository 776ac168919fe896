"""RLA-Net (Recurrent Layer Aggregation) backbones for MMDetection 3.x.

Importing the package registers ``RLAResNet``, ``RLAECANet`` and the legacy
``RLA_ResNet`` builder in ``mmdet.registry.MODELS``, and makes MMEngine load
checkpoints through :mod:`rla_mmdet.checkpoint` (weights-only unpickling with
MMEngine's own types allowed).
"""
from .backbones import RLAECANet, RLAResNet
from .checkpoint import install_mmengine_loader, register_safe_globals
from .version import __version__

register_safe_globals()
install_mmengine_loader()

__all__ = ['RLAResNet', 'RLAECANet', '__version__']
