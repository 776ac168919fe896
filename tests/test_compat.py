"""Supported versions, and what ``import rla_mmdet`` does to a process."""
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap
import warnings

import pytest

from rla_mmdet import dependencies
from rla_mmdet.dependencies import (NEWEST_TESTED_TORCH, SUPPORTED,
                                    UPPER_REASONS, UnsupportedVersionError,
                                    UntestedVersionWarning, check_installed,
                                    check_version, check_yapf)
from helpers import ROOT, LocalServer, copy_tracked_files

pytestmark = pytest.mark.core


def run_python(script, timeout=300):
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(script)],
                         capture_output=True, text=True, timeout=timeout)
    return out


# ----------------------------------------------------------------- versions
@pytest.mark.parametrize('name,version', [
    ('torch', '2.0.1'), ('torch', '2.1.2+cu121'), ('torch', '2.13.0+cpu'),
    ('torch', '2.14.1'), ('torch', '2.15.0'), ('numpy', '1.22.4'),
    ('numpy', '1.26.4'), ('numpy', '2.4.6'), ('numpy', '3.0.0'),
    ('mmcv', '2.0.1'), ('mmcv', '2.1.0'), ('mmengine', '0.7.1'),
    ('mmengine', '0.10.7'), ('mmdet', '3.0.0'), ('mmdet', '3.3.0'),
])
def test_supported_versions_pass_without_a_warning(name, version):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        check_version(name, version)


@pytest.mark.parametrize('name,version', [
    ('torch', '1.13.1'), ('torch', '2.0.0'), ('torch', '2.0.1rc1'),
    ('numpy', '1.21.6'), ('mmcv', '2.0.0'), ('mmcv', '2.0.0rc4'),
    ('mmcv', '1.7.2'), ('mmengine', '0.7.0'), ('mmdet', '2.28.2'),
])
def test_a_version_below_the_floor_is_one_sentence(name, version):
    low, _ = SUPPORTED[name]
    with pytest.raises(UnsupportedVersionError) as info:
        check_version(name, version)
    msg = str(info.value)
    assert msg == (f'{name} {version} is installed, but rla_mmdet needs '
                   f'{name} >={low}; install a newer one (pip install '
                   f"'{name}>={low}" + ('' if SUPPORTED[name][1] is None
                                        else f',<{SUPPORTED[name][1]}')
                   + "').")
    # the two kinds of error a caller may catch
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize('name,version', [
    ('mmcv', '2.2.0'), ('mmcv', '2.2.0rc1'), ('mmengine', '1.0.0'),
    ('mmdet', '4.0.0'),
])
def test_a_known_incompatible_version_says_why(name, version):
    _, high = SUPPORTED[name]
    with pytest.raises(UnsupportedVersionError) as info:
        check_version(name, version)
    msg = str(info.value)
    assert msg.startswith(f'{name} {version} is installed, but rla_mmdet '
                          f'supports {name} <{high} because '
                          f'{UPPER_REASONS[name]}; ')
    assert msg.count('. ') == 0 and msg.endswith('.')


@pytest.mark.parametrize('version', ['2.16.0', '2.16.0.dev20270101+cpu',
                                     '3.0.0'])
def test_a_torch_newer_than_the_tested_ones_warns_once(version):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        check_version('torch', version)
    assert [type(w.message) for w in caught] == [UntestedVersionWarning]
    assert str(caught[0].message) == (
        f'torch {version} is newer than the torch versions rla_mmdet is '
        f'tested with ({SUPPORTED["torch"][0]} to {NEWEST_TESTED_TORCH}); '
        'please report what breaks.')


def test_newest_tested_torch_is_the_main_lock_files_torch():
    with open(osp.join(ROOT, 'requirements', 'lock.txt')) as f:
        torch_pin = [line.split('==')[1].strip() for line in f
                     if line.startswith('torch==')]
    assert torch_pin and torch_pin[0].startswith(NEWEST_TESTED_TORCH + '.')


