"""tools/demo.py on CPU, on images of the bundled shapes dataset."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_utils

from rla_mmdet.tools_support.shapes import SHAPE_CLASSES
from helpers import ROOT, LocalServer, load_tool

DEMO = osp.join(ROOT, 'tools', 'demo.py')
SHAPES_CONFIG = osp.join(ROOT, 'configs', 'shapes',
                         'mask-rcnn_rla-r18_fpn_shapes.py')
SIZE = 64  # of the shapes_data images
# configs/shapes' test_pipeline has no Resize, so nothing sets the
# scale_factor that the bbox and mask heads read when they rescale their
# predictions (tools/test.py fails on it with KeyError: 'scale_factor').
# Until that config is fixed, the demo runs with its pipeline plus an
# identity Resize.
# Ten predictions per image keep the drawing of masks quick.
_FEWER = 'model = dict(test_cfg=dict(rcnn=dict(max_per_img=10)))\n'


def _demo():
    return load_tool('demo.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory, shapes_data):
    """A config without custom_imports and the checkpoint of a randomly
    initialised model of that config."""
    root = tmp_path_factory.mktemp('demo')
    # The demo itself must register the RLA backbone.
    config = root / 'mask_rcnn_no_imports.py'
    config.write_text(f'_base_ = {SHAPES_CONFIG!r}\ncustom_imports = None\n'
                      + _FEWER)
    cfg = Config.fromfile(SHAPES_CONFIG)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # Saved like MMEngine's Runner saves it, with the message hub's
    # HistoryBuffers, which the demo must load in a fresh process.
    hub = MessageHub.get_instance('test_demo')
    hub.update_scalar('train/loss', 1.0)
    checkpoint = root / 'mask_rcnn.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': SHAPE_CLASSES}},
                'message_hub': hub.state_dict()}, str(checkpoint))
    return dict(val=shapes_data['val_img_dir'], config=str(config),
                checkpoint=str(checkpoint), root=root,
                state_dict=model.state_dict())


def _listing(path):
    return sorted(
        osp.relpath(osp.join(d, f), path)
        for d, _, files in os.walk(path) for f in files)


def test_demo_on_a_folder_writes_drawings_and_json(setup, tmp_path):
    images_before = _listing(setup['val'])
    run = subprocess.run(
        [sys.executable, DEMO, setup['val'], setup['config'],
         setup['checkpoint'], '--out-dir', 'out', '--score-thr', '0',
         '--device', 'cpu'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    images = sorted(os.listdir(setup['val']))
    assert len(images) == 4  # the val split of the shapes_data fixture
    # Nothing but out/ is written, and the inputs are left alone.
    assert _listing(str(tmp_path)) == sorted(
        ['out/predictions.json'] + [f'out/vis/{name}' for name in images])
    assert _listing(setup['val']) == images_before

    for name in images:
        drawn = mmcv.imread(str(tmp_path / 'out' / 'vis' / name))
        original = mmcv.imread(osp.join(setup['val'], name))
        assert drawn.shape == original.shape
        assert not np.array_equal(drawn, original)  # something was drawn

    with open(tmp_path / 'out' / 'predictions.json') as f:
        result = json.load(f)
    assert result['classes'] == list(SHAPE_CLASSES)
    assert result['score_thr'] == 0
    assert [osp.basename(r['image']) for r in result['images']] == images
    for record in result['images']:
        assert record['vis'] == osp.join('vis', osp.basename(record['image']))
        # --score-thr 0 keeps every prediction: max_per_img of them.
        assert len(record['instances']) == 10
        for inst in record['instances']:
            assert inst['label_name'] == SHAPE_CLASSES[inst['label']]
            assert 0 <= inst['score'] <= 1
            x1, y1, x2, y2 = inst['bbox']
            assert -1 <= x1 <= x2 <= SIZE + 1 and -1 <= y1 <= y2 <= SIZE + 1
            mask = mask_utils.decode(inst['mask'])
            assert mask.shape == (SIZE, SIZE)
            assert set(np.unique(mask)) <= {0, 1}
    assert 'prediction(s) with score >= 0.0' in run.stdout


def test_demo_glob_and_score_threshold(setup, tmp_path):
    demo = _demo()
    pattern = osp.join(setup['val'], '*1.jp*g')
    [image] = [p for p in sorted(os.listdir(setup['val']))
               if p.endswith('1.jpg')]
    # A folder and a glob naming the same images give each image once.
    assert demo.find_images([setup['val'], pattern]) == sorted(
        osp.join(setup['val'], p) for p in os.listdir(setup['val']))
    out = tmp_path / 'glob'
    summary = demo.main([pattern, setup['config'], setup['checkpoint'],
                         '--out-dir', str(out), '--score-thr', '1.0'])
    assert [r['image'] for r in summary['images']] == \
        [osp.join(setup['val'], image)]
    # Random weights never reach a score of 1: nothing is kept or drawn.
    assert summary['images'][0]['instances'] == []
    assert os.listdir(out / 'vis') == [image]
    with open(out / 'predictions.json') as f:
        assert json.load(f) == json.loads(json.dumps(summary))


def test_demo_errors(setup, tmp_path):
    demo = _demo()
    args = [setup['val'], setup['config'], setup['checkpoint'], '--out-dir',
            str(tmp_path / 'out')]
    with pytest.raises(FileNotFoundError, match="config file .*nope.py"):
        demo.main([setup['val'], str(tmp_path / 'nope.py'),
                   setup['checkpoint']])
    with pytest.raises(FileNotFoundError, match='checkpoint file .*nope.pth'):
        demo.main([setup['val'], setup['config'], str(tmp_path / 'nope.pth')])
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match='no images found in folder'):
        demo.main([str(empty)] + args[1:])
    with pytest.raises(FileNotFoundError, match='no images found in glob'):
        demo.main([str(empty / '*.jpg')] + args[1:])
    with pytest.raises(ValueError, match='not an image file'):
        demo.main([str(empty / 'notes.txt')] + args[1:])
    with pytest.raises(FileNotFoundError, match='neither a file'):
        demo.main([str(tmp_path / 'missing.jpg')] + args[1:])
    other = tmp_path / 'other'
    other.mkdir()
    name = sorted(os.listdir(setup['val']))[0]
    (other / name).write_bytes(
        open(osp.join(setup['val'], name), 'rb').read())
    with pytest.raises(ValueError, match='same file name'):
        demo.main([setup['val'], str(other)] + args[1:])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='--device cpu'):
            demo.main(args + ['--device', 'cuda:0'])
    with pytest.raises(SystemExit):
        demo.main(args + ['--score-thr', '1.5'])
    # A checkpoint of another model is refused, not half loaded.
    state = dict(setup['state_dict'])
    state.pop('roi_head.mask_head.conv_logits.weight')
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': state}, str(wrong))
    with pytest.raises(ValueError, match='missing keys: .*conv_logits'):
        demo.main([setup['val'], setup['config'], str(wrong), '--out-dir',
                   str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()


def test_demo_reads_a_checkpoint_url(setup, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    from rla_mmdet.engine.fileio import (current_checkpoint_io,
                                         restore_checkpoint_io)
    before = current_checkpoint_io()  # the demo switches it on for good
    server = LocalServer(osp.dirname(setup['checkpoint']))
    try:
        url = server.url(osp.basename(setup['checkpoint']))
        pattern = osp.join(setup['val'], '*1.jp*g')
        summary = _demo().main([pattern, setup['config'], url, '--out-dir',
                                str(tmp_path / 'out'), '--score-thr', '0'])
    finally:
        server.close()
        restore_checkpoint_io(before)
    assert summary['checkpoint'] == url
    assert len(summary['images'][0]['instances']) == 10
