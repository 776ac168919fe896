"""The authors' ImageNet classifier around an RLA-ResNet backbone.

Only for counting params and FLOPs against the paper's table; detection
never builds it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer

from ..backbones import RLAResNet

__all__ = ['RLAClassifier']


class RLAClassifier(nn.Module):
    """An RLA backbone with the authors' ImageNet classifier, for counting.

    The detection backbone leaves out three parts of the ImageNet network
    (see ``RLAResNet.unbuilt_prefixes``); this module adds them back so that
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
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got '
                             f'{num_classes!r}.')
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
        # skips because no detector reads it.
        s = net.num_stages - 1
        h = net.recurrent_convs[s](
            torch.tanh(self.last_stage_bn(h + net.conv_outs[s](x))))
        h = F.relu(self.bn2(h))
        x = F.adaptive_avg_pool2d(torch.cat([x, h], dim=1), 1)
        return self.fc(torch.flatten(x, 1))