def test_floors_are_the_oldest_stacks_versions():
    with open(osp.join(ROOT, 'requirements', 'lock-oldest.txt')) as f:
        pins = dict(line.strip().split('==') for line in f
                    if '==' in line and not line.startswith('#'))
    for name, (low, _) in SUPPORTED.items():
        assert pins[name] == low, (name, pins[name], low)


@pytest.mark.parametrize('mmengine,yapf,refused', [
    ('0.7.1', '0.40.1', False), ('0.7.1', '0.40.2', True),
    ('0.8.4', '0.43.0', True), ('0.8.5', '0.43.0', False),
    ('0.10.7', '0.43.0', False),
])
def test_old_mmengine_with_a_new_yapf_is_refused(mmengine, yapf, refused):
    if not refused:
        check_yapf(mmengine, yapf)
        return
    with pytest.raises(UnsupportedVersionError,
                       match=r"yapf's verify= argument, which yapf "
                       + re.escape(yapf) + r" no longer has.*"
                       r"pip install 'yapf<0\.40\.2'"):
        check_yapf(mmengine, yapf)


def test_missing_package_says_what_to_install():
    with pytest.raises(UnsupportedVersionError,
                       match=r"needs mmcv, which is not installed; .*"
                       r"pip install 'mmcv>=2\.0\.1,<2\.2\.0'"):
        check_version('mmcv', None)


def test_check_installed_reads_every_package():
    seen = []

    def fake(name):
        seen.append(name)
        return {'torch': '2.1.2', 'numpy': '1.26.4', 'mmengine': '0.10.4',
                'mmcv': '2.1.0', 'mmdet': '3.2.0', 'yapf': '0.43.0'}[name]

    assert check_installed(fake)['mmdet'] == '3.2.0'
    assert seen == list(SUPPORTED) + ['yapf']
    assert check_installed()['mmdet'].startswith('3.')  # this environment


def test_install_metadata_has_no_upper_bound_on_torch_or_numpy():
    scope = {'__name__': 'x'}
    with open(osp.join(ROOT, 'rla_mmdet', 'dependencies.py')) as f:
        exec(f.read(), scope)  # what setup.py does
    requires = scope['install_requires']()
    assert 'torch>=2.0.1' in requires
    assert 'numpy>=1.22.4' in requires
    assert 'mmcv>=2.0.1,<2.2.0' in requires
    assert 'mmengine>=0.7.1,<1.0.0' in requires
    assert 'mmdet>=3.0.0,<4.0.0' in requires
    assert not any('==' in r for r in requires)
    # mmengine's Runner imports distutils, gone from Python 3.12's stdlib.
    assert 'setuptools; python_version >= "3.12"' in requires
    assert not any(r.startswith(('torch', 'numpy')) and '<' in r
                   for r in requires)
    with open(osp.join(ROOT, 'setup.py')) as f:
        assert "read_module('dependencies')['install_requires']()" in f.read()


def test_pip_install_keeps_the_torch_and_mmcv_already_installed(tmp_path):
    """``pip install .`` into this environment (on the main stack: torch
    2.15 with an mmcv built for it) would install this package and nothing
    else. ``--no-index`` makes any wish to replace a package a failure, and
    the machine's pip configuration is left out, as on a user's machine."""
    src = tmp_path / 'src'
    copy_tracked_files(src)
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    report = tmp_path / 'report.json'
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
         '--no-build-isolation', '--disable-pip-version-check', '--report',
         str(report), str(src)],
        capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    with open(report) as f:
        would_install = [item['metadata']['name']
                         for item in json.load(f)['install']]
    assert would_install == ['rla_mmdet'], would_install


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
        'installed, but rla_mmdet needs torch >=2.0.1; install a newer one '
        "(pip install 'torch>=2.0.1').")


