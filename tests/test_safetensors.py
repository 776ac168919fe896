""".safetensors checkpoints: read wherever a checkpoint is named, written by
the converters and the publish tool, and refused with one sentence when the
header does not describe the file.

Round trips go ``.pth`` -> publish_model.py -> ``.safetensors`` and compare
the weights bit for bit (and tools/test.py's predictions and metrics) with
those of the ``.pth``. The bad files are written byte by byte here.
"""
import glob
import hashlib
import inspect
import json
import os
import os.path as osp
import pickle
import re
import struct
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

from rla_mmdet import RLAMobileNetV2, RLAResNet, dependencies
from rla_mmdet.checkpoint import load_checkpoint_file, remote
from rla_mmdet.checkpoint import safetensors_io
from rla_mmdet.converters import (imagenet_to_mmdet, output_format,
                                  publish_checkpoint)
from rla_mmdet.engine import enable_checkpoint_io, restore_checkpoint_io
from rla_mmdet.engine.fileio import current_checkpoint_io
from helpers import ROOT, load_tool
from test_checkpoint import authors_imagenet_checkpoint
from test_checkpoint_urls import _cached, server  # noqa: F401 (a fixture)
from test_rla_mobilenet_v2 import published_file

pytestmark = pytest.mark.core

SHAPES_CONFIG = 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py'
#: An untrained detector: keep every box so that COCO has results to score.
KEEP_ALL = 'model.test_cfg.rcnn.score_thr=0.0'


def _publish(src, dst, *extra):
    """publish_model.py's main; returns (path, sha256, printed lines)."""
    tool = load_tool('model_converters/publish_model.py')
    path, digest = tool.main([str(src), str(dst), *extra])
    return path, digest


def _same_tensors(a, b):
    assert list(a) and set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def _json(value):
    return json.loads(json.dumps(value))


# ------------------------------------------------------------ round trips
@pytest.mark.parametrize('kind', ['rla-r50', 'rla-mobilenetv2'])
def test_backbone_weights_round_trip_through_publish(tmp_path, kind, capsys):
    src = tmp_path / 'authors.pth.tar'
    if kind == 'rla-r50':
        authors_imagenet_checkpoint(src, depth=50)
        build = lambda init: RLAResNet(depth=50, init_cfg=init)  # noqa: E731
    else:
        published_file(src)
        build = lambda init: RLAMobileNetV2(init_cfg=init)  # noqa: E731
    pth = tmp_path / f'{kind}.pth'
    meta = imagenet_to_mmdet(str(src), str(pth))
    path, digest = _publish(pth, tmp_path / 'pub' / f'{kind}.pth', '--format',
                            'safetensors')
    assert path == str(tmp_path / 'pub' / f'{kind}-{digest[:8]}.safetensors')
    assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == digest
    assert f'sha256 {digest}' in capsys.readouterr().out
    with open(path, 'rb') as f:
        assert safetensors_io.is_safetensors(f.read(9))
    models = []
    for name in (pth, path):
        model = build(dict(type='Pretrained', checkpoint=str(name)))
        model.init_weights()
        models.append(model.state_dict())
    _same_tensors(*models)
    published = load_checkpoint_file(path)
    # meta round-trips through __metadata__ (JSON: tuples become lists)
    assert published['meta'] == _json(meta)
    assert published['meta']['source_sha256'] == meta['source_sha256']
    _same_tensors(published['state_dict'],
                  load_checkpoint_file(str(pth))['state_dict'])


