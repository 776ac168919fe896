"""Checkpoints named by URL or MMEngine prefix: downloaded once, then read
by the safe loader, on every route a user names them through.

A server on 127.0.0.1 (started here, nothing else is contacted) serves the
files; ``TORCH_HOME`` points at a temporary folder, whose hub cache must
hold nothing after a refused or failed download.
"""
import hashlib
import multiprocessing
import os
import os.path as osp
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from urllib.parse import quote

import pytest
import torch
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from rla_mmdet import RLAResNet
from rla_mmdet.checkpoint import (SAFE_PREFIXES,
                                  WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                                  DownloadError, UnsafeCheckpointError,
                                  get_state_dict, load_checkpoint_file)
from rla_mmdet.checkpoint import remote
from rla_mmdet.converters import imagenet_to_mmdet
from rla_mmdet.engine import (checkpoint_io_enabled, enable_checkpoint_io,
                              restore_checkpoint_io)
import pickle_attacks
from helpers import LocalServer
from test_checkpoint import authors_imagenet_checkpoint
from test_checkpoint_io import SETSTATE_MARKER, _LoudOnLoad, _runner

pytestmark = pytest.mark.core

#: ``restricted=`` of each route of load_checkpoint_file on this torch.
ROUTES = [True, None] + ([False] if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST else [])


@pytest.fixture
def server(tmp_path, monkeypatch):
    root = tmp_path / 'served'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    s = LocalServer(str(root))
    yield s
    s.close()


def _cached():
    """The names of the files in the cache but its entries' lock files:
    downloaded checkpoints, and whatever a failed download left."""
    found = []
    for _, _, files in os.walk(remote.cache_dir()):
        found += [name for name in files if name != '.lock']
    return sorted(found)


def _serve_r18(server, name='rla_r18.pth'):
    expected = authors_imagenet_checkpoint(
        osp.join(server.root, name), depth=18)
    return expected


def _assert_loaded(model, expected):
    own = model.state_dict()
    for k, v in expected.items():
        assert torch.equal(own[k], v), k


# ------------------------------------------------------------ good files
def test_url_loads_through_init_cfg_once(server):
    expected = _serve_r18(server)
    url = server.url('rla_r18.pth')
    for _ in range(2):  # the second time from the cache
        model = RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                                  checkpoint=url))
        model.init_weights()
        _assert_loaded(model, expected)
    assert server.gets['/files/rla_r18.pth'] == 1
    assert _cached() == ['rla_r18.pth']


def test_url_with_a_hash_and_sha256_in_init_cfg(server):
    expected = _serve_r18(server, 'tmp.pth')
    digest = hashlib.sha256(
        open(osp.join(server.root, 'tmp.pth'), 'rb').read()).hexdigest()
    name = f'rla_r18-{digest[:8]}.pth'
    os.rename(osp.join(server.root, 'tmp.pth'), osp.join(server.root, name))
    model = RLAResNet(depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=server.url(name), sha256=digest))
    model.init_weights()
    _assert_loaded(model, expected)
    # A wrong sha256 in init_cfg: refused, even from the cache.
    model = RLAResNet(depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=server.url(name), sha256='0' * 64))
    with pytest.raises(ValueError, match=r'sha256 .*not 0{64}'):
        model.init_weights()


def test_mmengine_loader_and_runner_resume_from_a_url(server, tmp_path):
    was_on = checkpoint_io_enabled()
    work_dir = tmp_path / 'run'
    _runner(work_dir, 1).train()
    shutil.copy(work_dir / 'epoch_1.pth', osp.join(server.root, 'e1.pth'))
    url = server.url('e1.pth')
    before = enable_checkpoint_io()
    try:
        loaded = CheckpointLoader.load_checkpoint(url, map_location='cpu')
        assert loaded['meta']['iter'] == 2
    finally:
        restore_checkpoint_io(before)
    # load_from + resume of a Runner with CheckpointIOHook (--resume URL)
    runner = _runner(tmp_path / 'resumed', 2, resume=True, load_from=url)
    runner.train()
    assert runner.iter == 4 and runner.epoch == 2
    assert checkpoint_io_enabled() == was_on  # the hook put it back


