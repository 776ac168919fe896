"""Faults during training: a killed run, a killed worker, a NaN loss, and
mistakes caught before training starts."""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

CONFIG = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
TINY = ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1',
        'model.test_cfg.rcnn.score_thr=0.0']


# The ignored folders of .gitignore that the tools' defaults point at.
DEFAULT_OUTPUTS = ('work_dirs', 'data', 'outputs', 'checkpoints')


def train_args(shapes_data, work_dir, epochs, *extra, options=()):
    return ['tools/train.py', CONFIG, '--work-dir', work_dir, '--data-root',
            shapes_data['root'], *extra, '--cfg-options', *TINY,
            f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval='
            f'{epochs}', *options]


def state_dict(path):
    # Files written by the runs of this test.
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict']


def val_metrics(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    records = [json.loads(line) for line in open(logs[-1])]
    return [r for r in records if 'coco/bbox_mAP' in r][-1]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_matches_a_straight_run(
        run_tool, shapes_data, tmp_path, repo_root):
    straight = str(tmp_path / 'straight')
    run_tool(train_args(shapes_data, straight, 3))

    killed = str(tmp_path / 'killed')
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen(
        [sys.executable] + train_args(shapes_data, killed, 3), cwd=repo_root,
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = osp.join(killed, 'last_checkpoint')
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if osp.isfile(marker) and open(marker).read().endswith(
                    'epoch_1.pth'):
                break
            time.sleep(0.05)
        assert proc.poll() is None, 'the run ended before it could be killed'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(killed, 'epoch_3.pth'))

    out = run_tool(train_args(shapes_data, killed, 3, '--resume'))
    assert 'Auto resumed from the latest checkpoint' in out.stdout
    a = state_dict(osp.join(straight, 'epoch_3.pth'))
    b = state_dict(osp.join(killed, 'epoch_3.pth'))
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    ma, mb = val_metrics(straight), val_metrics(killed)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50'):
        assert ma[key] == mb[key], key


@pytest.mark.slow
def test_nan_loss_stops_naming_the_iteration_and_keeps_the_checkpoint(
        run_tool, shapes_data, tmp_path, repo_root):
    # A learning rate that is fine in epoch 1 and absurd from epoch 2 on.
    config = tmp_path / 'exploding_lr.py'
    config.write_text(
        f'_base_ = {osp.join(repo_root, CONFIG)!r}\n'
        'param_scheduler = [dict(type="MultiStepLR", by_epoch=True, '
        'milestones=[1], gamma=1e30)]\n')
    work_dir = str(tmp_path / 'nan')
    args = train_args(shapes_data, work_dir, 3)
    args[1] = str(config)
    proc = run_tool(args, check=False)
    assert proc.returncode != 0
    good = osp.join(work_dir, 'epoch_1.pth')
    assert 'FloatingPointError: loss became' in proc.stdout
    assert 'at iteration 5 (epoch 2)' in proc.stdout or \
        'at iteration 6 (epoch 2)' in proc.stdout, proc.stdout[-2000:]
    assert f'The last good checkpoint is {good}' in proc.stdout
    # the checkpoint of epoch 1 is complete and its weights are finite
    weights = state_dict(good)
    assert all(torch.isfinite(v).all() for v in weights.values()
               if v.is_floating_point())
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))


def _job_processes(tag):
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()
        except OSError:
            continue
        if tag.encode() in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.slow
