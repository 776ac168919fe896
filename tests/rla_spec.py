"""The forward passes of the RLA backbones written out independently, as the
oracles of the tests: RLA-ResNet's, then RLA-MobileNetV2's.

:func:`reference_forward` runs the modules of an :class:`RLAResNet` one by one
with plain tensor operations: the hidden state starts at zero and is
concatenated to each block's input, the residual is added, and the
hidden-state update reads the block's final output (after the residual add
and the ReLU), ``h = recurrent_conv(tanh(stage_bn(h + conv_out(x))))``. It
shares no code with the package's forward, so a mistake in the package's
architecture (or in any of its operator forms) shows up as a difference.

Both follow the specification in ``docs/backbones.md`` ("The
specification"), from the paper and the authors' code.

:func:`reference_mobilenet_v2_forward` is the dsRLA MobileNetV2 of the spec
in functional ops on the tensors of the published state-dict layout, looked
up by key: it needs no module of the package at all, so a wrong module
name, wiring or number shows up too.

:func:`published_resnet_layout` and :func:`published_mobilenet_v2_layout`
are the key names and shapes of the authors' published ImageNet files,
written from the spec's layouts.
"""
from typing import Tuple

import torch
import torch.nn.functional as F


def _block(block, x: torch.Tensor,
           h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    identity = x
    out = block.relu(block.bn1(block.conv1(torch.cat((x, h), dim=1))))
    if hasattr(block, 'conv3'):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
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


def reference_run_stages(model, img: torch.Tensor):
    """``(outputs, last x, last h)`` like :meth:`RLAResNet.run_stages`."""
    if model.deep_stem:
        x = model.stem(img)
    else:
        x = model.relu(model.bn1(model.conv1(img)))
    x = model.maxpool(x)
    b, _, height, width = x.shape
    h = torch.zeros(
        b, model.rla_channel, height, width, dtype=x.dtype, device=x.device)
    outs = []
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage):
            x, h = _block(block, x, h)
            if i < len(model.stage_bns[s]):
                y = model.stage_bns[s][i](h + model.conv_outs[s](x))
                h = model.recurrent_convs[s](torch.tanh(y))
        if s in model.out_indices:
            outs.append(x)
    return tuple(outs), x, h