def test_import_with_an_untested_newer_torch_warns_and_works():
    out = run_python("""
        import warnings
        import importlib.metadata as metadata
        real = metadata.version
        metadata.version = lambda n: '2.16.0' if n == 'torch' else real(n)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import rla_mmdet
        from mmdet.registry import MODELS
        assert MODELS.get('RLAResNet') is rla_mmdet.RLAResNet
        print([str(w.message) for w in caught
               if w.category.__name__ == 'UntestedVersionWarning'])
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'torch 2.16.0 is newer than the torch versions' in out.stdout
    assert out.stdout.count('is newer than') == 1


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
        print(sorted(m for m in sys.modules
                     if m.startswith('rla_mmdet.tools_support')))
        print(name in MODEL_WRAPPERS.module_dict)
        import rla_mmdet.tools_support.distributed
        print(name in MODEL_WRAPPERS.module_dict)
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['[]', 'False', 'True']


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


# ------------------------------------------------- mmcv's C++ ops per torch
def _build_mmcv():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'build_mmcv', osp.join(ROOT, 'scripts', 'build_mmcv.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('torch_version,std', [
    ('2.0.1', 'c++17'), ('2.1.2+cu121', 'c++17'), ('2.13.0+cpu', 'c++17'),
    ('2.13.1', 'c++17'), ('2.14.0', 'c++20'), ('2.14.0.dev20260101', 'c++20'),
    ('2.14.1', 'c++20'), ('2.15.0', 'c++20'), ('3.0.0', 'c++20'),
])
def test_mmcv_is_compiled_with_the_cxx_standard_torch_needs(torch_version,
                                                            std):
    assert _build_mmcv().cxx_standard(torch_version) == std


def test_mmcv_setup_flags_are_replaced_everywhere():
    build = _build_mmcv()
    # the two layouts of mmcv's setup.py: 2.0.x (c++14) and 2.1.x (c++17)
    text = ("    extra_compile_args['cxx'] = ['-std=c++14']\n"
            "            extra_compile_args['cxx'] = ['-std=c++17']\n"
            "        extra_compile_args['nvcc'] += ['-std=c++17']\n"
            "        extra_compile_args['cxx'] = ['/std:c++17']\n")
    patched = build.patch_cxx_standard(text, 'c++20')
    assert patched.count("'-std=c++20'") == 3
    assert "'/std:c++17'" in patched  # MSVC's flag is left alone
    with pytest.raises(ValueError, match="has no '-std=c\\+\\+14' or"):
        build.patch_cxx_standard("extra_compile_args = {'cxx': []}\n",
                                 'c++20')


def test_pip_names_the_indexes_it_searched():
    build = _build_mmcv()
    assert build.index_urls('Collecting mmcv==2.1.0\n') == [
        'https://pypi.org/simple']
    out = ('Looking in indexes: https://mirror.example/simple, '
           'file:///opt/pypi/simple\nCollecting mmcv==2.1.0\n')
    assert build.index_urls(out) == [
        'https://mirror.example/simple', 'file:///opt/pypi/simple']


def _fake_mmcv_sdist(build, monkeypatch, folder, pip_output):
    """A made-up mmcv 9.9.9 archive in ``folder``, pinned in ``build``, and
    a ``pip download`` that fails the way Python 3.13's does, printing
    ``pip_output``."""
    data = b'not really mmcv, but pinned: ' + os.urandom(16)
    name = 'mmcv-9.9.9.tar.gz'
    with open(osp.join(folder, name), 'wb') as f:
        f.write(data)
    monkeypatch.setattr(build, 'SDIST_SHA256', {
        '9.9.9': hashlib.sha256(data).hexdigest()})
    calls = []

    def pip(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, stdout=pip_output + "KeyError: '__version__'\n")

    monkeypatch.setattr(build.subprocess, 'run', pip)
    return name, data, calls


def test_mmcv_source_comes_from_the_index_when_pip_download_fails(
        tmp_path, monkeypatch, capsys):
    build = _build_mmcv()
    root, cache = tmp_path / 'served', tmp_path / 'cache'
    (root / 'simple' / 'mmcv').mkdir(parents=True)
    cache.mkdir()
    server = LocalServer(str(root))
    try:
        index = server.url('simple')
        name, data, calls = _fake_mmcv_sdist(
            build, monkeypatch, str(root),
            f'Looking in indexes: http://127.0.0.1:1/simple, {index}\n')
        # a PEP 503 page: another release first, links relative to it
        (root / 'simple' / 'mmcv' / 'index.html').write_text(
            '<a href="../../mmcv-9.9.90.tar.gz">mmcv-9.9.90.tar.gz</a>\n'
            f'<a href="../../{name}#sha256=00">{name}</a>\n')
        path = build.fetch_sdist('9.9.9', str(cache))
    finally:
        server.close()
    assert len(calls) == 1 and calls[0][3] == 'download'
    assert path == str(cache / name) and open(path, 'rb').read() == data
    assert server.gets[f'/files/{name}'] == 1
    assert f'took it from {server.url(name)}' in capsys.readouterr().err
    assert sorted(os.listdir(cache)) == [name]
    # the next build reads the cached copy, without pip
    assert build.fetch_sdist('9.9.9', str(cache)) == path
    assert len(calls) == 1


def test_mmcv_source_from_a_file_index(tmp_path, monkeypatch):
    build = _build_mmcv()
    index, cache = tmp_path / 'simple', tmp_path / 'cache'
    (index / 'mmcv').mkdir(parents=True)
    cache.mkdir()
    name, data, _ = _fake_mmcv_sdist(
        build, monkeypatch, str(index / 'mmcv'),
        f'Looking in indexes: {index.as_uri()}\n')
    path = build.fetch_sdist('9.9.9', str(cache))
    assert open(path, 'rb').read() == data


def test_mmcv_source_nowhere_is_one_sentence(tmp_path, monkeypatch):
    build = _build_mmcv()
    index, cache = tmp_path / 'simple', tmp_path / 'cache'
    (index / 'mmcv').mkdir(parents=True)
    cache.mkdir()
    _fake_mmcv_sdist(build, monkeypatch, str(tmp_path),
                     f'Looking in indexes: {index.as_uri()}\n')
    with pytest.raises(SystemExit) as exc:
        build.fetch_sdist('9.9.9', str(cache))
    msg = str(exc.value)
    assert msg.startswith('build_mmcv: could not download mmcv-9.9.9.tar.gz')
    assert str(cache / 'mmcv-9.9.9.tar.gz') in msg
    assert build.SDIST_SHA256['9.9.9'] in msg
    assert os.listdir(cache) == []


def _mmcv_setup_excerpt(version):
    """The lines of mmcv ``version``'s own ``setup.py`` that the build
    patches (a verbatim excerpt kept under ``tests/fixtures/``)."""
    path = osp.join(ROOT, 'tests', 'fixtures', f'mmcv-{version}-setup.py.txt')
    with open(path) as f:
        return f.read()


def _get_version(text, folder):
    """Call the ``get_version()`` of a ``setup.py`` text in ``folder``."""
    source = re.search(r'^def get_version\(\):\n(?:    .*\n)+', text,
                       re.M).group(0)
    namespace = {}
    exec(source, namespace)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return namespace['get_version']()
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize('version', ['2.0.1', '2.1.0'])
def test_mmcv_setup_reads_its_version_and_takes_the_standard(version,
                                                             tmp_path):
    build = _build_mmcv()
    text = _mmcv_setup_excerpt(version)
    # the excerpt is of the archive whose hash the build pins
    assert f'sha256 {build.SDIST_SHA256[version]}' in text
    flags = re.findall(r"'-std=c\+\+1[47]'", text)
    assert len(flags) >= 3, flags
    patched = build.patch_setup(text, 'c++20')
    assert patched.count("'-std=c++20'") == len(flags)
    assert not re.search(r'-std=c\+\+1[47]', patched)
    # the version read: the whole of get_version() and nothing else changed
    assert "locals()['__version__']" in text
    assert 'locals()' not in patched
    rest = re.compile(r'^def get_version\(\):\n(?:    .*\n)+', re.M)
    assert rest.sub('', patched) == rest.sub(
        '', build.patch_cxx_standard(text, 'c++20'))
    (tmp_path / 'mmcv').mkdir()
    (tmp_path / 'mmcv' / 'version.py').write_text(
        f"__version__ = '{version}'\n"
        "version_info = tuple(__version__.split('.'))\n")
    assert _get_version(patched, tmp_path) == version
    # What the patch is for: on Python 3.13 (PEP 667), exec() in a
    # function no longer adds to what locals() returns.
    if sys.version_info >= (3, 13):
        with pytest.raises(KeyError, match='__version__'):
            _get_version(text, tmp_path)
    else:
        assert _get_version(text, tmp_path) == version


def test_an_unknown_mmcv_version_read_is_refused():
    build = _build_mmcv()
    text = _mmcv_setup_excerpt('2.1.0')
    unknown = text.replace("    return locals()['__version__']\n",
                           "    return locals().get('__version__')\n")
    for setup in (unknown, "extra_compile_args = {'cxx': ['-std=c++17']}\n"):
        with pytest.raises(ValueError) as info:
            build.patch_setup(setup, 'c++20')
        assert str(info.value) == (
            "mmcv's setup.py does not read its version with exec(...) and "
            "locals()['__version__'] in get_version(); this script knows "
            'the layouts of mmcv 2.0.1, 2.1.0.')


def test_a_compiler_without_cxx20_gets_one_sentence(tmp_path):
    build = _build_mmcv()
    fake = tmp_path / 'old-g++'
    fake.write_text('#!/bin/sh\necho "unrecognized -std=c++20" >&2\nexit 1\n')
    fake.chmod(0o755)
    with pytest.raises(SystemExit) as info:
        build.check_compiler('c++20', str(fake))
    msg = str(info.value)
    assert msg.startswith(f"build_mmcv: the C++ compiler '{fake}' cannot "
                          'compile C++20')
    assert 'GCC >= 10' in msg
    with pytest.raises(SystemExit):
        build.check_compiler('c++20', str(tmp_path / 'missing-compiler'))


def test_the_source_archives_hashes_are_pinned():
    build = _build_mmcv()
    for name in ('lock.txt', 'lock-torch21.txt', 'lock-oldest.txt'):
        with open(osp.join(ROOT, 'requirements', name)) as f:
            mmcv = [line.strip().split('==')[1] for line in f
                    if line.startswith('mmcv==')]
        assert len(mmcv) == 1, name
        assert re.fullmatch(r'[0-9a-f]{64}', build.SDIST_SHA256[mmcv[0]])


# ------------------------------------------------- scripts/bootstrap.sh disk
@pytest.mark.parametrize('venv_free,tmp_free,refused', [
    (100, 100000, 'venv'),      # the environment's disk is too small
    (100000, 100, 'tmp'),       # TMPDIR, on another disk, is too small
    (100000, 100000, None),     # room enough: it goes on to create the venv
])
def test_bootstrap_refuses_a_disk_without_room_first(tmp_path, venv_free,
                                                     tmp_free, refused):
    env_dir, tmp_dir, fake = (tmp_path / 'envs', tmp_path / 'tmp',
                              tmp_path / 'bin')
    for d in (env_dir, tmp_dir, fake):
        d.mkdir()
    venv = env_dir / 'venv'
    marker = tmp_path / 'python-ran'
    # df and stat answer for two disks: TMPDIR's, and the rest.
    (fake / 'df').write_text(textwrap.dedent(f'''\
        #!/bin/sh
        for last; do :; done
        free={venv_free}
        case "$last" in "{tmp_dir}"*) free={tmp_free} ;; esac
        echo "Filesystem 1048576-blocks Used Available Capacity Mounted on"
        echo "/dev/fake 1000000 1 $free 1% /"
        '''))
    (fake / 'stat').write_text(textwrap.dedent(f'''\
        #!/bin/sh
        for last; do :; done
        case "$last" in "{tmp_dir}"*) echo 2 ;; *) echo 1 ;; esac
        '''))
    # The stack's interpreter: answers -V, and stops where pip would start.
    (fake / 'python').write_text(textwrap.dedent(f'''\
        #!/bin/sh
        if [ "$1" = -V ]; then echo "Python 3.12.1"; exit 0; fi
        touch "{marker}"
        exit 3
        '''))
    for tool in ('df', 'stat', 'python'):
        (fake / tool).chmod(0o755)
    env = dict(os.environ, PATH=f'{fake}:{os.environ["PATH"]}',
               RLA_VENV=str(venv), RLA_PYTHON=str(fake / 'python'),
               TMPDIR=str(tmp_dir))
    out = subprocess.run(['bash', osp.join(ROOT, 'scripts', 'bootstrap.sh'),
                          'main'], env=env, capture_output=True, text=True,
                         timeout=120)
    if refused is None:
        assert out.returncode == 3, out.stderr
        assert marker.exists()
        return
    assert out.returncode == 1, out.stderr
    assert not marker.exists() and not venv.exists()
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    if refused == 'venv':
        assert lines[0].startswith(
            f'bootstrap: the main environment needs about 8.7 GiB free on '
            f'the disk of {venv} (torch\'s CUDA build and its libraries) and '
            f'0.0 GiB are free;'), lines[0]
        assert 'set RLA_VENV to a folder on a larger disk' in lines[0]
    else:
        assert lines[0].startswith(
            f'bootstrap: pip needs about 2.5 GiB free in {tmp_dir} while it '
            'installs torch and 0.0 GiB are free;'), lines[0]
        assert 'set TMPDIR to a folder on a larger disk' in lines[0]


# ----------------------------------------- scripts/bootstrap.sh's Python
def _tools_without_python(folder):
    """``folder`` with a link to every program on PATH but the Pythons and
    pyenv, so that the bootstrap sees only the fake interpreters of a test."""
    folder.mkdir()
    for d in os.environ['PATH'].split(os.pathsep):
        if not osp.isdir(d):
            continue
        for name in os.listdir(d):
            path = osp.join(d, name)
            if (name.startswith(('python', 'pyenv'))
                    or osp.lexists(folder / name)
                    or not (osp.isfile(path) and os.access(path, os.X_OK))):
                continue
            os.symlink(path, folder / name)
    return str(folder)


def _fake_python(path, version, log):
    """A fake interpreter: answers ``-V`` with ``version``; ``-m venv DIR``
    writes its name to ``log`` and makes DIR a fake environment whose python
    succeeds at every step of the bootstrap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(f'''\
        #!/bin/sh
        if [ "$1" = -V ]; then echo "Python {version}"; exit 0; fi
        if [ "$1 $2" = "-m venv" ]; then
            echo "{path}" >> "{log}"
            mkdir -p "$3/bin"
            printf '#!/bin/sh\\nexit 0\\n' > "$3/bin/python"
            chmod +x "$3/bin/python"
            exit 0
        fi
        exit 3
        '''))
    path.chmod(0o755)
    return str(path)


