"""A literal implementation of the RLA forward pass of ``shared/RLA.md``.

It runs the modules of an :class:`RLAResNet` one by one, exactly as the
specification writes them (concatenation, residual add, then the
hidden-state update on the block's final output), and serves as the ground
truth for the optimised forward of the backbone.
"""
import torch
import torch.nn.functional as F


def _block(block, x, h):
    identity = x
    z = torch.cat([x, h], dim=1)
    if hasattr(block, 'conv3'):
        out = F.relu(block.bn1(block.conv1(z)))
        out = F.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = F.relu(block.bn1(block.conv1(z)))
        out = block.bn2(block.conv2(out))
    if block.se is not None:
        out = block.se(out)
    if block.eca is not None:
        out = block.eca(out)
    if block.downsample is not None:
        identity = block.downsample(x)
        if block.stride != 1:
            h = F.avg_pool2d(h, 2, 2, ceil_mode=True)
    return F.relu(out + identity), h


def reference_forward(model, img):
    """The outputs of ``model`` (an RLAResNet) computed literally."""
    if model.deep_stem:
        x = model.stem(img)
    else:
        x = F.relu(model.bn1(model.conv1(img)))
    x = model.maxpool(x)
    b, _, height, width = x.shape
    h = torch.zeros(b, model.rla_channel, height, width, dtype=x.dtype,
                    device=x.device)
    outs = []
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage):
            x, h = _block(block, x, h)
            if i < len(model.stage_bns[s]):
                h = model.recurrent_convs[s](torch.tanh(
                    model.stage_bns[s][i](h + model.conv_outs[s](x))))
        if s in model.out_indices:
            outs.append(x)
    return tuple(outs)
