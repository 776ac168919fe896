from .legacy import build_legacy_rla_resnet
from .rla_resnet import RLAECANet, RLAResNet

__all__ = ['RLAResNet', 'RLAECANet', 'build_legacy_rla_resnet']