def test_converter_reads_a_url(server, tmp_path):
    _serve_r18(server)
    dst = tmp_path / 'out.pth'
    imagenet_to_mmdet(server.url('rla_r18.pth'), str(dst))
    assert dst.is_file()


@pytest.mark.parametrize('prefix', ['torchvision://', 'modelzoo://',
                                    'open-mmlab://', 'openmmlab://',
                                    'mmcls://'])
def test_mmengine_names_resolve_to_a_checked_download(server, monkeypatch,
                                                      prefix):
    expected = _serve_r18(server)
    url = server.url('rla_r18.pth')
    if prefix == 'mmcls://':  # MMEngine renames mmcls keys after loading
        torch.save(dict(state_dict=OrderedDict(
            ('backbone.' + k, v) for k, v in expected.items())),
                   osp.join(server.root, 'rla_r18.pth'))
    table = {'rla_r18': url}
    monkeypatch.setattr(mm_checkpoint, 'get_torchvision_models',
                        lambda: table)
    monkeypatch.setattr(mm_checkpoint, 'get_external_models', lambda: table)
    monkeypatch.setattr(mm_checkpoint, 'get_mmcls_models', lambda: table)
    state = get_state_dict(load_checkpoint_file(prefix + 'rla_r18'))
    assert torch.equal(state['conv1.weight'], expected['conv1.weight'])
    with pytest.raises(ValueError, match="'nope' is not in the table"):
        load_checkpoint_file(prefix + 'nope')


# ------------------------------------------------------------ refusals
def test_served_pickle_and_torchscript_are_refused_everywhere(
        server, tmp_path, capfd):
    marker = tmp_path / 'pwned'

    class RunsCode:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': RunsCode()},
               osp.join(server.root, 'evil.pth'))
    torch.jit.save(torch.jit.script(_LoudOnLoad()),
                   osp.join(server.root, 'scripted.pth'))
    for name in ('evil.pth', 'scripted.pth'):
        url = server.url(name)
        for restricted in ROUTES:
            with pytest.raises(UnsafeCheckpointError,
                               match=f"refused to load '{url}'"):
                load_checkpoint_file(url, restricted=restricted)
        with pytest.raises(UnsafeCheckpointError):
            RLAResNet(depth=18, init_cfg=dict(
                type='Pretrained', checkpoint=url)).init_weights()
        before = enable_checkpoint_io()
        try:
            with pytest.raises(UnsafeCheckpointError):
                CheckpointLoader.load_checkpoint(url)
        finally:
            restore_checkpoint_io(before)
        assert _cached() == []  # a refused download is not kept
    assert not marker.exists()
    assert SETSTATE_MARKER not in ''.join(capfd.readouterr())


