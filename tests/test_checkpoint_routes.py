"""The other routes a checkpoint takes into a model: the converters, and
MMDetection's inference API with this repository's configs.

- The converters build a model from numbers a file claims (hidden-state
  channels from a shape, classes from ``meta.CLASSES``); each number is
  checked before anything is built. The files (``tests/pickle_attacks.py``)
  are converted in a subprocess whose address space is capped a little
  above what its imports took, so a regression that builds from the claim
  fails with ``MemoryError`` instead of taking the machine's memory.
- ``mmdet.apis.init_detector`` and ``DetInferencer`` run no hooks: the
  configs' ``custom_imports`` name ``rla_mmdet.checked_loading``, which
  routes MMEngine's loaders through the checked loader. Checked in a fresh
  interpreter, for a local file and a URL served from 127.0.0.1.
"""
import os
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict

import pytest
import torch

import pickle_attacks as attacks
from helpers import ROOT, LocalServer
from rla_mmdet.converters import (MAX_CLASSES, MAX_RLA_CHANNEL,
                                  check_tensor_sizes, infer_backbone,
                                  mmdet2_to_mmdet3)

pytestmark = pytest.mark.core

FASTER_R50 = os.path.join(ROOT,
                          'configs/faster_rcnn/faster-rcnn_rla-r50_fpn_1x_coco.py')
SHAPES = os.path.join(ROOT, 'configs/shapes/mask-rcnn_rla-r18_fpn_shapes.py')

#: Caps the address space of the process at what it uses now plus
#: ``headroom`` bytes (Linux).
_CAP = '''
import resource
def _cap(headroom):
    with open('/proc/self/status') as f:
        size = next(int(line.split()[1]) * 1024 for line in f
                    if line.startswith('VmSize:'))
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom,) * 2)
'''

#: Converts ``src`` (argv 2) with converter argv 1 into ``dst`` (argv 3),
#: capped at 512 MiB above its imports.
_CONVERT = _CAP + '''
import sys, time
from rla_mmdet import converters
import mmdet.models  # what the detector converter builds with
kind, src, dst = sys.argv[1:4]
_cap(512 << 20)
start = time.perf_counter()
try:
    if kind == 'imagenet':
        converters.imagenet_to_mmdet(src, dst)
    else:
        converters.mmdet2_to_mmdet3(src, dst, config=sys.argv[4])
    print('CONVERTED')
except ValueError as exc:
    print('REFUSED', type(exc).__name__, str(exc).replace(chr(10), ' '))
print('SECONDS', time.perf_counter() - start)
'''


