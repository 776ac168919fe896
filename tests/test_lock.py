"""The main stack's lock file holds for every Python the stack accepts.

``scripts/bootstrap.sh main`` takes the newest of its Pythons (3.13, 3.12,
3.11) that the machine has and installs under ``requirements/lock.txt``
alone. For each of those Pythons found here, pip resolves what the
bootstrap installs (``requirements/build.txt``, ``runtime.txt`` and
``tests.txt``, with mmcv's and this package's own requirements) with the
lock as constraint, from wheels only and as that interpreter: nothing may
need building, every package resolved must be pinned, and every pin must
be used (a pin with a ``python_version`` marker only where it applies).
mmcv itself is left out: ``scripts/build_mmcv.py`` compiles it from source.

These tests ask the package index (the bootstrap's own source), so they
need it reachable; pip downloads the wheels it reads, torch's among them
(about 1 GB per Python, 20-30 s each here), and keeps nothing.
"""
import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import ROOT
from rla_mmdet import dependencies

pytestmark = pytest.mark.slow

REQ = osp.join(ROOT, 'requirements')
LOCK = osp.join(REQ, 'lock.txt')

#: mmcv 2.1.0's own requirements (its requirements/runtime.txt, and
#: opencv-python, which its setup.py adds): installed with the stack, since
#: the bootstrap installs the compiled mmcv wheel without its dependencies.
MMCV_REQUIRES = ('addict', 'mmengine>=0.3.0', 'numpy', 'packaging', 'Pillow',
                 'pyyaml', 'yapf', 'opencv-python>=3')


def _main_pythons():
    """The main stack's Python versions, as scripts/bootstrap.sh lists them."""
    with open(osp.join(ROOT, 'scripts', 'bootstrap.sh')) as f:
        match = re.search(r'^\s*main\).*\bpythons="([\d. ]+)"', f.read(),
                          re.M)
    assert match, 'scripts/bootstrap.sh names no Pythons for the main stack'
    return match.group(1).split()


def _version_of(python):
    try:
        out = subprocess.run([python, '-V'], capture_output=True, text=True,
                             timeout=60)
    except OSError:
        return None
    match = re.match(r'Python (\d+\.\d+)', out.stdout + out.stderr)
    return match.group(1) if match else None


def find_python(version):
    """``pythonX.Y`` on PATH or pyenv's newest X.Y, as the bootstrap finds
    it; None when the machine has neither."""
    found = shutil.which(f'python{version}')
    if found and _version_of(found) == version:
        return found
    root = os.environ.get('PYENV_ROOT')
    if not root and shutil.which('pyenv'):
        root = subprocess.run(['pyenv', 'root'], capture_output=True,
                              text=True).stdout.strip()
    if root:
        key = lambda p: [int(n) for n in re.findall(r'\d+', p)]  # noqa: E731
        for path in sorted(glob.glob(osp.join(
                root, 'versions', f'{version}.*', 'bin',
                f'python{version}')), key=key, reverse=True):
            if _version_of(path) == version:
                return path
    return None


def _requirements(path):
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def _lock_pins():
    """``[(Requirement, name)]`` of every line of the lock file."""
    pins = []
    for line in _requirements(LOCK):
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == '==', line
        pins.append(req)
    return pins


@pytest.mark.parametrize('version', _main_pythons())
def test_the_main_lock_resolves_from_wheels_for_each_python(version,
                                                            tmp_path):
    python = find_python(version)
    if python is None:
        pytest.skip(f'this machine has no Python {version} (python{version} '
                    'on PATH or in pyenv) to resolve the lock with')
    # What the bootstrap installs, but mmcv (built from source).
    wanted = [r for r in (_requirements(osp.join(REQ, 'build.txt')) +
                          _requirements(osp.join(REQ, 'runtime.txt')) +
                          _requirements(osp.join(REQ, 'tests.txt')) +
                          list(MMCV_REQUIRES) +
                          dependencies.install_requires())
              if canonicalize_name(Requirement(r).name) != 'mmcv']
    assert {'torch', 'mmdet', 'pytest'} <= {
        Requirement(r).name for r in wanted}, wanted
    (tmp_path / 'wanted.txt').write_text('\n'.join(wanted) + '\n')
    report = tmp_path / 'report.json'
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PIP_REQUIRE_VIRTUALENV')}
    # As the bootstrap does: the lock alone constrains what pip picks.
    env.update(PIP_CONSTRAINT=LOCK, PIP_DISABLE_PIP_VERSION_CHECK='1')
    out = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', python, 'install',
         '--dry-run', '--ignore-installed', '--only-binary=:all:',
         '--quiet', '--report', str(report), '-r',
         str(tmp_path / 'wanted.txt')],
        capture_output=True, text=True, env=env, timeout=1200)
    assert out.returncode == 0, (
        f'the lock does not resolve from wheels with Python {version} '
        f'({python}):\n' + '\n'.join(
            line for line in (out.stdout + out.stderr).splitlines()
            if 'is ignored' not in line)[-3000:])
    with open(report) as f:
        report = json.load(f)
    # The resolution ran as that interpreter, markers included.
    marker_env = report['environment']
    assert marker_env['python_version'] == version, marker_env
    resolved = {canonicalize_name(item['metadata']['name']):
                item['metadata']['version'] for item in report['install']}
    pinned = {canonicalize_name(r.name): str(next(iter(r.specifier)).version)
              for r in _lock_pins()
              if r.marker is None or r.marker.evaluate(marker_env)}
    pinned.pop('mmcv')
    unpinned = sorted(set(resolved) - set(pinned))
    unused = sorted(set(pinned) - set(resolved))
    assert not unpinned, f'Python {version} resolves packages the lock ' \
        f'does not pin: {unpinned}'
    assert not unused, f'the lock pins packages that Python {version} ' \
        f'does not install: {unused}'
    assert resolved == pinned