def test_converters_write_safetensors_with_format(tmp_path):
    src = tmp_path / 'r18.pth.tar'
    authors_imagenet_checkpoint(src, depth=18)
    tool = load_tool('model_converters/rla_imagenet_to_mmdet.py')
    tool.main([str(src), str(tmp_path / 'r18.safetensors'), '--format',
               'safetensors'])
    tool.main([str(src), str(tmp_path / 'r18.pth')])
    a = load_checkpoint_file(str(tmp_path / 'r18.safetensors'))
    b = load_checkpoint_file(str(tmp_path / 'r18.pth'))
    _same_tensors(a['state_dict'], b['state_dict'])
    assert a['meta'] == _json(b['meta'])
    # a converter reads a .safetensors input too
    meta = imagenet_to_mmdet(str(tmp_path / 'r18.safetensors'),
                             str(tmp_path / 'again.safetensors'))
    assert meta['backbone'] == dict(type='RLAResNet', depth=18)
    # the name and the format must agree; nothing is written otherwise
    for dst, fmt in (('x.pth', 'safetensors'), ('x.safetensors', 'pth')):
        with pytest.raises(ValueError, match=r'does not match --format'):
            imagenet_to_mmdet(str(src), str(tmp_path / dst), file_format=fmt)
        assert not (tmp_path / dst).exists()
    assert output_format('x.safetensors') == 'safetensors'
    assert output_format('x.pth.tar') == 'pth'


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    """A training checkpoint of the shapes Mask R-CNN (random weights), as
    MMEngine's Runner writes it, and its published ``.safetensors``."""
    from mmengine.logging import MessageHub
    from mmdet.registry import MODELS
    import rla_mmdet  # noqa: F401  registers the backbones
    from rla_mmdet.tools_support.shapes import SHAPE_CLASSES
    root = tmp_path_factory.mktemp('detector')
    cfg = Config.fromfile(osp.join(ROOT, SHAPES_CONFIG))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    hub = MessageHub.get_instance('test_safetensors')
    hub.update_scalar('train/loss', 1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    pth = root / 'epoch_1.pth'
    torch.save(dict(
        meta=dict(epoch=1, iter=4, seed=0, cfg=cfg.pretty_text,
                  dataset_meta=dict(classes=SHAPE_CLASSES, palette=[
                      (220, 20, 60)] * len(SHAPE_CLASSES))),
        state_dict=model.state_dict(), message_hub=hub.state_dict(),
        optimizer=optimizer.state_dict(), param_schedulers=[]), str(pth))
    path, _ = _publish(pth, root / 'mask-rcnn_shapes.safetensors')
    return dict(pth=str(pth), safetensors=path, classes=list(SHAPE_CLASSES),
                state_dict=model.state_dict())


def test_published_detector_keeps_meta_and_weights_only(detector):
    published = load_checkpoint_file(detector['safetensors'])
    assert set(published) == {'state_dict', 'meta'}
    _same_tensors(published['state_dict'], detector['state_dict'])
    assert published['meta']['iter'] == 4
    assert published['meta']['dataset_meta']['classes'] == \
        detector['classes']


def test_detector_load_from_and_init_cfg(detector):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, SHAPES_CONFIG))
    before = enable_checkpoint_io()  # as tools/ and CheckpointIOHook do
    try:
        model = MODELS.build(cfg.model)  # load_from: MMEngine's loader
        loaded = load_checkpoint(model, detector['safetensors'],
                                 map_location='cpu', strict=True)
        assert loaded['meta']['epoch'] == 1
        _same_tensors(model.state_dict(), detector['state_dict'])
    finally:
        restore_checkpoint_io(before)
    backbone = RLAResNet(depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=detector['safetensors'],
        prefix='backbone.'))
    backbone.init_weights()
    _same_tensors(backbone.state_dict(), OrderedDict(
        (k[len('backbone.'):], v) for k, v in detector['state_dict'].items()
        if k.startswith('backbone.')))


def _test_tool(run_tool, shapes_data, checkpoint, work_dir):
    run_tool(['tools/test.py', SHAPES_CONFIG, checkpoint, '--work-dir',
              work_dir, '--data-root', shapes_data['root'], '--out',
              work_dir / 'out.pkl', '--cfg-options', KEEP_ALL])
    (log, ) = glob.glob(str(work_dir / '*' / '*.json'))
    with open(log) as f:
        metrics = {k: v for k, v in json.load(f).items()
                   if k.startswith('coco/')}
    with open(work_dir / 'out.pkl', 'rb') as f:
        return metrics, pickle.load(f)


def test_test_tool_scores_the_safetensors_as_the_pth(detector, run_tool,
                                                     shapes_data, tmp_path):
    m1, p1 = _test_tool(run_tool, shapes_data, detector['pth'],
                        tmp_path / 'pth')
    m2, p2 = _test_tool(run_tool, shapes_data, detector['safetensors'],
                        tmp_path / 'st')
    assert m1 and m1 == m2  # bbox and segm AP
    assert len(p1) == len(p2) == 4
    for a, b in zip(p1, p2):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a['pred_instances'][key],
                               b['pred_instances'][key])


def test_init_detector(detector):
    from mmdet.apis import init_detector
    before = enable_checkpoint_io()  # what the configs' hook and tools do
    try:
        model = init_detector(osp.join(ROOT, SHAPES_CONFIG),
                              detector['safetensors'], device='cpu')
    finally:
        restore_checkpoint_io(before)
    _same_tensors(model.state_dict(), detector['state_dict'])
    assert list(model.dataset_meta['classes']) == detector['classes']


