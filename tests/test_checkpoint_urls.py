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
import shutil
import sys
from collections import OrderedDict

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
    folder = remote.cache_dir()
    return sorted(os.listdir(folder)) if osp.isdir(folder) else []


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
