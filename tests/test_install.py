"""``pip install .`` (not editable) works like a library, from elsewhere.

A fresh virtual environment gets the package from a regular (non-editable)
install of this clone. To stay fast and offline it sees the packages of the
test interpreter (torch, mmdet...) through a ``.pth`` file, which adds that
site-packages folder and runs its start-up hooks, except the editable
install of the clone, which stays invisible. Everything then runs from a
directory outside the clone.
"""
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import textwrap
import venv

import pytest

from helpers import ROOT, copy_tracked_files

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'mask-rcnn_rla-r18_fpn_shapes.py')
# Every test here uses the pip-installed venv of installed().
pytestmark = pytest.mark.slow


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'PIP_REQUIRE_VIRTUALENV')}
    env['PYTHONWARNINGS'] = 'ignore'
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``(python, site-packages, cwd)`` of a fresh venv with the package."""
    base = tmp_path_factory.mktemp('install')
    env_dir = base / 'venv'
    venv.EnvBuilder(with_pip=False).create(str(env_dir))
    python = str(env_dir / 'bin' / 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         "['purelib'])"], capture_output=True, text=True,
        check=True).stdout.strip()
    stack = sysconfig.get_paths()['purelib']
    with open(osp.join(site, 'test_stack.pth'), 'w') as f:
        f.write(stack + '\n')
        # The stack's own start-up hooks (setuptools' distutils shim, which
        # mmengine's Runner needs on Python >= 3.12), but not the editable
        # install of this clone.
        for name in sorted(os.listdir(stack)):
            if name.endswith('.pth') and not any(
                    part in name for part in ('editable', 'rla_mmdet')):
                with open(osp.join(stack, name)) as pth:
                    f.writelines(line for line in pth
                                 if line.startswith('import'))
    # A copy of the clone's tracked files, so the build writes nothing here.
    src = base / 'src'
    copy_tracked_files(src)
    out = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', python, 'install', '-q',
         '--disable-pip-version-check', '--no-deps', '--no-build-isolation',
         '--no-index', str(src)],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    cwd = base / 'elsewhere'
    cwd.mkdir()
    return python, site, str(cwd)


def run(installed, args, timeout=600):
    python, _, cwd = installed
    return subprocess.run([python] + args, cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_import_builds_every_backbone_and_loads_a_checkpoint(installed):
    _, site, cwd = installed
    out = run(installed, ['-c', textwrap.dedent(f"""
        import os, torch, rla_mmdet
        from mmdet.registry import MODELS
        print('file', rla_mmdet.__file__)
        names = []
        for kind in ('RLAResNet', 'RLAECANet'):
            for depth in (18, 34, 50, 101, 152):
                model = MODELS.build(dict(type=kind, depth=depth))
                names.append(f'{{kind}}-{{depth}}')
        legacy = MODELS.build(dict(type='RLA_ResNet', layers=[3, 4, 6, 3]))
        for attention in (None, 'eca'):
            MODELS.build(dict(type='RLAMobileNetV2', attention=attention))
            names.append(f'RLAMobileNetV2-{{attention}}')
        print('built', len(names) + 1)
        torch.manual_seed(1)
        src = rla_mmdet.RLAResNet(depth=18)
        torch.save({{'state_dict': src.state_dict()}}, 'r18.pth')
        dst = rla_mmdet.RLAResNet(depth=18, init_cfg=dict(
            type='Pretrained', checkpoint='r18.pth'))
        dst.init_weights()
        same = all(torch.equal(a, b) for a, b in zip(
            src.state_dict().values(), dst.state_dict().values()))
        print('loaded', same)
        print('configs', os.path.isdir(os.path.join(
            os.path.dirname(rla_mmdet.__file__), 'configs')))
    """)])
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in out.stdout.splitlines()
                 if ' ' in line)
    # the installed copy, not the clone
    assert lines['file'] == osp.join(site, 'rla_mmdet', '__init__.py')
    assert lines['built'] == '13'
    assert lines['loaded'] == 'True'
    assert lines['configs'] == 'False'


def test_tools_run_by_path_with_the_installed_package(installed, shapes_data,
                                                      tmp_path):
    # A detector checkpoint of the shapes config (untrained weights).
    make = run(installed, ['-c', textwrap.dedent(f"""
        import torch, rla_mmdet
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS
        cfg = Config.fromfile({CONFIG!r})
        init_default_scope('mmdet')
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        torch.save({{'state_dict': model.state_dict(), 'meta': {{}}}},
                   {str(tmp_path / 'det.pth')!r})
    """)])
    assert make.returncode == 0, make.stderr[-3000:]
    out = run(installed, [
        osp.join(ROOT, 'tools', 'test.py'), CONFIG,
        str(tmp_path / 'det.pth'), '--work-dir', str(tmp_path / 'work'),
        '--data-root', shapes_data['root'], '--cfg-options',
        'model.test_cfg.rcnn.score_thr=0.0'
    ])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert 'coco/bbox_mAP' in out.stdout + out.stderr
    # An ImageNet file in the authors' layout through the converter.
    make = run(installed, ['-c', textwrap.dedent(f"""
        import torch, rla_mmdet
        state = rla_mmdet.RLAResNet(depth=18).state_dict()
        torch.save(dict(state_dict={{'module.' + k: v
                                    for k, v in state.items()}},
                        arch='rla_resnet18', epoch=1, best_acc1=50.0),
                   {str(tmp_path / 'r18.pth.tar')!r})
    """)])
    assert make.returncode == 0, make.stderr[-3000:]
    out = run(installed, [
        osp.join(ROOT, 'tools', 'model_converters', 'rla_imagenet_to_mmdet.py'),
        str(tmp_path / 'r18.pth.tar'), str(tmp_path / 'r18.pth')])
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert 'RLAResNet(depth=18)' in out.stdout