def test_demo(detector, shapes_data, tmp_path):
    from mmdet.apis import DetInferencer
    if 'show_progress' not in inspect.signature(DetInferencer).parameters:
        pytest.skip("tools/demo.py passes DetInferencer's show_progress, "
                    'which this mmdet (< 3.1) lacks')
    before = current_checkpoint_io()  # the demo switches it on for good
    try:
        summary = load_tool('demo.py').main([
            shapes_data['val_img_dir'], osp.join(ROOT, SHAPES_CONFIG),
            detector['safetensors'], '--out-dir', str(tmp_path),
            '--score-thr', '1.0'])
    finally:
        restore_checkpoint_io(before)
    assert len(summary['images']) == 4


def test_resume_from_safetensors_is_refused(detector, run_tool, shapes_data,
                                            tmp_path):
    proc = run_tool(['tools/train.py', SHAPES_CONFIG, '--work-dir',
                     tmp_path, '--data-root', shapes_data['root'],
                     '--resume', detector['safetensors']], check=False)
    assert proc.returncode != 0
    assert 'a .safetensors file holds weights only' in proc.stdout
    with pytest.raises(ValueError, match=r'cannot resume from .*weights '
                       r'only.*load_from \(without --resume\)'):
        safetensors_io.check_resume_source(detector['safetensors'])
    safetensors_io.check_resume_source(detector['pth'])  # a .pth resumes


# ------------------------------------------------------------ URLs
def test_published_url_verifies_itself(server, tmp_path):
    src = tmp_path / 'r18.pth.tar'
    expected = authors_imagenet_checkpoint(src, depth=18)
    path, digest = _publish(src, osp.join(server.root, 'rla-r18.safetensors'))
    name = osp.basename(path)
    assert name == f'rla-r18-{digest[:8]}.safetensors'
    good = open(path, 'rb').read()
    # One byte changed, served under the published name: refused, not kept.
    changed = bytearray(good)
    changed[-1] ^= 1
    with open(path, 'wb') as f:
        f.write(changed)
    model = RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                              checkpoint=server.url(name)))
    with pytest.raises(ValueError, match=r'sha256 .*not ' + digest[:8]):
        model.init_weights()
    assert _cached() == []
    with open(path, 'wb') as f:
        f.write(good)
    model.init_weights()
    own = model.state_dict()
    for k in own:
        assert torch.equal(own[k], expected[k]), k
    assert _cached() == [name]


# ------------------------------------------------------------ bad files
def _file(path, header, data=b'', length=None, raw=None):
    """A .safetensors file written by hand: ``header`` (a dict, or ``raw``
    text), its length (or ``length``), then ``data``."""
    text = raw if raw is not None else json.dumps(header).encode()
    size = len(text) if length is None else length
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', size) + text + data)
    return str(path)


def _t(dtype='F32', shape=(2, ), offsets=(0, 8)):
    return dict(dtype=dtype, shape=list(shape), data_offsets=list(offsets))