def test_download_errors_are_one_sentence_and_leave_nothing(
        server, monkeypatch):
    _serve_r18(server, 'good.pth')
    data = open(osp.join(server.root, 'good.pth'), 'rb').read()
    with open(osp.join(server.root, 'truncated.pth'), 'wb') as f:
        f.write(data[:len(data) // 2])
    shutil.copy(osp.join(server.root, 'good.pth'),
                osp.join(server.root, 'good-0123abcd.pth'))
    cases = [
        (server.url('truncated.pth'), ValueError, 'not a readable'),
        (server.url('missing.pth'), FileNotFoundError,
         r'does not exist on its server \(HTTP 404\)'),
        (server.url('good-0123abcd.pth'), ValueError,
         r'has sha256 .*not 0123abcd'),
        (server.url('good.pth', 'cut'), DownloadError,
         r'stopped after \d+ of \d+ bytes'),
        (server.url('good.pth', 'stall'), DownloadError, 'stalled for 0.5 s'),
        ('http://127.0.0.1:9/good.pth', DownloadError, 'could not reach'),
    ]
    monkeypatch.setattr(remote, 'TIMEOUT_S', 0.5)
    for url, error, message in cases:
        with pytest.raises(error, match=message) as info:
            load_checkpoint_file(url)
        text = str(info.value)
        assert url in text and '\n' not in text, text
        assert _cached() == [], (url, _cached())


@pytest.mark.parametrize('name', ['s3://bucket/x.pth', 'petrel://b/x.pth',
                                  'pavi://model/x.pth',
                                  'cluster1:s3://bucket/x.pth'])
def test_schemes_that_cannot_be_checked_are_refused(name):
    with pytest.raises(ValueError, match='cannot check what'):
        load_checkpoint_file(name)
    before = enable_checkpoint_io()
    try:
        with pytest.raises(ValueError, match='cannot check what'):
            CheckpointLoader.load_checkpoint(name)
    finally:
        restore_checkpoint_io(before)


def test_every_prefix_mmengine_knows_goes_through_the_loader():
    was_on = checkpoint_io_enabled()
    known = list(CheckpointLoader._schemes)
    before = enable_checkpoint_io()
    try:
        assert checkpoint_io_enabled()
        for prefix in known:
            loader = CheckpointLoader._schemes[prefix]
            assert loader.__module__ == 'rla_mmdet.checkpoint.loading', prefix
    finally:
        restore_checkpoint_io(before)
    assert list(CheckpointLoader._schemes) == known
    assert checkpoint_io_enabled() == was_on
    # MMEngine's URL prefixes are all read (downloaded and checked).
    assert {p for p in known if p in SAFE_PREFIXES} == set(SAFE_PREFIXES)


def _fetch_in_a_child(url, results):
    results.put(remote.fetch(url)[1])


def test_processes_sharing_the_cache_download_once(server):
    _serve_r18(server)
    url = server.url('rla_r18.pth', 'slow')
    ctx = multiprocessing.get_context('fork')
    results = ctx.Queue()
    children = [ctx.Process(target=_fetch_in_a_child, args=(url, results))
                for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert sorted(results.get(timeout=5) for _ in children) == [False, True]
    assert server.gets['/slow/rla_r18.pth'] == 1


def test_progress_bar_on_a_terminal_only(server, monkeypatch, capsys):
    _serve_r18(server)
    shutil.copy(osp.join(server.root, 'rla_r18.pth'),
                osp.join(server.root, 'copy.pth'))
    remote.fetch(server.url('rla_r18.pth'))
    assert capsys.readouterr().err == ''
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)
    remote.fetch(server.url('copy.pth'))
    # tqdm's bar, or torch.hub's stand-in for it (percentages) without tqdm
    assert '100' in capsys.readouterr().err


# ------------------------------------------------------------ the cache
#: What a cached file's name may be.
_SAFE_NAME = re.compile(r'[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\Z')


@pytest.mark.parametrize('name', [
    '%2Fsome%2Fdir%2Fx.pth', '..%2F..%2Fx.pth', '..%5C..%5Cx.pth',
    'C:%5Cx.pth', '.hidden.pth', '...pth', 'x%00y.pth', 'caf%C3%A9.pth',
    '%E2%80%AEhtp.exe', 'a%0Aimport%20os.pth', 'x' * 300 + '.pth',
    '%2E%2E%2F' * 40 + 'x.pth', 'x.pth?name=..%2F..%2Fy.pth'])
def test_a_cache_path_is_a_safe_name_inside_the_cache(tmp_path, monkeypatch,
                                                      name):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    path = remote.cache_path('http://127.0.0.1/zoo/' + name)
    cache = osp.realpath(remote.cache_dir())
    assert osp.dirname(osp.dirname(osp.realpath(path))) == cache, path
    assert _SAFE_NAME.match(osp.basename(path)), path


@pytest.mark.parametrize('url,message', [
    *[('http://127.0.0.1/zoo/' + name, 'does not end in a file name')
      for name in ('..', '%2E%2E', '.', '...', '')],
    ('http://[::1/zoo/x.pth', 'is not a valid URL')])
def test_a_url_without_a_usable_file_name_is_refused(url, message):
    with pytest.raises(ValueError, match=message):
        remote.cache_path(url)


def test_the_ascii_checkpoint_is_one_site_would_run(tmp_path):
    """The generator behind the next test: an ASCII-only checkpoint that
    loads, and whose ``import`` line ``site`` runs from a ``.pth`` file."""
    marker = tmp_path / 'ran'
    pickle_attacks.write_ascii_checkpoint_with_import(
        str(tmp_path / 'evil.pth'),
        f'import pathlib; pathlib.Path({str(marker)!r}).touch()')
    data = (tmp_path / 'evil.pth').read_bytes()
    assert max(data) < 0x80
    state = get_state_dict(load_checkpoint_file(str(tmp_path / 'evil.pth')))
    assert state['w'].tolist()[1:] == [1, 2]
    site.addpackage(str(tmp_path), 'evil.pth', set())
    assert marker.exists()


def _files_outside(top, *inside):
    """Files and empty folders under ``top`` but not under ``inside``."""
    found = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if osp.join(root, d) not in inside]
        found += [osp.join(root, f) for f in files]
        found += [osp.join(root, d) for d in dirs
                  if not os.listdir(osp.join(root, d))]
    return found


def test_a_served_name_cannot_leave_the_cache(server, tmp_path):
    """An ASCII checkpoint with an ``import`` line, served under names that
    decode to a path in a site folder and to folders above the cache, loads
    and is kept only inside the cache."""
    folder = tmp_path / 'site-packages'
    folder.mkdir()
    (folder / 'keep').write_text('')
    line = f'import pathlib; pathlib.Path({str(tmp_path / "ran")!r}).touch()'
    names = [quote(str(folder / 'evil.pth'), safe=''),
             '..%2F' * 2 + 'evil.pth', '..%2F' * 3 + 'evil.pth',
             '..%5C' * 3 + 'evil.pth']
    for name in names:
        pickle_attacks.write_ascii_checkpoint_with_import(
            osp.join(server.root, name), line)
    for name in names[:-1]:
        state = get_state_dict(load_checkpoint_file(server.url(name)))
        assert state['w'].tolist()[1:] == [1, 2]
    before = enable_checkpoint_io()
    try:
        CheckpointLoader.load_checkpoint(server.url(names[-1]))
    finally:
        restore_checkpoint_io(before)
    assert all(server.gets['/files/' + name] == 1 for name in names)
    assert _files_outside(str(tmp_path), server.root, remote.cache_dir()) \
        == [str(folder / 'keep')]
    assert len(_cached()) == len(names)


def test_a_link_in_the_cache_is_not_followed(server, tmp_path):
    torch.save({'w': torch.ones(1)}, osp.join(server.root, 'l.pth'))
    url = server.url('l.pth')
    entry = osp.dirname(remote.cache_path(url))
    os.makedirs(remote.cache_dir())
    (tmp_path / 'elsewhere').mkdir()
    os.symlink(str(tmp_path / 'elsewhere'), entry)
    with pytest.raises(ValueError, match='is a link or holds one'):
        load_checkpoint_file(url)
    assert os.listdir(str(tmp_path / 'elsewhere')) == []


def test_each_url_is_its_own_cache_entry(server, tmp_path):
    """Same file name, other host (port) or folder: another download."""
    (tmp_path / 'other').mkdir()
    other = LocalServer(str(tmp_path / 'other'))
    try:
        urls = [server.url('x.pth'), other.url('x.pth'),
                server.url('a/x.pth'), server.url('b/x.pth')]
        for i, url in enumerate(urls):
            root, name = (other.root if i == 1 else server.root), \
                url.split('/files/', 1)[1]
            os.makedirs(osp.dirname(osp.join(root, name)), exist_ok=True)
            torch.save({'state_dict': {'w': torch.tensor([i])}},
                       osp.join(root, name))
        for _ in range(2):
            for i, url in enumerate(urls):
                state = get_state_dict(load_checkpoint_file(url))
                assert state['w'].tolist() == [i], url
        # the fragment is not sent to the server: the same entry
        load_checkpoint_file(urls[0] + '#weights')
        assert server.gets == {'/files/x.pth': 1, '/files/a/x.pth': 1,
                               '/files/b/x.pth': 1}
        assert other.gets == {'/files/x.pth': 1}
    finally:
        other.close()
    assert _cached() == ['x.pth'] * 4


def test_downloads_stop_at_the_size_cap(server, monkeypatch):
    torch.save({'state_dict': {'w': torch.zeros(300)}},
               osp.join(server.root, 'big.pth'))
    size = osp.getsize(osp.join(server.root, 'big.pth'))
    monkeypatch.setattr(remote, 'MAX_DOWNLOAD_BYTES', size - 1)
    with pytest.raises(DownloadError,
                       match=f'announces {size} bytes, more than {size - 1} '
                       r'bytes.*\(RLA_MMDET_MAX_DOWNLOAD_BYTES sets another'):
        load_checkpoint_file(server.url('big.pth'))
    # no Content-Length: stopped once past the cap
    with pytest.raises(DownloadError, match=f'went on past {size - 1} bytes'):
        load_checkpoint_file(server.url('big.pth', 'nolength'))
    assert _cached() == []
    # the environment variable wins over the module's default
    monkeypatch.setenv(remote.MAX_DOWNLOAD_BYTES_ENV, str(size))
    load_checkpoint_file(server.url('big.pth', 'nolength'))
    monkeypatch.setattr(remote, 'MAX_DOWNLOAD_BYTES', 4 << 30)
    monkeypatch.setenv(remote.MAX_DOWNLOAD_BYTES_ENV, str(size - 1))
    with pytest.raises(DownloadError, match='announces'):
        load_checkpoint_file(server.url('big.pth'))
    monkeypatch.setenv(remote.MAX_DOWNLOAD_BYTES_ENV, '1e9')
    with pytest.raises(ValueError, match='RLA_MMDET_MAX_DOWNLOAD_BYTES must '
                       r"be .* got '1e9'"):
        load_checkpoint_file(server.url('big.pth'))
    assert _cached() == ['big.pth']


def test_a_dripping_server_is_given_up(server, monkeypatch):
    """A byte every 0.1 s never trips the 60 s stall limit; the minimum
    rate (here 20 bytes per 0.5 s) stops it."""
    with open(osp.join(server.root, 'drip.pth'), 'wb') as f:
        f.write(b'x' * 60)
    monkeypatch.setattr(remote, 'RATE_WINDOW_S', 0.5)
    monkeypatch.setattr(remote, 'MIN_BYTES_PER_WINDOW', 20)
    start = time.monotonic()
    url = server.url('drip.pth', 'drip')
    with pytest.raises(DownloadError, match=r'brought \d+ bytes in [\d.]+ s, '
                       'fewer than the 20 per 0.5 s') as info:
        load_checkpoint_file(url)
    assert time.monotonic() - start < 3
    assert url in str(info.value) and '\n' not in str(info.value)
    assert _cached() == []


def _hold_entry(url, ready, release):
    """Take ``url``'s cache entry as a download would, and wait."""
    entry = osp.dirname(remote.cache_path(url))
    os.makedirs(entry, exist_ok=True)
    with remote._entry_lock(entry, url):
        ready.set()
        release.wait(5)


def test_a_held_entry_blocks_its_url_only_and_names_its_holder(
        server, monkeypatch):
    for name in ('a.pth', 'b.pth'):
        torch.save({'w': torch.ones(1)}, osp.join(server.root, name))
    url_a, url_b = server.url('a.pth'), server.url('b.pth')
    ctx = multiprocessing.get_context('fork')
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_entry, args=(url_a, ready, release))
    holder.start()
    monkeypatch.setattr(remote, 'LOCK_TIMEOUT_S', 0.5)
    try:
        assert ready.wait(30)
        assert remote.fetch(url_b)[1]  # another entry: no wait
        start = time.monotonic()
        with pytest.raises(DownloadError) as info:
            remote.fetch(url_a)
        assert time.monotonic() - start < 4
    finally:
        release.set()
        holder.join(30)
    text = str(info.value)
    assert f'pid {holder.pid} on {socket.gethostname()} to download ' \
        f'{url_a!r}' in text and '\n' not in text, text
    assert remote.fetch(url_a)[1]  # released: downloaded now
    assert _cached() == ['a.pth', 'b.pth']


