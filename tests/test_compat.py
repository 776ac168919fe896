"""Supported versions, and what ``import rla_mmdet`` does to a process."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from rla_mmdet import dependencies
from rla_mmdet.dependencies import (SUPPORTED, UnsupportedVersionError,
                                    check_installed, check_version)
from helpers import ROOT


def run_python(script, timeout=300):
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(script)],
                         capture_output=True, text=True, timeout=timeout)
    return out


# ----------------------------------------------------------------- versions
@pytest.mark.parametrize('name,version', [
    ('torch', '2.0.0'), ('torch', '2.1.2+cu121'), ('torch', '2.13.0+cpu'),
    ('torch', '2.13.1'), ('numpy', '1.26.4'), ('numpy', '2.3.1'),
    ('mmcv', '2.0.0rc4'), ('mmcv', '2.0.1'), ('mmcv', '2.1.0'),
    ('mmengine', '0.7.1'), ('mmengine', '0.10.7'), ('mmdet', '3.0.0'),
    ('mmdet', '3.3.0'),
])
def test_supported_versions_pass(name, version):
    check_version(name, version)


@pytest.mark.parametrize('name,version', [
    ('torch', '1.13.1'), ('torch', '2.14.0'), ('torch', '2.14.0.dev20261101'),
    ('torch', '3.0.0'), ('numpy', '1.21.6'), ('numpy', '3.0.0'),
    ('mmcv', '2.0.0rc3'), ('mmcv', '2.2.0'), ('mmcv', '1.7.2'),
    ('mmengine', '0.7.0'), ('mmengine', '1.0.0'), ('mmdet', '2.28.2'),
    ('mmdet', '3.4.0'),
])
def test_unsupported_version_is_one_sentence(name, version):
    low, high = SUPPORTED[name]
    with pytest.raises(UnsupportedVersionError) as info:
        check_version(name, version)
    msg = str(info.value)
    assert msg.startswith(f'{name} {version} is installed')
    assert f'>={low}, <{high}' in msg
    assert msg.count('. ') == 0 and msg.endswith('.')
    # the two kinds of error a caller may catch
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, ValueError)


def test_missing_package_says_what_to_install():
    with pytest.raises(UnsupportedVersionError,
                       match=r"needs mmcv, which is not installed; .*"
                       r"pip install 'mmcv>=2.0.0rc4,<2.2.0'"):
        check_version('mmcv', None)


def test_check_installed_reads_every_package():
    seen = []

    def fake(name):
        seen.append(name)
        return {'torch': '2.1.2', 'numpy': '1.26.4', 'mmengine': '0.10.4',
                'mmcv': '2.1.0', 'mmdet': '3.2.0'}[name]

    assert check_installed(fake)['mmdet'] == '3.2.0'
    assert seen == list(SUPPORTED)
    assert check_installed()['mmdet'].startswith('3.')  # this environment


def test_setup_py_declares_the_ranges():
    scope = {'__name__': 'x'}
    with open(osp.join(ROOT, 'rla_mmdet', 'dependencies.py')) as f:
        exec(f.read(), scope)  # what setup.py does
    requires = scope['install_requires']()
    assert 'torch>=2.0,<2.14' in requires
    assert 'mmcv>=2.0.0rc4,<2.2.0' in requires
    assert 'mmengine>=0.7.1,<1.0.0' in requires
    assert 'mmdet>=3.0.0,<3.4.0' in requires
    assert not any('==' in r for r in requires)
    with open(osp.join(ROOT, 'setup.py')) as f:
        assert "read_module('dependencies')['install_requires']()" in f.read()


def test_import_with_an_unsupported_torch_stops_with_the_sentence():
    out = run_python("""
        import importlib.metadata as metadata
        real = metadata.version
        metadata.version = lambda n: '1.13.1' if n == 'torch' else real(n)
        import rla_mmdet
    """)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        'rla_mmdet.dependencies.UnsupportedVersionError: torch 1.13.1 is '
        'installed, but rla_mmdet supports torch >=2.0, <2.14; install a '
        "version in that range (pip install 'torch>=2.0,<2.14').")


def test_dependencies_module_imports_only_the_standard_library():
    out = run_python("""
        import sys
        sys.path.insert(0, %r)
        before = set(sys.modules)
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            'deps', %r)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        heavy = {'torch', 'numpy', 'mmengine', 'mmcv', 'mmdet'}
        print(sorted(heavy & set(sys.modules)))
    """ % (ROOT, dependencies.__file__))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == '[]'


# ------------------------------------------------------ a guest in a process
def test_plain_import_leaves_mmengine_io_untouched():
    """``import rla_mmdet`` registers; it replaces no loader or backend."""
    out = run_python("""
        import torch
        from mmengine.fileio.backends import LocalBackend
        from mmengine.fileio.backends import registry_utils as reg
        from mmengine.runner.checkpoint import (CheckpointLoader,
                                                load_from_local)
        before = (reg.backends['local'], reg.prefix_to_backends[''],
                  CheckpointLoader._schemes[''], dict(reg.backends),
                  dict(reg.prefix_to_backends),
                  dict(CheckpointLoader._schemes))
        assert before[:3] == (LocalBackend, LocalBackend, load_from_local)
        import rla_mmdet
        from mmdet.registry import MODELS
        from mmengine.registry import HOOKS
        after = (reg.backends['local'], reg.prefix_to_backends[''],
                 CheckpointLoader._schemes[''], dict(reg.backends),
                 dict(reg.prefix_to_backends),
                 dict(CheckpointLoader._schemes))
        assert after == before, (before, after)
        assert MODELS.get('RLAResNet') is rla_mmdet.RLAResNet
        assert HOOKS.get('CheckpointIOHook') is not None
        print('untouched')
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == 'untouched'


