"""tools/dist_*.sh with two CPU processes, and tools/slurm_*.sh with a stub.

The distributed scripts run torchrun with the gloo backend when there is no
GPU (set up by rla_mmdet.tools_support.distributed). The Slurm scripts are
checked for what they hand to ``srun``: a stub ``srun`` first on PATH
records its arguments and environment instead of starting a job.
"""
import glob
import json
import os
import os.path as osp
import stat

import pytest
import torch

pytestmark = pytest.mark.core

CONFIG = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
TINY = ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
        'train_cfg.max_epochs=1']


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory, run_tool, shapes_data, free_port):
    """Two processes train one epoch: 8 images, 2 per process and batch."""
    port = free_port()
    work_dir = str(tmp_path_factory.mktemp('dist'))
    proc = run_tool([
        'tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir,
        '--data-root', shapes_data['root'], '--cfg-options', *TINY
    ], env=dict(PORT=str(port), OMP_NUM_THREADS='1'))
    return work_dir, proc.stdout


@pytest.mark.slow
def test_dist_train_two_cpu_processes(dist_run):
    work_dir, output = dist_run
    assert 'Distributed launcher: pytorch' in output
    assert 'Distributed training: True' in output
    assert 'GPU number: 2' in output  # MMEngine's name for the world size
    # 8 images over 2 processes with 2 images each: 2 iterations.
    assert 'Epoch(train) [1][2/2]' in output
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu',
                      weights_only=False)
    assert ckpt['meta']['iter'] == 2
    # The saved weights are the module's, not the DDP wrapper's.
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])


@pytest.mark.slow
def test_dist_test_two_cpu_processes(dist_run, run_tool, shapes_data,
                                     free_port, tmp_path):
    checkpoint = osp.join(dist_run[0], 'epoch_1.pth')
    run_tool([
        'tools/dist_test.sh', CONFIG, checkpoint, '2', '--work-dir', tmp_path,
        '--data-root', shapes_data['root'], '--cfg-options',
        'model.test_cfg.rcnn.score_thr=0.0'
    ], env=dict(PORT=str(free_port()), OMP_NUM_THREADS='1'))
    (log, ) = glob.glob(str(tmp_path / '*' / '*.json'))
    metrics = json.load(open(log))
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    assert 0 <= metrics['coco/segm_mAP'] <= 1


def test_dist_train_usage(run_tool):
    proc = run_tool(['tools/dist_train.sh', CONFIG], check=False)
    assert proc.returncode == 2 and 'usage:' in proc.stdout


# ---------------------------------------------------------------- Slurm
STUB = """#!/usr/bin/env bash
# Stand-in for Slurm's srun: record the arguments, one a line.
printf '%s\\n' "$@" > "$RECORD/argv"
"""
SLURM_VARS = ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS')


@pytest.fixture
def srun(tmp_path, run_tool):
    """Run a Slurm script with a stub srun first on PATH.

    ``srun(args, python='py', **env)`` returns ``(process, srun_options,
    command)``: the options given to srun and the command it would start
    (``None`` when srun never ran). The Slurm variables of the caller's
    environment are removed first; ``python=None`` leaves PYTHON unset.
    """
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    stub = bin_dir / 'srun'
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / 'record'
    record.mkdir()

    def call(args, python='py', **env):
        env = dict({k: None for k in SLURM_VARS}, **env)
        env.update(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                   RECORD=str(record), PYTHON=python)
        proc = run_tool(args, env=env, check=False)
        if not (record / 'argv').exists():
            return proc, None, None
        argv = (record / 'argv').read_text().splitlines()
        start = argv.index(python or 'python')
        return proc, argv[:start], argv[start:]

    return call


def test_slurm_train_defaults(srun, repo_root):
    proc, options, command = srun([
        'tools/slurm_train.sh', 'gpu-part', 'rla_job', CONFIG, 'work/x',
        '--resume', '--cfg-options', 'a=1'
    ], python=None)
    assert proc.returncode == 0, proc.stdout
    assert options == [
        '-p', 'gpu-part', '--job-name=rla_job', '--gres=gpu:8', '--ntasks=8',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1'
    ]
    assert command == [
        'python', '-u',
        osp.join(repo_root, 'tools', 'train.py'), CONFIG,
        '--work-dir=work/x', '--launcher=slurm', '--resume', '--cfg-options',
        'a=1'
    ]


def test_slurm_train_environment(srun, repo_root):
    proc, options, command = srun(
        ['tools/slurm_train.sh', 'p1', 'j1', CONFIG, 'wd'],
        GPUS='16', GPUS_PER_NODE='4', CPUS_PER_TASK='2',
        SRUN_ARGS='--quotatype=auto --time=1:00:00')
    assert proc.returncode == 0, proc.stdout
    assert options == [
        '-p', 'p1', '--job-name=j1', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=2', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=1:00:00'
    ]
    assert command == [
        'py', '-u', osp.join(repo_root, 'tools', 'train.py'), CONFIG,
        '--work-dir=wd', '--launcher=slurm'
    ]


def test_slurm_test_environment(srun, repo_root):
    proc, options, command = srun([
        'tools/slurm_test.sh', 'p2', 'eval', CONFIG, 'ckpt.pth', '--out',
        'r.pkl'
    ], GPUS='2', GPUS_PER_NODE='2', SRUN_ARGS='--exclusive')
    assert proc.returncode == 0, proc.stdout
    assert options == [
        '-p', 'p2', '--job-name=eval', '--gres=gpu:2', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--exclusive'
    ]
    assert command == [
        'py', '-u', osp.join(repo_root, 'tools', 'test.py'), CONFIG,
        'ckpt.pth', '--launcher=slurm', '--out', 'r.pkl'
    ]


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_usage(srun, script):
    proc, options, _ = srun([f'tools/{script}', 'p', 'j', CONFIG])
    assert proc.returncode == 2 and 'usage:' in proc.stdout
    assert options is None
