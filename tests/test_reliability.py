"""Bad input gets a clear error; a killed save never leaves a partial file."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import find_latest_checkpoint

import rla_mmdet  # noqa: F401  (registers the hooks)
from rla_mmdet.engine import AtomicLocalBackend, EpochSeedHook, NonFiniteLossHook
from rla_mmdet.engine.fileio import atomic_write
from rla_mmdet.tools_support.config import (check_model_config,
                                            check_pretrained, load_config,
                                            set_data_root)
from rla_mmdet.tools_support.data_checks import (DatasetWarning,
                                                 check_coco_split,
                                                 check_datasets,
                                                 dataset_classes)
from rla_mmdet.tools_support.work_dir import (auto_resume_fallback,
                                              protect_work_dir)

FASTER = 'configs/faster_rcnn/faster-rcnn_rla-r50_fpn_1x_coco.py'


# ------------------------------------------------------------------ configs
def test_unknown_backbone_type_lists_the_rla_types():
    cfg = load_config(FASTER)
    cfg.model.backbone.type = 'RLAResnet'
    with pytest.raises(ValueError, match=r"unknown backbone type 'RLAResnet'"
                       r'.*RLAResNet, RLAECANet.*did you mean \'RLAResNet\''):
        check_model_config(cfg)


def test_num_classes_disagreeing_with_the_dataset_is_caught():
    cfg = load_config(FASTER)
    check_model_config(cfg)  # COCO: 80 classes, as the heads
    cfg.train_dataloader.dataset.metainfo = dict(classes=('cat', 'dog'))
    with pytest.raises(ValueError, match=r'bbox_head.num_classes=80 but the '
                       r'train dataset has 2 classes \(cat, dog\)'):
        check_model_config(cfg)
    assert dataset_classes(cfg) == ['cat', 'dog']


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config('configs/nope.py')


def test_missing_pretrained_file_stops_before_training():
    cfg = load_config(FASTER)
    with pytest.raises(FileNotFoundError) as info:
        check_pretrained(cfg, resuming=False)
    msg = str(info.value)
    assert 'checkpoints/resnet50_rla_2283.pth.tar' in msg
    assert 'drive.google.com' in msg and 'pan.baidu.com' in msg
    assert '--cfg-options model.backbone.init_cfg=None' in msg
    # resuming replaces the weights anyway: the init is dropped, not fatal
    check_pretrained(cfg, resuming=True)
    assert cfg.model.backbone.init_cfg is None


def test_work_dir_with_another_runs_checkpoints_is_protected(tmp_path):
    protect_work_dir(str(tmp_path), resume=False)
    (tmp_path / 'epoch_3.pth').write_bytes(b'x')
    with pytest.raises(FileExistsError, match=r'epoch_3\.pth.*--resume'):
        protect_work_dir(str(tmp_path), resume=False)
    protect_work_dir(str(tmp_path), resume=True)
    assert (tmp_path / 'epoch_3.pth').read_bytes() == b'x'


def test_auto_resume_survives_a_cut_last_checkpoint_pointer(tmp_path):
    work_dir = str(tmp_path)
    pointer = tmp_path / 'last_checkpoint'
    assert auto_resume_fallback(work_dir) is None  # nothing to resume yet
    older, newer = tmp_path / 'epoch_2.pth', tmp_path / 'epoch_10.pth'
    older.write_bytes(b'old')
    newer.write_bytes(b'new')
    os.utime(older, (1000, 1000))
    os.utime(newer, (2000, 2000))
    pointer.write_text(str(newer))
    assert auto_resume_fallback(work_dir) is None  # MMEngine's pointer is fine
    for broken in ('', '   \n', str(tmp_path / 'epo'), str(newer)[:-3]):
        pointer.write_text(broken)
        assert auto_resume_fallback(work_dir) == str(newer), repr(broken)
    assert pointer.read_text() == str(newer)[:-3]  # the file is left as is
    older.unlink()
    newer.unlink()
    with pytest.raises(FileNotFoundError, match='last_checkpoint.*--resume'):
        auto_resume_fallback(work_dir)


def test_data_root_rewrites_datasets_and_evaluators(tmp_path):
    cfg = load_config(FASTER)
    set_data_root(cfg, str(tmp_path))
    root = str(tmp_path) + '/'
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.test_dataloader.dataset.data_root == root
    assert cfg.val_evaluator.ann_file == \
        root + 'annotations/instances_val2017.json'
    with pytest.raises(FileNotFoundError, match='--data-root'):
        set_data_root(cfg, str(tmp_path / 'missing'))


# ----------------------------------------------------------------- datasets
def write_coco(root, images, annotations, name='ann.json', make_images=True):
    (root / 'img').mkdir(exist_ok=True)
    if make_images:
        for img in images:
            (root / 'img' / img['file_name']).write_bytes(b'\x89PNG')
    data = dict(images=images, annotations=annotations,
                categories=[dict(id=1, name='a')])
    (root / name).write_text(json.dumps(data))
    return str(root / name), str(root / 'img')


def img(i):
    return dict(id=i, file_name=f'{i}.png', width=32, height=32)


def box(i, image_id, w=5, h=5):
    return dict(id=i, image_id=image_id, bbox=[1, 1, w, h], area=w * h,
                category_id=1, iscrowd=0)


def test_dataset_checks(tmp_path):
    ann, img_dir = write_coco(tmp_path, [img(1), img(2)], [box(1, 1)])
    assert check_coco_split(ann, img_dir)['images'] == 2
    with pytest.raises(FileNotFoundError, match=r'nope\.json.*data_root'):
        check_coco_split(str(tmp_path / 'nope.json'), img_dir)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=r'bad\.json.*not valid JSON'):
        check_coco_split(str(bad), img_dir)
    bad.write_text('[1, 2]')
    with pytest.raises(ValueError, match='not in COCO format'):
        check_coco_split(str(bad), img_dir)
    os.remove(os.path.join(img_dir, '2.png'))
    with pytest.raises(FileNotFoundError, match=r'1 of the 2 images .* 2\.png'):
        check_coco_split(ann, img_dir, 'train')
    empty, _ = write_coco(tmp_path, [], [], name='empty.json')
    with pytest.raises(ValueError, match='val split must not be empty'):
        check_coco_split(empty, img_dir, 'val')
    degenerate, _ = write_coco(tmp_path, [img(1)], [box(1, 1, w=0),
                                                    box(2, 1, h=-3),
                                                    box(3, 1)],
                               name='degenerate.json')
    with pytest.warns(DatasetWarning, match=r'2 boxes .* 1\.png \(2\)'):
        counts = check_coco_split(degenerate, img_dir)
    assert counts['degenerate'] == 2


def test_check_datasets_reads_the_config_paths(tmp_path):
    write_coco(tmp_path, [img(1)], [box(1, 1)])
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='CocoDataset', data_root=str(tmp_path) + '/',
        ann_file='ann.json', data_prefix=dict(img='img/')))))
    assert check_datasets(cfg, splits=('train', )) == dict(
        train=dict(images=1, annotations=1, degenerate=0))
    cfg.train_dataloader.dataset.ann_file = 'other.json'
    with pytest.raises(FileNotFoundError, match='train split'):
        check_datasets(cfg, splits=('train', ))


# --------------------------------------------------------------------- hooks
def fake_runner(iteration=4, epoch=1, seed=5, last_ckpt='work/epoch_1.pth'):
    hub = MessageHub.get_instance(f'fake_runner_{time.time()}')
    if last_ckpt:
        hub.update_info('last_ckpt', last_ckpt)
    return types.SimpleNamespace(iter=iteration, epoch=epoch, seed=seed,
                                 message_hub=hub, cfg=Config(dict()))


def test_non_finite_loss_stops_naming_the_iteration():
    hook = NonFiniteLossHook()
    runner = fake_runner()
    hook.after_train_iter(runner, 0, None, dict(loss=torch.tensor(1.0)))
    outputs = dict(loss=torch.tensor(float('nan')),
                   loss_cls=torch.tensor(float('nan')),
                   loss_bbox=torch.tensor(0.5))
    with pytest.raises(FloatingPointError,
                       match=r'at iteration 5 \(epoch 2\): loss_cls=nan; .*'
                       r'work/epoch_1\.pth'):
        hook.after_train_iter(runner, 0, None, outputs)
    with pytest.raises(ValueError, match='interval'):
        NonFiniteLossHook(interval=0)


def test_epoch_seed_hook_makes_an_epoch_independent_of_the_past():
    hook = EpochSeedHook()
    draws = []
    for consumed in (0, 3):
        torch.rand(consumed)
        np.random.rand(consumed)
        hook.before_train_epoch(fake_runner(epoch=2))
        draws.append((torch.rand(3), np.random.rand(3)))
    assert torch.equal(draws[0][0], draws[1][0])
    assert np.array_equal(draws[0][1], draws[1][1])
    hook.before_train_epoch(fake_runner(epoch=3))
    assert not torch.equal(torch.rand(3), draws[0][0])


# ---------------------------------------------------------- atomic saving
def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / 'epoch_1.pth'
    atomic_write(b'old', target)
    AtomicLocalBackend().put(b'new', target)
    assert target.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['epoch_1.pth']

    class Boom(Exception):
        pass

    class Failing(bytes):
        pass

    # a write that fails midway leaves the previous file and no temp file
    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode):
        f = real_fdopen(fd, mode)
        f.write(b'partial')
        f.close()
        raise Boom()

    os.fdopen = failing_fdopen
    try:
        with pytest.raises(Boom):
            atomic_write(b'never', target)
    finally:
        os.fdopen = real_fdopen
    assert target.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_checkpoint_save_killed_midway_leaves_the_last_one_intact(tmp_path):
    """SIGKILL a process inside ``save_checkpoint`` of a second checkpoint."""
    script = textwrap.dedent(f"""
        import os, sys, time, torch
        import rla_mmdet.engine.fileio as fileio
        fileio.enable_checkpoint_io()  # what the tools and configs do
        from mmengine.runner.checkpoint import save_checkpoint
        work = {str(tmp_path)!r}
        save_checkpoint({{'state_dict': {{'w': torch.ones(3)}}}},
                        os.path.join(work, 'epoch_1.pth'))
        with open(os.path.join(work, 'last_checkpoint'), 'w') as f:
            f.write(os.path.join(work, 'epoch_1.pth'))
        real_replace = os.replace
        def slow_replace(src, dst):
            print('WRITTEN', flush=True)
            time.sleep(60)
            real_replace(src, dst)
        os.replace = slow_replace
        save_checkpoint({{'state_dict': {{'w': torch.zeros(10**6)}}}},
                        os.path.join(work, 'epoch_1.pth'))
    """)
    proc = subprocess.Popen([sys.executable, '-c', script],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1] not in ('WRITTEN', ''):
            lines.append(proc.stdout.readline().strip())
        assert lines[-1] == 'WRITTEN', lines
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    latest = find_latest_checkpoint(str(tmp_path))
    assert latest == str(tmp_path / 'epoch_1.pth')
    loaded = torch.load(latest)
    assert torch.equal(loaded['state_dict']['w'], torch.ones(3))


def test_slurm_launcher_without_gpus_says_what_to_use():
    from rla_mmdet.tools_support.distributed import setup_distributed
    if torch.cuda.is_available():
        pytest.skip('this machine has GPUs: the slurm launcher works')
    cfg = load_config(FASTER)
    with pytest.raises(ValueError, match='dist_train.sh'):
        setup_distributed(cfg, 'slurm')
    setup_distributed(cfg, 'none')  # nothing to set up