def _partial_files(path):
    """The temporary files of downloads of the cached file ``path``."""
    entry, name = osp.split(path)
    return [n for n in (os.listdir(entry) if osp.isdir(entry) else [])
            if n.startswith(f'.{name}.') and n.endswith('.partial')]


def _wait_for_a_partial(path):
    """Until a download of the cached file ``path`` has begun."""
    deadline = time.monotonic() + 30
    while not _partial_files(path):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_waiting_process_waits_while_the_download_grows(
        server, monkeypatch):
    with open(osp.join(server.root, 'grows.pth'), 'wb') as f:
        f.write(b'x' * 30)
    url = server.url('grows.pth', 'drip')
    server.drip_s = 0.05  # 1.5 s in all, three times the lock's timeout
    ctx = multiprocessing.get_context('fork')
    child = ctx.Process(target=remote.fetch, args=(url, ))
    child.start()
    monkeypatch.setattr(remote, 'LOCK_TIMEOUT_S', 0.5)
    _wait_for_a_partial(remote.cache_path(url))
    assert remote.fetch(url) == (remote.cache_path(url), False)
    child.join(30)
    assert child.exitcode == 0 and server.gets['/drip/grows.pth'] == 1


def test_a_killed_download_leaves_no_partial_behind(server):
    torch.save({'w': torch.ones(1)}, osp.join(server.root, 'k.pth'))
    url = server.url('k.pth', 'slow')  # a second before the first byte
    path = remote.cache_path(url)
    child = multiprocessing.get_context('fork').Process(
        target=remote.fetch, args=(url, ))
    child.start()
    _wait_for_a_partial(path)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert _partial_files(path)
    assert remote.fetch(url)[1]
    assert _cached() == ['k.pth']


