"""Efficient channel attention (ECA), shared by the RLA backbones.

Global average pool, a 1-D convolution across the channels (no bias),
sigmoid, scale: the module is named ``conv`` inside, as in the published
RLA-ECANet and dsRLA-ECA-MobileNetV2 checkpoints.
"""
import torch
import torch.nn as nn


class ECA(nn.Module):
    """Efficient channel attention: a 1-D convolution across channels.

    Args:
        kernel_size: Odd size of the convolution along the channel axis.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weight = self.conv(x.mean((2, 3)).view(b, 1, c)).sigmoid()
        return x * weight.view(b, c, 1, 1)
