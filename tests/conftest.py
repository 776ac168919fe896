"""Fixtures shared by the tests: a tiny shapes dataset and tool runners."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from helpers import ROOT

#: The core tests (``pytest -m core``), which the second stack (torch 2.1,
#: .venv-torch21) runs too: the backbones, checkpoint safety and resume,
#: every config builds and runs, train / resume / test end to end, the
#: distributed scripts with 2 CPU processes, and the layout of the code.
CORE_MODULES = {
    'test_backbone.py', 'test_dispatch.py', 'test_checkpoint.py',
    'test_checkpoint_attacks.py', 'test_checkpoint_io.py',
    'test_checkpoint_urls.py', 'test_compat.py', 'test_configs.py',
    'test_train_e2e.py', 'test_dist.py', 'test_layout.py',
    'test_safetensors.py'
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if osp.basename(str(item.fspath)) in CORE_MODULES:
            item.add_marker(pytest.mark.core)


@pytest.fixture(scope='session')
def repo_root() -> str:
    """Absolute path of the repository (the tools run from there)."""
    return ROOT


@pytest.fixture(scope='session')
def shapes_data(tmp_path_factory) -> dict:
    """A tiny shapes dataset (8 train, 4 val images of 64 px), built once.

    Returns the paths of
    :func:`rla_mmdet.tools_support.shapes.make_shapes_dataset` plus ``root``,
    the directory to pass as ``--data-root``.
    """
    from rla_mmdet.tools_support.shapes import make_shapes_dataset
    root = str(tmp_path_factory.mktemp('shapes'))
    paths = make_shapes_dataset(
        root, num_train=8, num_val=4, image_size=64, seed=0)
    return dict(paths, root=root)


@pytest.fixture(scope='session')
def free_port():
    """``free_port()`` returns a TCP port that was free a moment ago."""

    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(('127.0.0.1', 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope='session')
def run_tool():
    """Run a script of the repository in a subprocess, from the repo root.

    ``run_tool(['tools/train.py', ...], env={...}, timeout=...)`` returns the
    ``CompletedProcess`` (stdout and stderr together in ``.stdout``). Python
    scripts run with the interpreter of the tests; shell scripts get it as
    ``PYTHON``; an ``env`` value of None removes that variable. A non-zero
    exit fails the test with the output's tail unless ``check=False``.
    """

    def run(args, env=None, timeout=300, check=True):
        args = [str(a) for a in args]
        full_env = dict(os.environ, PYTHON=sys.executable,
                        PYTHONWARNINGS='ignore')
        full_env.update(env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        cmd = [sys.executable] + args if args[0].endswith('.py') else args
        proc = subprocess.run(
            cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f'{" ".join(args)} exited with {proc.returncode}:\n'
                        f'{proc.stdout[-4000:]}')
        return proc

    return run