def test_killing_one_worker_ends_the_distributed_job(
        shapes_data, tmp_path, repo_root, free_port):
    work_dir = str(tmp_path / 'dist_kill_job')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    args = train_args(shapes_data, work_dir, 50)[2:]
    launcher = subprocess.Popen(
        ['tools/dist_train.sh', CONFIG, '2'] + args, cwd=repo_root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.time() + 240
        for line in launcher.stdout:
            if 'Epoch(train)' in line or time.time() > deadline:
                break
        workers = [p for p in _job_processes(work_dir)
                   if p != launcher.pid and b'train.py' in open(
                       f'/proc/{p}/cmdline', 'rb').read()
                   and b'torch.distributed.run' not in open(
                       f'/proc/{p}/cmdline', 'rb').read()]
        assert len(workers) == 2, workers
        killed_at = time.time()
        os.kill(workers[0], signal.SIGKILL)
        launcher.stdout.close()
        rc = launcher.wait(timeout=90)
        assert time.time() - killed_at < 60
        assert rc != 0
        time.sleep(1)
        assert _job_processes(work_dir) == []
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


@pytest.mark.slow
def test_mistakes_are_reported_before_training(run_tool, shapes_data,
                                               tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(shapes_data['root'], data)
    missing = sorted(os.listdir(data / 'train'))[0]
    os.remove(data / 'train' / missing)
    work_dir = tmp_path / 'work'
    proc = run_tool([
        'tools/train.py', CONFIG, '--work-dir', work_dir, '--data-root', data
    ], check=False)
    assert proc.returncode != 0
    assert 'are missing under' in proc.stdout and missing in proc.stdout
    assert not osp.exists(work_dir / 'last_checkpoint')
    proc = run_tool([
        'tools/train.py', CONFIG, '--work-dir', work_dir, '--data-root',
        shapes_data['root'], '--cfg-options',
        'model.roi_head.bbox_head.num_classes=7'
    ], check=False)
    assert proc.returncode != 0
    assert 'bbox_head.num_classes=7 but the train dataset has 5 classes' \
        in proc.stdout
    proc = run_tool([
        'tools/train.py', CONFIG, '--work-dir', work_dir, '--data-root',
        shapes_data['root'], '--cfg-options', 'model.backbone.type=RLAResnet'
    ], check=False)
    assert proc.returncode != 0
    assert "did you mean 'RLAResNet'" in proc.stdout


@pytest.mark.slow
def test_corrupt_checkpoint_in_test_tool(run_tool, shapes_data, tmp_path):
    bad = tmp_path / 'epoch_1.pth'
    bad.write_bytes(b'PK\x03\x04 not really a zip file')
    proc = run_tool([
        'tools/test.py', CONFIG, bad, '--work-dir', tmp_path / 'w',
        '--data-root', shapes_data['root']
    ], check=False)
    assert proc.returncode != 0
    assert 'is not a readable PyTorch checkpoint' in proc.stdout


@pytest.mark.slow
def test_tools_write_only_under_their_directories(run_tool, shapes_data,
                                                  tmp_path, repo_root):

    def files():
        # What git lists, tracked or not (git skips what .gitignore names:
        # environments, caches, data sets and earlier runs), and two levels
        # of the ignored folders a tool would write to by default.
        listed = subprocess.run(
            ['git', 'ls-files', '-z', '--cached', '--others',
             '--exclude-standard'], cwd=repo_root, stdout=subprocess.PIPE,
            check=True).stdout.decode().split('\0')
        out = {osp.join(repo_root, p) for p in listed if p}
        out = {p for p in out if osp.lexists(p)}
        assert osp.join(repo_root, 'tools', 'train.py') in out
        for folder in DEFAULT_OUTPUTS:
            for depth in ('*', osp.join('*', '*')):
                out.update(glob.glob(osp.join(repo_root, folder, depth)))
        return out

    before = files()
    work_dir = tmp_path / 'work'
    run_tool(train_args(shapes_data, str(work_dir), 1))
    run_tool([
        'tools/test.py', CONFIG, work_dir / 'epoch_1.pth', '--work-dir',
        tmp_path / 'test', '--data-root', shapes_data['root'], '--out',
        tmp_path / 'out.pkl', '--show-dir', 'shown', '--cfg-options', *TINY
    ])
    assert files() == before
    assert glob.glob(str(tmp_path / 'test' / '*' / 'shown' / '*.jpg'))