def reference_forward(model, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The outputs of ``model`` (an :class:`RLAResNet`), computed literally."""
    return reference_run_stages(model, img)[0]


# ------------------------------------------------------------- MobileNetV2
K = 32
# (t, c, n, s) of the spec.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _bn(x, p, name, training):
    if training:  # batch statistics; the running ones are left alone
        return F.batch_norm(x, None, None, p[name + '.weight'],
                            p[name + '.bias'], True, 0.0, 1e-5)
    return F.batch_norm(x, p[name + '.running_mean'],
                        p[name + '.running_var'], p[name + '.weight'],
                        p[name + '.bias'], False, 0.0, 1e-5)


def _relu6(x):
    return x.clamp(0, 6)


def _eca(y, weight):
    a = y.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
    a = F.conv1d(a, weight, padding=(weight.shape[-1] - 1) // 2)
    return y * a.sigmoid().squeeze(1)[:, :, None, None]


def reference_mobilenet_v2_forward(p, img, out_indices, eca=False,
                                   training=False):
    """The spec's forward pass on the tensors ``p`` (full network layout).

    Stops where the last requested output is computed; the hidden-state
    update after the last block runs only when output 7 is requested.
    """
    bn = lambda x, name: _bn(x, p, name, training)  # noqa: E731
    x = _relu6(bn(F.conv2d(img, p['conv1.0.weight'], stride=2, padding=1),
                  'conv1.1'))
    h = torch.zeros(x.shape[0], K, *x.shape[2:], dtype=x.dtype)
    inp, outs = 32, []
    last = max(out_indices)
    for j, (t, c, n, s) in enumerate(SETTINGS):
        if j > last:
            break
        for i in range(n):
            pre, stride = f'stages.{j}.{i}.', (s if i == 0 else 1)
            identity = x
            if t != 1:
                e = _relu6(bn(F.conv2d(x, p[pre + 'conv1x1.0.weight']),
                              pre + 'conv1x1.1'))
            else:
                e = x
            z = torch.cat([e, h], dim=1)
            z = _relu6(bn(F.conv2d(z, p[pre + 'conv.0.0.weight'],
                                   stride=stride, padding=1,
                                   groups=z.shape[1]), pre + 'conv.0.1'))
            y = bn(F.conv2d(z, p[pre + 'conv.1.weight']), pre + 'conv.2')
            if eca:
                y = _eca(y, p[pre + 'conv.3.conv.weight'])
            x = identity + y if stride == 1 and inp == c else y
            if stride != 1:
                h = F.avg_pool2d(h, 2, 2)
            inp = c
            if j == last and i == n - 1 and 7 not in out_indices:
                break
            u = bn(h + F.conv2d(y, p[f'conv_outs.{j}.weight']),
                   f'stage_bns.{j}.{i}')
            h = F.conv2d(torch.tanh(u), p['recurrent_dsconvs.0.weight'],
                         padding=1, groups=K)
        if j in out_indices:
            outs.append(x)
    if 7 in out_indices:
        h = _relu6(bn(h, 'bn2'))
        outs.append(_relu6(bn(F.conv2d(torch.cat([x, h], 1),
                                       p['conv2.0.weight']), 'conv2.1')))
    return outs


# ------------------------------------------ the published state-dict layouts
# Written from the layouts of the spec (docs/backbones.md, "The
# specification"), not from the package's modules, so that a
# renamed or reshaped module of the package shows up as a file that no
# longer loads.
LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
ECA_KERNELS = (5, 5, 5, 7)


def _bn_keys(layout, name, channels):
    for p in ('weight', 'bias', 'running_mean', 'running_var'):
        layout[f'{name}.{p}'] = (channels, )
    layout[f'{name}.num_batches_tracked'] = ()


def published_resnet_layout(depth, eca=False):
    """``{key: shape}`` of the authors' ImageNet RLA-ResNet / RLA-ECANet
    file of ``depth`` (50 or 101), without the ``module.`` prefix: the
    backbone, every stage norm (the last update's included), ``bn2`` and
    ``fc``."""
    layout = {'conv1.weight': (64, 3, 7, 7)}
    _bn_keys(layout, 'bn1', 64)
    inplanes = 64
    for s, blocks in enumerate(LAYERS[depth]):
        planes = 64 * 2**s
        for b in range(blocks):
            pre = f'stages.{s}.{b}.'
            layout[pre + 'conv1.weight'] = (planes, inplanes + K, 1, 1)
            _bn_keys(layout, pre + 'bn1', planes)
            layout[pre + 'conv2.weight'] = (planes, planes, 3, 3)
            _bn_keys(layout, pre + 'bn2', planes)
            layout[pre + 'conv3.weight'] = (4 * planes, planes, 1, 1)
            _bn_keys(layout, pre + 'bn3', 4 * planes)
            if eca:
                layout[pre + 'eca.conv.weight'] = (1, 1, ECA_KERNELS[s])
            if b == 0:
                layout[pre + 'downsample.0.weight'] = (4 * planes, inplanes,
                                                       1, 1)
                _bn_keys(layout, pre + 'downsample.1', 4 * planes)
            inplanes = 4 * planes
    for s, blocks in enumerate(LAYERS[depth]):
        for b in range(blocks):
            _bn_keys(layout, f'stage_bns.{s}.{b}', K)
    for s in range(4):
        layout[f'conv_outs.{s}.weight'] = (K, 4 * 64 * 2**s, 1, 1)
    for s in range(4):
        layout[f'recurrent_convs.{s}.weight'] = (K, K, 3, 3)
    _bn_keys(layout, 'bn2', K)
    layout['fc.weight'] = (1000, 2048 + K)
    layout['fc.bias'] = (1000, )
    return layout


def published_mobilenet_v2_layout(eca=False):
    """``{key: shape}`` of the authors' ImageNet dsRLA-MobileNetV2 file
    (k = 32), without the ``module.`` prefix; the five stored copies of the
    shared recurrent convolution included."""
    layout = {'conv1.0.weight': (32, 3, 3, 3)}
    _bn_keys(layout, 'conv1.1', 32)
    inp = 32
    for j, (t, c, n, _) in enumerate(SETTINGS):
        for i in range(n):
            pre, hidden = f'stages.{j}.{i}.', int(round(inp * t))
            if t != 1:
                layout[pre + 'conv1x1.0.weight'] = (hidden, inp, 1, 1)
                _bn_keys(layout, pre + 'conv1x1.1', hidden)
            layout[pre + 'conv.0.0.weight'] = (hidden + K, 1, 3, 3)
            _bn_keys(layout, pre + 'conv.0.1', hidden + K)
            layout[pre + 'conv.1.weight'] = (c, hidden + K, 1, 1)
            _bn_keys(layout, pre + 'conv.2', c)
            if eca:
                layout[pre + 'conv.3.conv.weight'] = (1, 1,
                                                      1 if c < 96 else 3)
            inp = c
    for j, (_, c, n, _) in enumerate(SETTINGS):
        for i in range(n):
            _bn_keys(layout, f'stage_bns.{j}.{i}', K)
        layout[f'conv_outs.{j}.weight'] = (K, c, 1, 1)
    for i in range(5):
        layout[f'recurrent_dsconvs.{i}.weight'] = (K, 1, 3, 3)
    layout['conv2.0.weight'] = (1280, 320 + K, 1, 1)
    _bn_keys(layout, 'conv2.1', 1280)
    _bn_keys(layout, 'bn2', K)
    layout['classifier.1.weight'] = (1000, 1280)
    layout['classifier.1.bias'] = (1000, )
    return layout