def test_plain_import_leaves_out_the_tool_support():
    """What only ``tools/`` needs, the CPU DDP wrapper among it, is loaded
    by the tools, not by ``custom_imports=['rla_mmdet']``."""
    out = run_python("""
        import sys
        import rla_mmdet
        from mmengine.registry import MODEL_WRAPPERS
        name = 'AnyDeviceDistributedDataParallel'
        print(sorted(m for m in sys.modules if m.startswith((
            'rla_mmdet.tools_support', 'rla_mmdet.launch',
            'rla_mmdet.data_checks', 'rla_mmdet.datasets'))))
        print(name in MODEL_WRAPPERS.module_dict)
        import rla_mmdet.tools_support.distributed
        print(name in MODEL_WRAPPERS.module_dict)
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['[]', 'False', 'True']


def test_old_import_paths_of_the_tool_support_still_work():
    from rla_mmdet import data_checks, datasets, launch
    from rla_mmdet.tools_support import args, config, distributed, shapes
    from rla_mmdet.tools_support import data_checks as checks
    from rla_mmdet.tools_support import work_dir
    new = {**vars(args), **vars(config), **vars(distributed),
           **vars(work_dir)}
    # every public name the old modules had
    assert set(launch.__all__) == {
        'AnyDeviceDistributedDataParallel', 'apply_common_args',
        'auto_resume_fallback', 'check_model_config', 'check_pretrained',
        'checkpoints_in', 'load_config', 'missing_pretrained',
        'parse_tool_args', 'protect_work_dir', 'set_data_root',
        'setup_distributed', 'teardown_distributed'}
    assert set(data_checks.__all__) == {
        'DatasetWarning', 'check_coco_split', 'check_datasets',
        'dataset_classes', 'iter_datasets', 'load_coco_json'}
    assert set(datasets.__all__) == {'SHAPE_CLASSES', 'make_shapes_dataset'}
    for old, moved in ((launch, new), (data_checks, vars(checks)),
                       (datasets, vars(shapes))):
        for name in old.__all__:
            assert getattr(old, name) is moved[name], name
    assert datasets.make_shapes_dataset.__module__ == \
        'rla_mmdet.tools_support.shapes'


def test_the_hook_switches_checkpoint_io_for_the_run_only():
    from mmengine.fileio.backends import LocalBackend
    from mmengine.fileio.backends import registry_utils as reg
    from mmengine.registry import HOOKS
    from mmengine.runner.checkpoint import CheckpointLoader

    from rla_mmdet.engine import AtomicLocalBackend, checkpoint_io_enabled
    before = (reg.prefix_to_backends[''], CheckpointLoader._schemes[''])
    assert before[0] is LocalBackend
    hook = HOOKS.build(dict(type='CheckpointIOHook'))
    hook.before_run(None)
    try:
        assert checkpoint_io_enabled()
        assert reg.prefix_to_backends[''] is AtomicLocalBackend
        assert reg.backends['local'] is AtomicLocalBackend
    finally:
        hook.after_run(None)
    assert not checkpoint_io_enabled()
    assert (reg.prefix_to_backends[''],
            CheckpointLoader._schemes['']) == before
    assert reg.backends['local'] is LocalBackend


# ------------------------------------------------------------ Python 3.8
_BUILTIN_GENERICS = ('list', 'dict', 'tuple', 'set', 'frozenset', 'type')
_NEW_METHODS = ('removeprefix', 'removesuffix', 'is_relative_to')


def _newer_than_python_38(source, filename='<source>'):
    """What in ``source`` needs Python > 3.8: syntax (the parser's 3.8
    grammar), ``list[int]``-style generics, ``X | None`` and 3.9 methods."""
    import ast
    try:
        ast.parse(source, filename=filename, feature_version=(3, 8))
    except SyntaxError as e:
        return [f'{filename}:{e.lineno}: {e.msg}']
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f'{filename}:{getattr(node, "lineno", "?")}'
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id in _BUILTIN_GENERICS):
            found.append(f'{line}: {node.value.id}[...]')
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) \
                and any(isinstance(side, ast.Constant) and side.value is None
                        for side in (node.left, node.right)):
            found.append(f'{line}: X | None')
        elif isinstance(node, ast.Attribute) and node.attr in _NEW_METHODS:
            found.append(f'{line}: .{node.attr}')
    return found


def test_the_python_38_check_finds_newer_code():
    assert _newer_than_python_38('match x:\n    case 1:\n        pass\n')
    assert _newer_than_python_38('def f(a: list[int]) -> None: ...\n')
    assert _newer_than_python_38('def f(a: int | None): ...\n')
    assert _newer_than_python_38('"ab".removeprefix("a")\n')
    assert not _newer_than_python_38(
        'from typing import List, Optional\n'
        'def f(a: List[int], b: Optional[int]) -> int:\n'
        '    return (n := len(a))\n')


def test_package_and_tools_read_as_python_38():
    """setup.py declares Python >= 3.8: the package, setup.py and the tools
    use nothing newer (tested on 3.11 only; this reads the sources)."""
    import glob
    files = (glob.glob(osp.join(ROOT, 'rla_mmdet', '**', '*.py'),
                       recursive=True) +
             glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
             + [osp.join(ROOT, 'setup.py')])
    assert len(files) > 30
    found = []
    for path in files:
        with open(path) as f:
            found += _newer_than_python_38(f.read(), osp.relpath(path, ROOT))
    assert not found, found