def _convert_capped(*args) -> str:
    out = subprocess.run(
        [sys.executable, '-c', _CONVERT] + [str(a) for a in args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, cwd=ROOT)
    # a MemoryError (or a kill) is a regression: the claim was built
    assert out.returncode == 0, out.stdout[-3000:]
    return out.stdout


def _one_sentence(message: str) -> None:
    assert len(message) < 500 and message.endswith('.'), message
    assert '. ' not in message.replace('e.g. ', ''), message


def _refusal(stdout: str) -> str:
    lines = stdout.splitlines()
    refused = [line for line in lines if line.startswith('REFUSED ')]
    assert refused, stdout[-3000:]
    seconds = float(lines[-1].split()[1])
    assert seconds < 20, stdout[-3000:]  # no walk over the claimed elements
    return refused[0].split(' ', 2)[2]


# ------------------------------------------------------------- converters
def test_imagenet_file_claiming_a_wide_hidden_state_is_refused(tmp_path):
    src, dst = tmp_path / 'wide.pth.tar', tmp_path / 'out.pth'
    attacks.write_wide_hidden_state(str(src), channels=100000)
    assert src.stat().st_size < 4096
    message = _refusal(_convert_capped('imagenet', src, dst))
    assert 'wide.pth.tar' in message, message
    # The loader refuses the stride-0 view before the converter's bound
    # (tested on its own below) is reached; either is one refusal.
    assert 'repeats its data' in message or 'hidden-state' in message, \
        message
    assert len(message) < 600 and message.endswith('.'), message
    assert not dst.exists()


def test_detector_file_naming_50000_classes_is_refused(tmp_path):
    src, dst = tmp_path / 'many.pth', tmp_path / 'out.pth'
    attacks.write_many_classes(str(src), num_classes=50000)
    assert src.stat().st_size < 1 << 20
    message = _refusal(_convert_capped('mmdet2', src, dst, FASTER_R50))
    assert 'many.pth' in message and 'meta.CLASSES' in message, message
    assert '50000 classes' in message and str(MAX_CLASSES) in message
    _one_sentence(message)
    assert not dst.exists()


def test_shapes_are_checked_before_a_backbone_is_inferred():
    """The converters' own bounds, on a state dict in memory (the loader
    may refuse the file before they are reached)."""
    one = torch.zeros(1)
    state = OrderedDict(attacks.r50_names('', one))
    state['conv_outs.0.weight'] = one.expand(100000, 256, 1, 1)
    with pytest.raises(ValueError, match=r"'w\.pth' has 100000 hidden-state "
                       rf'channels .*at most {MAX_RLA_CHANNEL}'):
        infer_backbone(state, filename='w.pth')
    with pytest.raises(ValueError, match=r"'w\.pth' claims 102400000 "
                       r"bytes for the tensor 'conv_outs\.0\.weight', more "
                       r'than the 1024 bytes of the file'):
        check_tensor_sizes(state, 1024, repr('w.pth'))
    state['conv_outs.0.weight'] = one.expand(48, 256, 1, 1)
    assert infer_backbone(state)['rla_channel'] == 48
    check_tensor_sizes(state, 48 * 256 * 4, 'w')  # exactly fits

    mobile = {'recurrent_dsconvs.0.weight': one.expand(100000, 1, 3, 3)}
    with pytest.raises(ValueError, match='100000 hidden-state channels'):
        infer_backbone(mobile)
    mobile = {'recurrent_dsconvs.0.weight': one.expand(32, 1, 3, 3),
              'conv1.0.weight': one.expand(32 * 1000, 3, 3, 3)}
    with pytest.raises(ValueError, match='stem of 32000 channels'):
        infer_backbone(mobile)


@pytest.mark.parametrize('classes, match', [
    ('abc', 'no class names'),  # a string is not a list of names
    (['a' * 10000], r'the longest of 10000 characters'),
    ([f'c{i}' for i in range(MAX_CLASSES + 1)], f'{MAX_CLASSES + 1} classes'),
])
def test_class_names_are_checked_before_a_detector_is_built(
        tmp_path, classes, match):
    src = tmp_path / 'det.pth'
    one = torch.zeros(1)
    state = attacks.r50_names('backbone.', one)
    state['roi_head.bbox_head.fc_cls.weight'] = one
    torch.save(dict(state_dict=state,
                    meta=dict(mmdet_version='2.28.2', CLASSES=classes)), src)
    with pytest.raises(ValueError, match=match) as info:
        mmdet2_to_mmdet3(str(src), str(tmp_path / 'out.pth'),
                         config=FASTER_R50)
    _one_sentence(str(info.value))


# ---------------------------------------------- mmdet's inference API
#: In a fresh interpreter: init_detector and DetInferencer, given a config
#: path of this repository, on the files named in argv (JSON).
_INFER = '''
import json, sys
import torch
from mmengine.runner.checkpoint import CheckpointLoader
import rla_mmdet
plain = dict(CheckpointLoader._schemes)
from mmdet.apis import DetInferencer, init_detector
from rla_mmdet.checkpoint import UnsafeCheckpointError
a = json.loads(sys.argv[1])
print('PLAIN IMPORT', dict(CheckpointLoader._schemes) == plain)

def equal(model):
    own = model.state_dict()
    good = torch.load(a['good'], map_location='cpu', weights_only=False)
    return all(torch.equal(own[k], v) for k, v in good['state_dict'].items())

def attempt(route, make):
    try:
        model = make()
        print(route, 'LOADED', equal(model))
    except UnsafeCheckpointError as exc:
        print(route, 'REFUSED', str(exc).replace(chr(10), ' ')[:300])
    except Exception as exc:
        print(route, 'FAILED', type(exc).__name__, str(exc)[:300])

for name in ('good', 'evil', 'evil_url'):
    attempt('init_detector ' + name, lambda: init_detector(
        a['config'], a[name], device='cpu'))
    attempt('DetInferencer ' + name, lambda: DetInferencer(
        model=a['config'], weights=a[name], device='cpu').model)
import rla_mmdet.checked_loading as checked
from mmengine.fileio.backends import LocalBackend
from mmengine.fileio.backends import registry_utils as backends
from mmengine.registry import HOOKS
print('ENABLED', checked.enabled())
# a run's CheckpointIOHook keeps the switch, and puts back the backend
hook = HOOKS.build(dict(type='CheckpointIOHook'))
hook.before_run(None)
hook.after_run(None)
print('HOOK KEEPS', checked.enabled(),
      backends.prefix_to_backends[''] is LocalBackend)
checked.disable()
hook.before_run(None)
checked.enable()  # switched on during a run: kept after it
hook.after_run(None)
print('HOOK KEEPS LATER', checked.enabled())
checked.disable()
print('DISABLED', dict(CheckpointLoader._schemes) == plain)
checked.enable()
print('ENABLED AGAIN', checked.enabled())
'''


@pytest.fixture
def served(tmp_path):
    root = tmp_path / 'served'
    root.mkdir()
    s = LocalServer(str(root))
    yield s
    s.close()


def _good_checkpoint(path) -> None:
    """Random weights for the shapes config's model (as a run saves)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    cfg = Config.fromfile(SHAPES)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(0)
    state = OrderedDict(
        (k, torch.randn(v.shape, generator=g) if v.is_floating_point()
         else v) for k, v in model.state_dict().items())
    torch.save(dict(state_dict=state, meta=dict(
        dataset_meta=dict(classes=cfg.metainfo['classes']))), path)


def test_init_detector_and_inferencer_load_through_the_checked_loader(
        tmp_path, served):
    import json
    marker = tmp_path / 'pwned'
    good, evil = tmp_path / 'good.pth', tmp_path / 'evil.pth'
    _good_checkpoint(good)
    attacks.write_reduce_payload(str(evil), str(marker))
    attacks.write_reduce_payload(os.path.join(served.root, 'evil.pth'),
                                 str(marker))
    args = dict(config=SHAPES, good=str(good), evil=str(evil),
                evil_url=served.url('evil.pth'))
    env = dict(os.environ, TORCH_HOME=str(tmp_path / 'torch_home'))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, '-c', _INFER, json.dumps(args)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=600, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    lines = [line for line in out.stdout.splitlines()
             if line.startswith(('PLAIN', 'init_', 'DetInf', 'ENABLED',
                                 'DISABLED', 'HOOK'))]
    assert not marker.exists(), out.stdout[-3000:]
    assert lines[0] == 'PLAIN IMPORT True'
    for api in ('init_detector', 'DetInferencer'):
        assert f'{api} good LOADED True' in lines, out.stdout[-3000:]
        for name in ('evil', 'evil_url'):
            line = next(x for x in lines if x.startswith(f'{api} {name} '))
            assert line.startswith(f'{api} {name} REFUSED refused to load '
                                   ), out.stdout[-3000:]
    assert lines[-5:] == ['ENABLED True', 'HOOK KEEPS True True',
                          'HOOK KEEPS LATER True', 'DISABLED True',
                          'ENABLED AGAIN True'], lines
    assert time.perf_counter() - start < 300
