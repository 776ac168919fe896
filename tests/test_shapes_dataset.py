"""The synthetic shapes dataset: determinism, COCO validity, arguments."""
import filecmp
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from pycocotools.coco import COCO

from rla_mmdet.tools_support.shapes import SHAPE_CLASSES, make_shapes_dataset
from helpers import load_tool

SMALL = dict(num_train=3, num_val=2, image_size=48)


def _files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs)


def test_same_seed_gives_identical_files(tmp_path):
    a = make_shapes_dataset(tmp_path / 'a', seed=3, **SMALL)
    make_shapes_dataset(tmp_path / 'b', seed=3, **SMALL)
    assert _files(tmp_path / 'a') == _files(tmp_path / 'b')
    for name in _files(tmp_path / 'a'):
        assert filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'b' / name,
                           shallow=False), name
    assert set(a) == {'train_ann_file', 'val_ann_file', 'train_img_dir',
                      'val_img_dir'}
    assert a['train_ann_file'] == str(
        tmp_path / 'a' / 'annotations' / 'instances_train.json')


def test_other_seed_gives_other_data(tmp_path):
    a = make_shapes_dataset(tmp_path / 'a', seed=0, **SMALL)
    b = make_shapes_dataset(tmp_path / 'b', seed=1, **SMALL)
    for key in ('train_ann_file', 'val_ann_file'):
        ja, jb = (json.load(open(p[key])) for p in (a, b))
        assert ja['annotations'] != jb['annotations']
    img = '000000.jpg'
    assert not filecmp.cmp(osp.join(a['train_img_dir'], img),
                           osp.join(b['train_img_dir'], img), shallow=False)


def test_val_split_does_not_depend_on_num_train(tmp_path):
    a = make_shapes_dataset(tmp_path / 'a', 2, 2, 48)
    b = make_shapes_dataset(tmp_path / 'b', 5, 2, 48)
    assert filecmp.cmp(a['val_ann_file'], b['val_ann_file'], shallow=False)
    # The training images are not the validation images.
    assert not filecmp.cmp(osp.join(a['train_img_dir'], '000000.jpg'),
                           osp.join(a['val_img_dir'], '000000.jpg'),
                           shallow=False)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_valid_coco(shapes_data, split):
    coco = COCO(shapes_data[f'{split}_ann_file'])
    cats = coco.loadCats(coco.getCatIds())
    assert [c['name'] for c in cats] == list(SHAPE_CLASSES)
    assert [c['id'] for c in cats] == list(range(1, len(SHAPE_CLASSES) + 1))
    images = coco.dataset['images']
    assert len(images) == {'train': 8, 'val': 4}[split]
    ann_ids = [a['id'] for a in coco.dataset['annotations']]
    assert len(ann_ids) == len(set(ann_ids)) >= 2 * len(images)
    for info in images:
        pixels = cv2.imread(
            osp.join(shapes_data[f'{split}_img_dir'], info['file_name']))
        assert pixels.shape == (info['height'], info['width'], 3) == (64, 64,
                                                                      3)
        # A textured background, not a blank canvas.
        assert pixels.reshape(-1, 3).std(0).min() > 10
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info['id']))
        assert anns, f'image {info["id"]} has no instance'
        for ann in anns:
            assert ann['iscrowd'] == 0
            assert ann['category_id'] in coco.getCatIds()
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0
            assert 0 <= x and x + w <= info['width']
            assert 0 <= y and y + h <= info['height']
            (polygon, ) = ann['segmentation']
            assert len(polygon) >= 6 and len(polygon) % 2 == 0
            xs, ys = np.array(polygon[0::2]), np.array(polygon[1::2])
            assert xs.min() == x and ys.min() == y
            assert np.isclose(xs.max(), x + w) and np.isclose(ys.max(), y + h)
            assert 0 < ann['area'] <= w * h
            # The polygon's raster matches its area, within the rim.
            mask = coco.annToMask(ann)
            assert abs(mask.sum() - ann['area']) < 0.25 * ann['area'] + 10


def test_shapes_are_drawn_where_annotated(shapes_data):
    """Inside a mask the colour is flat; around the box it is not."""
    coco = COCO(shapes_data['train_ann_file'])
    contrasts = []
    for ann in coco.dataset['annotations']:
        info = coco.imgs[ann['image_id']]
        pixels = cv2.imread(
            osp.join(shapes_data['train_img_dir'],
                     info['file_name'])).astype(np.float32)
        mask = cv2.erode(coco.annToMask(ann), np.ones((3, 3), np.uint8))
        if mask.sum() < 20:
            continue
        inside = pixels[mask > 0].mean(0)
        ring = cv2.dilate(coco.annToMask(ann), np.ones((5, 5), np.uint8))
        ring = (ring > 0) & (coco.annToMask(ann) == 0)
        contrasts.append(np.linalg.norm(inside - pixels[ring].mean(0)))
    assert len(contrasts) >= 10
    assert np.median(contrasts) > 30