class FakeMachine:
    """Fake interpreters on PATH and in a pyenv, plenty of disk, and
    ``run(stack)`` of ``scripts/bootstrap.sh`` on them."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.bin = tmp_path / 'bin'
        self.pyenv_root = tmp_path / 'pyenv'
        self.log = tmp_path / 'venvs-created'
        self.venv = tmp_path / 'envs' / 'venv'
        self.bin.mkdir()
        (self.pyenv_root / 'versions').mkdir(parents=True)
        self.log.write_text('')
        tools = {
            'df': 'echo "Filesystem 1048576-blocks Used Available Capacity '
                  'Mounted on"\necho "/dev/fake 1000000 1 100000 1% /"',
            'stat': 'echo 1',
            'pyenv': f'[ "$1" = root ] && echo "{self.pyenv_root}"',
        }
        for name, body in tools.items():
            (self.bin / name).write_text(f'#!/bin/sh\n{body}\n')
            (self.bin / name).chmod(0o755)
        self.path = (f'{self.bin}:'
                     f'{_tools_without_python(tmp_path / "tools")}')

    def on_path(self, name, version):
        return _fake_python(self.bin / name, version, self.log)

    def in_pyenv(self, version):
        short = '.'.join(version.split('.')[:2])
        return _fake_python(
            self.pyenv_root / 'versions' / version / 'bin' / f'python{short}',
            version, self.log)

    def run(self, stack='main', **env):
        full = dict(os.environ, PATH=self.path, RLA_VENV=str(self.venv),
                    TMPDIR=str(self.tmp))
        full.pop('RLA_PYTHON', None)
        full.update(env)
        return subprocess.run(
            ['bash', osp.join(ROOT, 'scripts', 'bootstrap.sh'), stack],
            env=full, capture_output=True, text=True, timeout=120)

    def created(self):
        """The interpreters that created an environment, in order."""
        return self.log.read_text().split()


def test_bootstrap_takes_the_newest_python_of_the_main_stack(tmp_path):
    machine = FakeMachine(tmp_path)
    py311 = machine.on_path('python3.11', '3.11.9')
    py312 = machine.on_path('python3.12', '3.12.3')
    # a pyenv shim of a version that is not selected answers nothing
    shim = machine.bin / 'python3.13'
    shim.write_text('#!/bin/sh\necho "pyenv: python3.13: command not '
                    'found" >&2\nexit 127\n')
    shim.chmod(0o755)
    machine.on_path('python3.10', '3.10.12')
    out = machine.run()
    assert out.returncode == 0, out.stderr
    assert machine.created() == [py312]
    assert f'(main: Python 3.12.3 at {py312},' in out.stdout
    # the same interpreter again: the environment is kept
    out = machine.run()
    assert out.returncode == 0, out.stderr
    assert out.stdout == '' and machine.created() == [py312]
    # a newer Python appears (in pyenv, the newest of its 3.13s): the
    # environment is built anew with it
    machine.in_pyenv('3.13.0')
    py313 = machine.in_pyenv('3.13.2')
    out = machine.run()
    assert out.returncode == 0, out.stderr
    assert machine.created() == [py312, py313]
    # RLA_PYTHON wins over the newest
    out = machine.run(RLA_PYTHON=py311)
    assert out.returncode == 0, out.stderr
    assert machine.created() == [py312, py313, py311]
    # the older corners keep their own version
    out = machine.run('torch21', RLA_VENV=str(tmp_path / 'envs' / 'v21'))
    assert out.returncode == 0, out.stderr
    assert machine.created()[-1] == py311


@pytest.mark.parametrize('case', ['RLA_PYTHON', 'none found', 'corner'])
def test_bootstrap_names_the_pythons_it_accepts_in_one_sentence(tmp_path,
                                                                case):
    machine = FakeMachine(tmp_path)
    py310 = machine.on_path('python3.10', '3.10.12')
    machine.on_path('python3', '3.10.12')
    machine.on_path('python3.14', '3.14.0')
    stack, env = 'main', {}
    if case == 'RLA_PYTHON':
        machine.on_path('python3.12', '3.12.3')
        env = dict(RLA_PYTHON=py310)
        expected = (f'bootstrap: RLA_PYTHON={py310} is Python 3.10, and the '
                    'main stack needs Python 3.13, 3.12 or 3.11; point '
                    'RLA_PYTHON at one of those or unset it')
    elif case == 'none found':
        expected = ('bootstrap: the main stack needs Python 3.13, 3.12 or '
                    '3.11, and none was found on PATH or in pyenv (python3 '
                    'here is Python 3.10); install one or set '
                    'RLA_PYTHON=/path/to/python3.X')
    else:
        machine.on_path('python3.12', '3.12.3')
        stack = 'oldest'
        expected = ('bootstrap: the oldest stack needs Python 3.8, and none '
                    'was found on PATH or in pyenv (python3 here is Python '
                    '3.10); install one or set RLA_PYTHON=/path/to/python3.X')
    out = machine.run(stack, **env)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [expected]
    assert machine.created() == [] and not machine.venv.exists()
