"""tools/analysis: params / FLOPs (get_flops.py) and training curves
(plot_curves.py)."""
import json
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

from rla_mmdet import RLAECANet, RLAResNet
from rla_mmdet.analysis import (RLAClassifier, binary_units,
                                classifier_complexity, complexity,
                                count_params, load_curves)
from rla_spec import reference_forward, reference_run_stages
from helpers import ROOT, load_tool

R18_NECK = '[64,128,256,512]'


def _tool(name):
    return load_tool(f'analysis/{name}.py')


# ------------------------------------------------------------- params/FLOPs
def test_rla_r50_imagenet_params_match_the_paper():
    # The paper's "24.67M" is 25,870,696 parameters (2**20 units), classifier
    # included.
    backbone = RLAResNet(depth=50)
    model = RLAClassifier(backbone)
    assert count_params(model) == 25_870_696
    # What the detection backbone leaves out: the norm of the last update
    # (32 + 32), bn2 (32 + 32) and fc ((2048 + 32) * 1000 + 1000).
    assert count_params(model) - count_params(backbone) == \
        64 + 64 + 2080 * 1000 + 1000
    assert binary_units(count_params(model), 0)[0] == '24.67M'


@pytest.mark.parametrize('cls', [RLAResNet, RLAECANet])
def test_rla_r101_imagenet_params_match_the_paper(cls):
    params = count_params(RLAClassifier(cls(depth=101)))
    assert f'{params / 2**20:.2f}M' == '42.92M'


def test_rla_r50_imagenet_flops_match_the_paper():
    result = classifier_complexity(RLAResNet(depth=50), (224, 224))
    # The paper: 4.17G in units of 2**30, i.e. about 4.48 GMACs.
    assert binary_units(result.params, result.flops)[1] == '4.17G'
    assert abs(result.flops / 1e9 - 4.48) < 0.01
    # Counted on the literal formulation: the RLA products are convolutions.
    assert result.by_operator['conv'] > 0
    assert not any('bmm' in op or 'matmul' in op or 'conv' in op
                   or 'linear' in op for op in result.uncounted)


def test_classifier_forward_is_the_spec():
    """The ImageNet head of the spec (docs/backbones.md): the update after
    the last block (with the classifier's own norm), then
    fc(avgpool(cat([x, relu(bn2(h))])))."""
    from test_backbone import randomize_norms
    model = RLAClassifier(RLAResNet(depth=18), num_classes=7)
    randomize_norms(model).eval()
    img = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(img)
        _, x, h = reference_run_stages(model.backbone, img)
        net = model.backbone
        y = model.last_stage_bn(h + net.conv_outs[3](x))
        h = torch.relu(model.bn2(net.recurrent_convs[3](torch.tanh(y))))
        ref = model.fc(torch.cat([x, h], 1).mean((2, 3)))
    assert logits.shape == (2, 7)
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


class _Literal(nn.Module):
    """The spec's literal forward (cat + plain convs) of a backbone."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return reference_forward(self.backbone, x)


@pytest.mark.parametrize('depth,batch', [(18, 1), (50, 2)])
def test_fast_forward_counts_as_the_literal_one(depth, batch):
    # The fast forward skips the zero initial state's terms and folds norms
    # into matrix products; the count must still be the architecture's, that
    # of the plain convolutions on cat([x, h]) (MMEngine's own conv handle).
    model = RLAResNet(depth=depth).eval()
    x = torch.rand(batch, 3, 64, 96)
    with torch.no_grad():
        ours = complexity(model, x).flops
        analyzer = FlopAnalyzer(_Literal(model), (x, ))
        analyzer.unsupported_ops_warnings(False)
        literal = analyzer.total()
    assert ours == literal


def test_get_flops_detector_and_backbone(capsys):
    tool = _tool('get_flops')
    config = osp.join(ROOT, 'configs/faster_rcnn/'
                      'faster-rcnn_rla-r50_fpn_1x_coco.py')
    options = ['--cfg-options', 'model.backbone.depth=18',
               f'model.neck.in_channels={R18_NECK}']
    result = tool.main([config, '--shape', '60', '90'] + options)
    out = capsys.readouterr().out
    # The data preprocessor pads to a multiple of 32, as in inference.
    assert '60 x 90 padded to 64 x 96' in out
    assert 'input:  1 x 3 x 64 x 96' in out
    assert f'{result.params:,}' in out
    assert f'= {result.params / 2**20:.2f}M (2^20' in out
    assert set(result.by_module) >= {'backbone', 'neck', 'rpn_head',
                                     'roi_head'}
    assert result.flops == sum(result.by_module.values())

    backbone = tool.main([config, '--backbone', '--shape', '64', '96'] +
                         options)
    # Counted alone on the padded input, the backbone costs what it costs
    # inside the detector.
    assert backbone.flops == result.by_module['backbone']
    assert backbone.params == count_params(RLAResNet(depth=18))


def test_get_flops_imagenet_classifier_cli(capsys):
    tool = _tool('get_flops')
    config = osp.join(ROOT, 'configs/retinanet/'
                      'retinanet_rla-eca-r50_fpn_1x_coco.py')
    result = tool.main([config, '--imagenet-classifier', '--shape', '64',
                        '64', '--num-classes', '10'])
    out = capsys.readouterr().out
    assert 'RLAECANet' in out and 'fc 2080 -> 10' in out
    assert result.params == count_params(
        RLAClassifier(RLAECANet(depth=50), num_classes=10))


def test_get_flops_errors(tmp_path):
    tool = _tool('get_flops')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        tool.main([str(tmp_path / 'nope.py')])
    plain = tmp_path / 'plain.py'
    plain.write_text("_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'"
                     '\n')
    with pytest.raises(ValueError, match='needs an RLA backbone'):
        tool.main([str(plain), '--imagenet-classifier'])
    with pytest.raises(TypeError, match='RLAResNet'):
        RLAClassifier(nn.Conv2d(3, 3, 1))


# ------------------------------------------------------------------- curves
def _write_log(path, records):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def _epoch_run(first_epoch, epochs, iters_per_epoch=4, interval=2):
    """Records of MMEngine's LoggerHook in an epoch-based run."""
    records = []
    it = (first_epoch - 1) * iters_per_epoch
    for epoch in range(first_epoch, first_epoch + epochs):
        for _ in range(iters_per_epoch):
            it += 1
            if it % interval == 0:
                records.append(
                    dict(lr=0.02, data_time=0.01, loss=10.0 / it,
                         loss_cls=5.0 / it, time=0.5, epoch=epoch, iter=it,
                         memory=100, step=it))
        records.append({
            'coco/bbox_mAP': 0.1 * epoch,
            'coco/bbox_mAP_50': 0.2 * epoch,
            'data_time': 0.01,
            'time': 0.1,
            'step': epoch
        })
    return records


