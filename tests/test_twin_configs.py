"""The plain twins of the shapes configs, and the script that trains them."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from helpers import ROOT

TWINS = [
    ('configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py',
     'configs/shapes/mask-rcnn_r18_fpn_shapes.py', 'RLAResNet', 'ResNet'),
    ('configs/shapes/mask-rcnn_rla-mobilenetv2_fpn_shapes.py',
     'configs/shapes/mask-rcnn_mobilenetv2_fpn_shapes.py', 'RLAMobileNetV2',
     'MobileNetV2'),
]


def _flat(node, path=''):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f'{path}.{k}' if path else str(k)))
        return out
    if isinstance(node, (list, tuple)):
        out = {}
        for i, v in enumerate(node):
            out.update(_flat(v, f'{path}[{i}]'))
        return out
    return {path: node}


@pytest.mark.parametrize('rla,plain,rla_type,plain_type', TWINS,
                         ids=lambda v: osp.basename(str(v)))
def test_twin_differs_only_in_the_backbone_type(rla, plain, rla_type,
                                               plain_type):
    a = _flat(Config.fromfile(osp.join(ROOT, rla)).to_dict())
    b = _flat(Config.fromfile(osp.join(ROOT, plain)).to_dict())
    diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert diff == {'model.backbone.type'}
    assert (a['model.backbone.type'], b['model.backbone.type']) == (
        rla_type, plain_type)
    assert a['model.backbone.init_cfg'] is None  # both from scratch


@pytest.mark.slow
def test_twins_train_a_few_iterations(tmp_path, run_tool, shapes_data):
    """The four shapes configs train (1 epoch of 4 iterations) and
    validate through tools/analysis/shapes_twins.py, which reports them."""
    configs = [c for pair in TWINS for c in pair[:2]]
    out = tmp_path / 'twins.json'
    proc = run_tool([
        'tools/analysis/shapes_twins.py', '--configs', *configs, '--seeds',
        '0', '--work-dir', tmp_path / 'runs', '--data-root',
        shapes_data['root'], '--json', out, '--cfg-options',
        'train_dataloader.batch_size=2', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'model.test_cfg.rcnn.score_thr=0.0'
    ], timeout=900)
    results = json.loads(out.read_text())
    assert [r['config'] for r in results] == configs
    for r in results:
        assert 0.0 <= r['bbox_mAP'] <= 1.0 and 0.0 <= r['segm_mAP'] <= 1.0
        assert r['sec_per_iter'] > 0
    assert 'mean ± sample std' in proc.stdout
    # A second call trains nothing: it reports the finished runs.
    again = run_tool([
        'tools/analysis/shapes_twins.py', '--configs', *configs, '--seeds',
        '0', '--work-dir', tmp_path / 'runs', '--report-only'
    ])
    assert 'tools/train.py' not in again.stdout
    assert again.stdout.count('shapes ') >= 4