def test_all_classes_appear(tmp_path):
    paths = make_shapes_dataset(tmp_path, num_train=20, num_val=1,
                                image_size=48)
    anns = json.load(open(paths['train_ann_file']))['annotations']
    assert {a['category_id'] for a in anns} == set(
        range(1, len(SHAPE_CLASSES) + 1))


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(num_train=0), ValueError, 'num_train'),
    (dict(num_train=2.0), TypeError, 'num_train'),
    (dict(num_val=True), TypeError, 'num_val'),
    (dict(num_val=-1), ValueError, 'num_val'),
    (dict(image_size=16), ValueError, 'image_size'),
    (dict(image_size='64'), TypeError, 'image_size'),
    (dict(seed=-1), ValueError, 'seed'),
    (dict(overwrite='yes'), TypeError, 'overwrite'),
])
def test_bad_arguments(tmp_path, kwargs, error, words):
    with pytest.raises(error, match=words):
        make_shapes_dataset(tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out').exists()


def test_bad_out_dir(tmp_path):
    with pytest.raises(TypeError, match='out_dir'):
        make_shapes_dataset(None)
    with pytest.raises(ValueError, match='out_dir'):
        make_shapes_dataset('')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(NotADirectoryError, match='out_dir'):
        make_shapes_dataset(tmp_path / 'file')


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    paths = make_shapes_dataset(tmp_path, seed=0, **SMALL)
    before = open(paths['train_ann_file'], 'rb').read()
    with pytest.raises(FileExistsError, match='overwrite'):
        make_shapes_dataset(tmp_path, seed=1, **SMALL)
    assert open(paths['train_ann_file'], 'rb').read() == before
    make_shapes_dataset(tmp_path, seed=1, overwrite=True, **SMALL)
    assert open(paths['train_ann_file'], 'rb').read() != before


def test_cli(repo_root, tmp_path, capsys):
    cli = load_tool('misc/make_shapes_dataset.py')
    out = tmp_path / 'cli'
    paths = cli.main([str(out), '--num-train', '3', '--num-val', '2',
                      '--image-size', '48', '--seed', '3'])
    assert str(out / 'annotations' / 'instances_val.json') in \
        capsys.readouterr().out
    expected = make_shapes_dataset(tmp_path / 'api', seed=3, **SMALL)
    assert filecmp.cmp(paths['train_ann_file'], expected['train_ann_file'],
                       shallow=False)
    with pytest.raises(SystemExit, match='num_train must be >= 1'):
        cli.main([str(tmp_path / 'bad'), '--num-train', '0'])
    with pytest.raises(SystemExit, match='already exists'):
        cli.main([str(out)])


def test_configs_match_the_dataset(repo_root):
    """The configs name the generated classes, in their id order."""
    folder = osp.join(repo_root, 'configs', 'shapes')
    names = [f for f in os.listdir(folder) if f.endswith('.py')]
    assert 'mask-rcnn_rla-r18_fpn_shapes.py' in names
    for name in names:
        cfg = Config.fromfile(osp.join(folder, name))
        classes = tuple(cfg.train_dataloader.dataset.metainfo['classes'])
        assert classes == SHAPE_CLASSES, name
        assert tuple(cfg.val_dataloader.dataset.metainfo['classes']) == \
            SHAPE_CLASSES
        if 'roi_head' in cfg.model:
            heads = [cfg.model.roi_head.bbox_head,
                     cfg.model.roi_head.get('mask_head')]
        else:
            heads = [cfg.model.bbox_head]
        for head in filter(None, heads):
            assert head.num_classes == len(SHAPE_CLASSES), name
        # The main job's RLA-ResNet-18 and the twins (plain ResNet-18,
        # RLA-MobileNetV2 and MobileNetV2) all train from scratch.
        assert cfg.model.backbone.type in ('RLAResNet', 'ResNet',
                                           'RLAMobileNetV2', 'MobileNetV2')
        assert cfg.model.backbone.get('init_cfg') is None
        assert cfg.randomness.seed == 0 and cfg.randomness.deterministic