BAD = {
    'header longer than the file': (
        dict(header={'a': _t()}, data=bytes(8), length=10 ** 6),
        r'a header of 1000000 bytes in a file of'),
    'out-of-range offsets': (
        dict(header={'a': _t(shape=(2 ** 30, ), offsets=(0, 2 ** 32))},
             data=bytes(8)), r'bytes 0 to 4294967296 of a data area of 8'),
    'offsets past the end': (
        dict(header={'a': _t(offsets=(8, 16))}, data=bytes(8)),
        r'bytes 8 to 16 of a data area of 8'),
    'overlapping offsets': (
        dict(header={'a': _t(offsets=(0, 8)), 'b': _t(offsets=(4, 12))},
             data=bytes(12)), r'data_offsets overlap'),
    'a gap': (
        dict(header={'a': _t(offsets=(0, 8)), 'b': _t(offsets=(12, 20))},
             data=bytes(20)), r'a gap between'),
    'bytes after the last tensor': (
        dict(header={'a': _t()}, data=bytes(12)), r'4 bytes after the last'),
    'size not dtype times shape': (
        dict(header={'a': _t(shape=(1, ))}, data=bytes(8)),
        r'span 8 bytes where its dtype and shape need 4'),
    'size beyond the file': (
        dict(header={'a': _t(shape=(3, ))}, data=bytes(8)),
        r'span 8 bytes where its dtype and shape need more than the 8 '),
    'an unknown dtype': (
        dict(header={'a': _t(dtype='F4_X')}, data=bytes(8)),
        r'a dtype that this torch does not know \(known: F64, F32'),
    'a shape of many huge sizes': (
        dict(header={'a': _t(shape=[10 ** 19] * 5000)}, data=bytes(8)),
        r'span 8 bytes where its dtype and shape need more than the 8 of '),
    'a negative size': (
        dict(header={'a': _t(shape=(-2, ))}, data=bytes(8)),
        r'a shape that is not a list of sizes >= 0'),
    'a size that is not an int': (
        dict(header={'a': _t(shape=(True, 2.0))}, data=bytes(8)),
        r'a shape that is not a list of sizes'),
    'a huge integer': (
        dict(header=None, raw=b'{"a": {"dtype": "F32", "shape": [' +
             b'9' * 5000 + b'], "data_offsets": [0, 8]}}', data=bytes(8)),
        r'an integer of 5000 digits'),
    'a name given twice': (
        dict(header=None, raw=b'{"a": %s, "a": %s}' % (
            json.dumps(_t()).encode(), json.dumps(_t()).encode()),
             data=bytes(8)), r'a name given twice'),
    'not JSON': (dict(header=None, raw=b'{"a": [', data=bytes(8)),
                 r'a header that is not JSON'),
    'deep nesting': (dict(header=None, raw=b'{"a":' + b'[' * 100000,
                          data=b''), r'a header that is not JSON'),
    'not UTF-8': (dict(header=None, raw=b'{\xff}'), r'not UTF-8'),
    'an entry that is not an object': (
        dict(header={'a': [0, 8]}, data=bytes(8)),
        r'without exactly dtype, shape and data_offsets'),
    'extra keys in an entry': (
        dict(header={'a': dict(_t(), extra=1)}, data=bytes(8)),
        r'without exactly dtype, shape and data_offsets'),
    'metadata not strings': (
        dict(header={'__metadata__': {'x': 1}, 'a': _t()}, data=bytes(8)),
        r'__metadata__ that is not a map of strings'),
}


@pytest.mark.parametrize('case', list(BAD),
                         ids=[c.replace(' ', '_') for c in BAD])
def test_bad_files_are_refused_with_one_sentence(tmp_path, case):
    kwargs, message = BAD[case]
    path = _file(tmp_path / 'bad.safetensors', **kwargs)
    with pytest.raises(ValueError) as info:
        load_checkpoint_file(path)
    text = str(info.value)
    assert text.startswith(f"{path!r} is a .safetensors file that cannot be "
                           'read: it has ')
    assert len(text) < 400 and '\n' not in text
    assert re.search(message, text), text


def test_truncated_file_is_refused(tmp_path):
    path = _file(tmp_path / 'full.safetensors', {'a': _t(shape=(4, ),
                                                         offsets=(0, 16))},
                 data=bytes(16))
    data = open(path, 'rb').read()
    for cut in (len(data) - 1, 20, 9):
        with open(path, 'wb') as f:
            f.write(data[:cut])
        with pytest.raises(ValueError, match=r'cannot be read: it has .*'
                           r'truncated'):
            load_checkpoint_file(path)


def test_nothing_is_allocated_beyond_the_file(tmp_path):
    """A header that claims 2**62 bytes of float32 in a file of a few
    bytes fails in a child whose address space is capped at 2 GiB: the
    refusal comes before any allocation."""
    path = _file(tmp_path / 'huge.safetensors', {'a': _t(
        shape=(2 ** 60, ), offsets=(0, 2 ** 62))}, data=bytes(8))
    code = (
        'import resource, sys\n'
        'from rla_mmdet.checkpoint import load_checkpoint_file\n'
        'resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n'
        'try:\n'
        f'    load_checkpoint_file({path!r})\n'
        'except ValueError as exc:\n'
        '    print(exc)\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, osp.dirname(__file__)] + sys.path))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'of a data area of 8 bytes' in proc.stdout


def test_names_and_shapes_are_checked_against_the_backbone(tmp_path):
    model = RLAResNet(depth=18)
    weights = OrderedDict(model.state_dict())
    path = str(tmp_path / 'x.safetensors')
    safetensors_io.save_safetensors(
        OrderedDict(weights, **{'layer9.weight': torch.zeros(1)}), path)
    with pytest.raises(ValueError, match=r'does not fit RLAResNet.*'
                       r'unexpected keys: layer9.weight'):
        RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                          checkpoint=path)).init_weights()
    key = 'conv1.weight'
    safetensors_io.save_safetensors(
        OrderedDict(weights, **{key: torch.zeros(3, 3)}), path)
    with pytest.raises(ValueError, match=r'shape mismatches: conv1.weight: '
                       r'file \(3, 3\) vs model'):
        RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                          checkpoint=path)).init_weights()


