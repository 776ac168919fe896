"""The authors' ImageNet classifiers around the RLA backbones.

:class:`RLAClassifier` (RLA-ResNet, RLA-ECANet) and
:class:`RLAMobileNetV2Classifier` complete a detection backbone into the
network of the paper's tables. They are for counting params and FLOPs
against those tables, and for writing files in the published layout;
detection never builds them.
"""
import copy
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer

from ..backbones import RLAMobileNetV2, RLAResNet
from ..backbones.checks import check_int

__all__ = ['RLAClassifier', 'RLAMobileNetV2Classifier']


class RLAClassifier(nn.Module):
    """An RLA backbone with the authors' ImageNet classifier, for counting.

    The detection backbone leaves out three parts of the ImageNet network
    (see :func:`rla_mmdet.checkpoint.unbuilt_prefixes`); this module adds
    them back so that
    params and FLOPs compare with the paper's table:

    - ``last_stage_bn``: the norm of the hidden-state update after the last
      block (``stage_bns.{last}.{n-1}`` in the published files), with that
      update itself (``conv_outs`` and ``recurrent_convs`` of the last stage
      run once more);
    - ``bn2``: the norm of the final hidden state;
    - ``fc``: the linear classifier on ``avgpool(cat([x, relu(bn2(h))]))``,
      with ``C + rla_channel`` inputs.

    It is not registered and not used for training; the published ImageNet
    checkpoints are loaded into the detection backbone instead.

    Args:
        backbone: A four-stage :class:`RLAResNet` (or ``RLAECANet``).
        num_classes: Classes of the classifier. Default 1000 (ImageNet).

    Example:
        >>> from rla_mmdet import RLAResNet
        >>> from rla_mmdet.analysis import RLAClassifier, count_params
        >>> count_params(RLAClassifier(RLAResNet(depth=50)))
        25870696
    """

    def __init__(self, backbone: RLAResNet, num_classes: int = 1000) -> None:
        super().__init__()
        if not isinstance(backbone, RLAResNet):
            raise TypeError('backbone must be an RLAResNet or RLAECANet, got '
                            f'{type(backbone).__name__}.')
        if backbone.num_stages != 4:
            raise ValueError('the ImageNet classifier follows the fourth '
                             'stage; build the backbone with num_stages=4 '
                             f'(got {backbone.num_stages}).')
        num_classes = check_int('num_classes', num_classes, 1)
        k = backbone.rla_channel
        self.backbone = backbone
        self.last_stage_bn = build_norm_layer(backbone.norm_cfg, k)[1]
        self.bn2 = build_norm_layer(backbone.norm_cfg, k)[1]
        self.fc = nn.Linear(backbone.stage_channels[-1] + k, num_classes)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Logits of the classifier, ``(B, num_classes)``."""
        net = self.backbone
        _, x, h = net.run_stages(img)
        # The update after the last block, which the detection backbone
        # skips because no detector reads it: the engine's update with the
        # last stage's modules and this norm.
        h = net.rla_update(net.num_stages - 1, self.last_stage_bn, x, h)
        h = F.relu(self.bn2(h))
        x = F.adaptive_avg_pool2d(torch.cat([x, h], dim=1), 1)
        return self.fc(torch.flatten(x, 1))


class RLAMobileNetV2Classifier(nn.Module):
    """An :class:`RLAMobileNetV2` with the authors' ImageNet classifier.

    ``classifier = Sequential(Dropout(0.2), Linear(C, num_classes))`` on the
    global average of output 7 (``classifier.1`` in the published files).
    It is what the paper's parameter and FLOP counts are for (3,624,168
    parameters at k = 32; 3,624,199 with ECA); it is not registered and not
    used for training.

    Args:
        backbone: An :class:`RLAMobileNetV2`; only its head output (7) is
            used, which it must build.
        num_classes: Classes of the classifier. Default 1000 (ImageNet).
        dropout: Dropout probability before the linear layer. Default 0.2.

    Example:
        >>> from rla_mmdet import RLAMobileNetV2
        >>> from rla_mmdet.analysis import RLAMobileNetV2Classifier
        >>> model = RLAMobileNetV2Classifier(RLAMobileNetV2(out_indices=(7,)))
        >>> sum(p.numel() for p in model.parameters())
        3624168
    """

    def __init__(self,
                 backbone: RLAMobileNetV2,
                 num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if not isinstance(backbone, RLAMobileNetV2):
            raise TypeError('backbone must be an RLAMobileNetV2, got '
                            f'{type(backbone).__name__}.')
        if not backbone.with_head:
            raise ValueError(
                'the classifier reads output 7 (the head); build the backbone '
                'with 7 in out_indices, got out_indices='
                f'{backbone.out_indices}.')
        num_classes = check_int('num_classes', num_classes, 1)
        self.backbone = backbone
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(backbone.stage_channels[-1], num_classes))

    @classmethod
    def from_backbone_cfg(cls, cfg: Dict,
                          **kwargs) -> 'RLAMobileNetV2Classifier':
        """Build the backbone of a config dict with ``out_indices=(7,)``
        (its pretrained init dropped) and wrap it."""
        cfg = copy.deepcopy(dict(cfg))
        cfg.pop('type', None)
        cfg.pop('_delete_', None)
        cfg.update(out_indices=(RLAMobileNetV2.head_index, ), init_cfg=None)
        return cls(RLAMobileNetV2(**cfg), **kwargs)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Logits, ``(B, num_classes)``."""
        x = self.backbone(img)[-1]
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)