def test_the_cache_works_without_fcntl(server):
    """As on Windows: ``fcntl`` cannot be imported. Only ``remote`` and
    what it imports are loaded (its packages' ``__init__`` left out, to
    spare the child mmdet's import)."""
    torch.save({'w': torch.ones(1)}, osp.join(server.root, 'w.pth'))
    package = osp.dirname(remote.__file__)
    script = (
        "import sys, types; sys.modules['fcntl'] = None\n"
        f'for name, path in [("rla_mmdet", {osp.dirname(package)!r}), '
        f'("rla_mmdet.checkpoint", {package!r})]:\n'
        '    sys.modules[name] = types.ModuleType(name)\n'
        '    sys.modules[name].__path__ = [path]\n'
        'from rla_mmdet.checkpoint import remote\n'
        f'print(remote.fetch({server.url("w.pth")!r})[1])\n')
    out = subprocess.run([sys.executable, '-c', script], env=os.environ,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == 'True', out.stderr[-2000:]
    assert _cached() == ['w.pth']


def test_tools_accept_a_url(server, run_tool, shapes_data, tmp_path):
    """tools/test.py scores a detector checkpoint named by URL, and
    tools/train.py refuses a served pickle given as load_from."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    import rla_mmdet  # noqa: F401
    config = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', config))
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    torch.save(dict(state_dict=detector.state_dict()),
               osp.join(server.root, 'det.pth'))
    env = dict(TORCH_HOME=os.environ['TORCH_HOME'])
    proc = run_tool([
        'tools/test.py', config, server.url('det.pth'), '--work-dir',
        tmp_path / 'test', '--data-root', shapes_data['root'],
        '--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0'
    ], env=env)
    assert 'coco/bbox_mAP' in proc.stdout
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'x': _SideEffect(str(marker))},
               osp.join(server.root, 'evil.pth'))
    proc = run_tool([
        'tools/train.py', config, '--work-dir', tmp_path / 'train',
        '--data-root', shapes_data['root'], '--cfg-options',
        f'load_from={server.url("evil.pth")}'
    ], env=env, check=False)
    assert proc.returncode != 0
    assert f"refused to load '{server.url('evil.pth')}'" in proc.stdout
    assert not marker.exists()


class _SideEffect:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))