def test_load_curves_of_an_epoch_based_work_dir(tmp_path):
    work = tmp_path / 'work'
    _write_log(str(work / '20240101_000000' / 'vis_data' / 'scalars.json'),
               _epoch_run(1, 3))
    curves = load_curves(str(work), ['loss', 'bbox_mAP'])
    [loss] = curves['loss']
    assert loss.key == 'loss'  # not loss_cls
    assert loss.x == [2, 4, 6, 8, 10, 12]
    assert loss.y == pytest.approx([10.0 / i for i in loss.x])
    [bbox] = curves['bbox_mAP']
    assert bbox.key == 'coco/bbox_mAP'  # not coco/bbox_mAP_50
    # Validation after epoch e sits at the last iteration of that epoch.
    assert bbox.x == [4, 8, 12]
    assert bbox.y == pytest.approx([0.1, 0.2, 0.3])


def test_load_curves_joins_a_resumed_run(tmp_path):
    work = tmp_path / 'work'
    first = _epoch_run(1, 2)
    first.append(dict(loss=99.0, epoch=3, iter=10, step=10))  # then crashed
    _write_log(str(work / '20240101_000000/vis_data/scalars.json'), first)
    _write_log(str(work / '20240102_000000/vis_data/scalars.json'),
               _epoch_run(3, 1))  # resumed from epoch 2
    [loss] = load_curves(str(work), ['loss'])['loss']
    assert loss.x == [2, 4, 6, 8, 10, 12]
    assert 99.0 not in loss.y
    [bbox] = load_curves(str(work), ['bbox_mAP'])['bbox_mAP']
    assert bbox.x == [4, 8, 12]


def test_load_curves_iteration_based_and_errors(tmp_path):
    log = tmp_path / 'log.json'
    _write_log(str(log), [
        dict(loss=1.0, iter=50, step=50),
        dict(loss=0.5, iter=100, step=100),
        {'coco/bbox_mAP': 0.4, 'step': 100},
    ])
    curves = load_curves(str(log), ['loss', 'coco/bbox_mAP'])
    assert curves['coco/bbox_mAP'][0].x == [100]
    with pytest.raises(ValueError, match="'segm_mAP'.*coco/bbox_mAP, loss"):
        load_curves(str(log), ['segm_mAP'])
    with pytest.raises(FileNotFoundError, match='no training log'):
        load_curves(str(tmp_path), ['loss'])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_curves(str(tmp_path / 'missing'), ['loss'])
    bad = tmp_path / 'bad' / 'scalars.json'
    _write_log(str(bad), [dict(loss=1.0, iter=1, step=1)])
    with open(bad, 'a') as f:
        f.write('{not json\n')
    with pytest.raises(ValueError, match='line 2 is not JSON'):
        load_curves(str(bad), ['loss'])


def test_plot_curves_writes_a_png(tmp_path, capsys):
    work = tmp_path / 'work'
    _write_log(str(work / '20240101_000000/vis_data/scalars.json'),
               _epoch_run(1, 3))
    out = tmp_path / 'plots' / 'curves.png'
    _tool('plot_curves').main(
        [str(work), '--keys', 'loss', 'bbox_mAP', '--out', str(out)])
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    two = matplotlib.image.imread(str(out))
    assert min(two.shape[:2]) > 100 and two.std() > 0  # something drawn
    assert 'coco/bbox_mAP: 3 points, iterations 4..12' in \
        capsys.readouterr().out
    one = tmp_path / 'one.png'
    _tool('plot_curves').main([str(work), '--keys', 'loss', '--out',
                               str(one)])
    # One plot per key, stacked.
    assert two.shape[0] > matplotlib.image.imread(str(one)).shape[0]
    with pytest.raises(ValueError, match='not in the log'):
        _tool('plot_curves').main(
            [str(work), '--keys', 'segm_mAP', '--out', str(out)])
