"""Loading published-format and MMEngine checkpoints, and refusing bad ones."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from rla_mmdet import RLAECANet, RLAResNet
from rla_mmdet.checkpoint import (WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                                  UnsafeCheckpointError, adapt_state_dict,
                                  load_checkpoint_file)
from rla_mmdet.engine import enable_checkpoint_io, restore_checkpoint_io

pytestmark = pytest.mark.core

#: The two ways load_checkpoint_file enforces the allow-list: the package's
#: restricted unpickler (the default, every torch) and
#: torch.load(weights_only=True) with the package's constructors passed for
#: the call (torch >= 2.6).
ROUTES = [
    pytest.param(True, id='restricted_unpickler'),
    pytest.param(False, id='weights_only', marks=pytest.mark.skipif(
        not WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
        reason='safe_globals with (function, name) needs torch >= 2.6')),
]


def authors_imagenet_checkpoint(path, cls=RLAResNet, depth=50, seed=1):
    """Write a file in the layout of the authors' ImageNet ``*.pth.tar``.

    Keys of a DistributedDataParallel model (``module.``), the classifier
    (``bn2``, ``fc``) and the last hidden-state norm, plus the training
    script's ``epoch``/``arch``/``best_acc1``/``optimizer`` entries.
    Returns the backbone's expected tensors (without ``module.``).
    """
    torch.manual_seed(seed)
    model = cls(depth=depth)
    expected = OrderedDict(
        (k, torch.randn(v.shape) if v.is_floating_point() else v.clone())
        for k, v in model.state_dict().items())
    last = len(model.stages) - 1
    n = len(model.stages[last])
    extra = OrderedDict()
    extra[f'stage_bns.{last}.{n - 1}.weight'] = torch.rand(32)
    extra[f'stage_bns.{last}.{n - 1}.bias'] = torch.rand(32)
    extra[f'stage_bns.{last}.{n - 1}.running_mean'] = torch.rand(32)
    extra[f'stage_bns.{last}.{n - 1}.running_var'] = torch.rand(32)
    extra[f'stage_bns.{last}.{n - 1}.num_batches_tracked'] = torch.tensor(7)
    extra['bn2.weight'] = torch.rand(32)
    extra['bn2.bias'] = torch.rand(32)
    extra['bn2.running_mean'] = torch.rand(32)
    extra['bn2.running_var'] = torch.rand(32)
    extra['bn2.num_batches_tracked'] = torch.tensor(7)
    extra['fc.weight'] = torch.rand(1000, model.stage_channels[-1] + 32)
    extra['fc.bias'] = torch.rand(1000)
    state_dict = OrderedDict(
        ('module.' + k, v) for k, v in list(expected.items()) +
        list(extra.items()))
    torch.save(
        dict(
            epoch=100,
            arch='rla_resnet50',
            state_dict=state_dict,
            best_acc1=torch.tensor(77.17),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1, params=[])])),
        path)
    return expected


def assert_bit_identical(model, expected):
    own = model.state_dict()
    assert set(own) == set(expected)
    for k, v in expected.items():
        assert torch.equal(own[k], v), k


@pytest.mark.parametrize('cls', [RLAResNet, RLAECANet])
def test_authors_imagenet_checkpoint_loads_bit_identical(tmp_path, cls):
    path = tmp_path / 'resnet50_rla_2283.pth.tar'
    expected = authors_imagenet_checkpoint(path, cls)
    model = cls(
        depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_bit_identical(model, expected)


def test_detector_checkpoint_with_backbone_prefix(tmp_path):
    backbone = authors_imagenet_checkpoint(tmp_path / 'x.pth.tar', depth=50)
    state_dict = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    state_dict['backbone.stage_bns.3.2.weight'] = torch.rand(32)
    state_dict['neck.lateral_convs.0.conv.weight'] = torch.rand(256, 256, 1, 1)
    path = tmp_path / 'faster_rcnn_r50rla_fpn_1x_coco_388.pth'
    torch.save(dict(state_dict=state_dict,
                    meta=dict(mmdet_version='2.11.0',
                              CLASSES=('person', 'car'))), path)
    model = RLAResNet(
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=str(path),
                      prefix='backbone.'))
    model.init_weights()
    assert_bit_identical(model, backbone)
    # Without the prefix the loader says what to do.
    model = RLAResNet(depth=50, init_cfg=dict(type='Pretrained',
                                              checkpoint=str(path)))
    with pytest.raises(ValueError, match="prefix='backbone.'"):
        model.init_weights()


def test_plain_load_state_dict_ignores_unbuilt_modules(tmp_path):
    model = RLAResNet(depth=18)
    state = model.state_dict()
    state['stage_bns.3.1.weight'] = torch.ones(32)
    state['fc.weight'] = torch.ones(1000, 544)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # the same fitting, as a function of the checkpoint package
    result = model.load_state_dict(adapt_state_dict(model, state),
                                   strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_wrong_architecture_is_refused_with_the_first_keys(tmp_path):
    eca = tmp_path / 'ecanet50_rla_2215.pth.tar'
    authors_imagenet_checkpoint(eca, RLAECANet)
    with pytest.raises(ValueError, match=r'ecanet50_rla_2215.*\.eca\.conv'
                       r".*type='RLAECANet'"):
        RLAResNet(depth=50, init_cfg=dict(type='Pretrained',
                                          checkpoint=str(eca))).init_weights()
    plain = tmp_path / 'resnet50_rla_2283.pth.tar'
    authors_imagenet_checkpoint(plain, RLAResNet)
    with pytest.raises(ValueError, match=r'missing keys: .*eca\.conv'):
        RLAECANet(depth=50, init_cfg=dict(
            type='Pretrained', checkpoint=str(plain))).init_weights()
    r101 = tmp_path / 'resnet101_rla_2148.pth.tar'
    authors_imagenet_checkpoint(r101, RLAResNet, depth=101)
    with pytest.raises(ValueError, match=r'unexpected keys: stages\.2\.6\.'
                       r'.*depth matches'):
        RLAResNet(depth=50, init_cfg=dict(
            type='Pretrained', checkpoint=str(r101))).init_weights()


def test_plain_resnet_checkpoint_is_refused(tmp_path):
    from mmdet.models.backbones import ResNet
    path = tmp_path / 'resnet50.pth'
    torch.save(ResNet(depth=50).state_dict(), path)
    model = RLAResNet(depth=50, init_cfg=dict(type='Pretrained',
                                              checkpoint=str(path)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='plain ResNet checkpoint'):
        model.init_weights()
    # nothing was half-loaded
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(tmp_path / 'nope.pth')
    good = tmp_path / 'good.pth'
    authors_imagenet_checkpoint(good, depth=18)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r'truncated\.pth.*not a readable'):
        load_checkpoint_file(truncated)
    text = tmp_path / 'notes.txt'
    text.write_text('hello, this is not a checkpoint\n')
    with pytest.raises(ValueError, match=r'notes\.txt.*not a readable'):
        load_checkpoint_file(text)
    tensor = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match='not a checkpoint dict'):
        load_checkpoint_file(tensor)
    with pytest.raises(TypeError, match='file path'):
        load_checkpoint_file(123)


def mmengine_style_checkpoint(path):
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(1.25))
    hub.update_info('iter', 7)
    state = dict(
        meta=dict(epoch=1, iter=7, seed=np.int64(0),
                  dataset_meta=dict(classes=('a', 'b'))),
        state_dict=OrderedDict(w=torch.ones(2)),
        message_hub=hub.state_dict(),
        param_schedulers=[dict(milestones=__import__('collections').Counter(
            [8, 11]), gamma=0.1)],
        extra=np.arange(3))
    torch.save(state, path)
    return state


@pytest.mark.parametrize('restricted', ROUTES)
def test_mmengine_checkpoints_load_with_the_allow_list(tmp_path, restricted):
    path = tmp_path / 'epoch_1.pth'
    mmengine_style_checkpoint(path)
    loaded = load_checkpoint_file(path, restricted=restricted)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.current() == 1.25
    assert loaded['meta']['seed'] == 0
    assert loaded['param_schedulers'][0]['milestones'][11] == 1
    assert np.array_equal(loaded['extra'], np.arange(3))
    # MMEngine's loader reads it too, with the package's checkpoint IO on
    # (CheckpointIOHook, the tools).
    before = enable_checkpoint_io()
    try:
        assert _load_checkpoint(str(path))['meta']['iter'] == 7
    finally:
        restore_checkpoint_io(before)


@pytest.mark.skipif(not WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                    reason='torch < 2.6 does not default to weights_only')
def test_plain_torch_load_is_left_to_torch(tmp_path):
    # torch >= 2.6 defaults to weights_only=True. Importing rla_mmdet
    # (done above) adds nothing to torch's process-wide list, so a plain
    # torch.load refuses MMEngine's HistoryBuffer as it does without the
    # package (and its numpy values); load_checkpoint_file (or
    # CheckpointIOHook for MMEngine's own loads) is the way to read such a
    # file.
    path = tmp_path / 'epoch_1.pth'
    mmengine_style_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError,
                       match='Weights only load failed'):
        torch.load(path)
    loaded = load_checkpoint_file(path)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == \
        1.25


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('restricted', ROUTES)
def test_crafted_pickle_never_runs(tmp_path, restricted):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'payload': _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*refused|'
                       r'refused.*evil\.pth'):
        load_checkpoint_file(path, restricted=restricted)
    assert not marker.exists()


def test_crafted_pickle_through_every_loader(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'payload': _RunsCode(marker)}, path)
    if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:  # torch's default refuses it too
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
    # MMEngine's loader, as the tools and CheckpointIOHook switch it.
    before = enable_checkpoint_io()
    try:
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(torch.nn.Linear(1, 1), str(path))
    finally:
        restore_checkpoint_io(before)
    model = RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                              checkpoint=str(path)))
    with pytest.raises(UnsafeCheckpointError):
        model.init_weights()
    assert not marker.exists()


def test_fresh_process_loads_a_history_buffer_checkpoint(tmp_path):
    """HistoryBuffer's statistics registry is empty until one is created;
    a new process (tools/test.py) must still load a training checkpoint."""
    import subprocess
    import sys
    path = tmp_path / 'epoch_1.pth'
    mmengine_style_checkpoint(path)
    script = ('from rla_mmdet.checkpoint import load_checkpoint_file\n'
              f'c = load_checkpoint_file({str(path)!r})\n'
              "print(c['message_hub']['log_scalars']['train/loss'].mean())")
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == '1.375'