# ------------------------------------------------------------ the format
def test_detected_by_content_never_torch_load(tmp_path, monkeypatch):
    weights = OrderedDict(a=torch.arange(4.), n=torch.tensor(3))
    data = safetensors_io.dump_safetensors(weights, dict(classes=('x', )))
    named_pth = tmp_path / 'weights.pth'
    named_pth.write_bytes(data)

    def refuse(*args, **kwargs):
        raise AssertionError('torch.load was called')

    monkeypatch.setattr(torch, 'load', refuse)
    loaded = load_checkpoint_file(str(named_pth))
    _same_tensors(loaded['state_dict'], weights)
    assert loaded['meta'] == dict(classes=['x'])
    # a pickle named .safetensors is a pickle: checked as one
    monkeypatch.undo()
    pickled = tmp_path / 'pickle.safetensors'
    torch.save(dict(state_dict=weights), str(pickled))
    _same_tensors(load_checkpoint_file(str(pickled))['state_dict'], weights)


def test_foreign_metadata_and_map_location(tmp_path):
    """A file of another writer (timm's ``format: pt``) loads; its strings
    are kept; map_location moves the tensors."""
    import safetensors.torch
    path = tmp_path / 'timm.safetensors'
    path.write_bytes(safetensors.torch.save(
        {'w': torch.ones(2)}, metadata={'format': 'pt', 'n': '3'}))
    loaded = load_checkpoint_file(str(path), map_location='meta')
    assert loaded['meta'] == {'format': 'pt', 'n': 3}
    assert loaded['state_dict']['w'].device.type == 'meta'
    with pytest.raises(TypeError, match='map_location for the .safetensors'):
        load_checkpoint_file(str(path), map_location=lambda s, loc: s)


def test_meta_that_json_cannot_hold_is_refused_when_writing(tmp_path):
    with pytest.raises(TypeError, match=r"meta\['when'\] cannot be stored in "
                       r'a .safetensors header'):
        safetensors_io.dump_safetensors({'a': torch.ones(1)},
                                        dict(when=object()))
    with pytest.raises(ValueError, match='holds only state_dict and meta, '
                       'not optimizer'):
        publish_checkpoint(
            _save_pth(tmp_path), str(tmp_path / 'o.pth'),
            ['state_dict', 'optimizer'], 'safetensors')


def _save_pth(tmp_path):
    path = str(tmp_path / 'in.pth')
    torch.save(dict(state_dict={'a': torch.ones(1)}, optimizer={}), path)
    return path


def test_shared_and_strided_tensors_are_written(tmp_path):
    base = torch.arange(12.).reshape(3, 4)
    weights = OrderedDict(a=base, view=base[1], t=base.t())
    path = str(tmp_path / 'x.safetensors')
    safetensors_io.save_safetensors(weights, path)
    _same_tensors(load_checkpoint_file(path)['state_dict'], weights)


def test_the_package_imports_without_the_library():
    code = ("import sys; sys.modules['safetensors'] = None  # not installed\n"
            'import rla_mmdet, rla_mmdet.checkpoint, rla_mmdet.converters\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_missing_library_says_what_to_install(tmp_path, monkeypatch):
    path = _file(tmp_path / 'x.safetensors', {'a': _t()}, data=bytes(8))
    monkeypatch.setitem(sys.modules, 'safetensors', None)
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)
    with pytest.raises(ImportError, match=r"needs safetensors, which is not "
                       r"installed; .*pip install 'safetensors>=0\.5\.3'"
                       ) as info:
        load_checkpoint_file(path)
    # not a ValueError: the loader deletes a download that fails with one
    assert not isinstance(info.value, ValueError)


def test_the_library_is_declared_and_pinned():
    assert 'safetensors>=0.5.3' in dependencies.install_requires()
    low, _ = dependencies.ON_USE['safetensors']
    pins = {}
    for name in ('lock.txt', 'lock-torch21.txt', 'lock-oldest.txt'):
        with open(osp.join(ROOT, 'requirements', name)) as f:
            pins[name] = [line.split('==')[1].strip() for line in f
                          if line.startswith('safetensors==')]
    assert pins['lock-oldest.txt'] == [low]  # the floor is the oldest pin
    assert all(len(p) == 1 for p in pins.values()), pins
    with open(osp.join(ROOT, 'requirements', 'runtime.txt')) as f:
        assert 'safetensors' in f.read().split()
