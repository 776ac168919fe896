"""The allow-list loader on every torch, and CheckpointIOHook in a Runner.

The restricted unpickler is what torch < 2.6 uses; it is tested here on the
installed torch whichever it is (``restricted=True``), so the main stack
checks it too.
"""
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from rla_mmdet import RLAResNet
from rla_mmdet.checkpoint import (UnsafeCheckpointError, get_state_dict,
                                  load_checkpoint_file)
from rla_mmdet.engine import checkpoint_io_enabled, restore_checkpoint_io
from rla_mmdet.engine.fileio import current_checkpoint_io


class _Payload:
    """Unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _SetsDoc:
    """Unpickling it would set the docstring of ``HistoryBuffer.mean``
    (a ``BUILD`` on a function that the allowed ``getattr`` returns)."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'mean'), (None, {
            '__doc__': 'changed by a pickle'
        }))


def test_restricted_loader_reads_what_torch_save_writes(tmp_path):
    model = RLAResNet(depth=18)
    data = dict(
        state_dict=model.state_dict(),
        meta=dict(dtype=torch.float16, device=torch.device('cpu'),
                  shape=torch.Size([2, 3]), ids={1, 2}, names=frozenset('a'),
                  raw=b'\x00\x01', classes=('a', 'b'), seed=np.int64(3),
                  array=np.arange(4, dtype=np.float32)),
        param=nn.Parameter(torch.ones(2)),
        half=torch.ones(3, dtype=torch.bfloat16),
        flags=torch.tensor([True, False]))
    for new_format in (True, False):  # the zip format and the legacy one
        path = tmp_path / f'file_{new_format}.pth'
        torch.save(data, path, _use_new_zipfile_serialization=new_format)
        loaded = load_checkpoint_file(path, restricted=True)
        for k, v in model.state_dict().items():
            assert torch.equal(loaded['state_dict'][k], v), k
        meta = loaded['meta']
        assert meta['dtype'] is torch.float16
        assert meta['device'] == torch.device('cpu')
        assert meta['shape'] == torch.Size([2, 3])
        assert meta['ids'] == {1, 2} and meta['names'] == frozenset('a')
        assert meta['raw'] == b'\x00\x01' and meta['seed'] == 3
        assert np.array_equal(meta['array'], np.arange(4))
        assert isinstance(loaded['param'], nn.Parameter)
        assert loaded['half'].dtype == torch.bfloat16
        assert loaded['flags'].tolist() == [True, False]


@pytest.mark.parametrize('payload', ['os.system', 'build'])
def test_restricted_loader_refuses_code_and_state_changes(tmp_path, payload):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    doc = HistoryBuffer.mean.__doc__
    obj = _Payload(marker) if payload == 'os.system' else _SetsDoc()
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': obj}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*"
                       r"evil\.pth.*Details: refused"):
        load_checkpoint_file(path, restricted=True)
    assert not marker.exists()
    assert HistoryBuffer.mean.__doc__ == doc


# ------------------------------------------------------- a Runner with it
class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels))**2).mean())
        return out


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)),
                    labels=torch.tensor([float(i)]))


class _Probe:
    """Records whether the checkpoint IO is on when a checkpoint is saved."""
    seen = []

    def __init__(self):
        from mmengine.hooks import Hook

        class Probe(Hook):
            priority = 'LOWEST'

            def after_train_epoch(self, runner):
                _Probe.seen.append(checkpoint_io_enabled())

        self.hook = Probe()


def _runner(work_dir, max_epochs, **kwargs):
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        custom_hooks=[dict(type='CheckpointIOHook'), _Probe().hook],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
        **kwargs)


def test_runner_with_the_hook_resumes_and_refuses_a_crafted_file(tmp_path):
    _Probe.seen.clear()
    work_dir = tmp_path / 'run'
    _runner(work_dir, 1).train()
    assert _Probe.seen == [True]  # on while the checkpoint was written
    assert not checkpoint_io_enabled()  # and off after the run
    first = load_checkpoint_file(work_dir / 'epoch_1.pth', restricted=True)
    assert first['meta']['iter'] == 2
    assert isinstance(first['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)

    # Resume: the Runner loads through the allow-list loader.
    runner = _runner(work_dir, 2, resume=True,
                     load_from=str(work_dir / 'epoch_1.pth'))
    runner.train()
    assert runner.iter == 4 and runner.epoch == 2
    second = get_state_dict(
        load_checkpoint_file(work_dir / 'epoch_2.pth', restricted=True))
    assert not torch.equal(second['linear.weight'],
                           first['state_dict']['linear.weight'])

    # A crafted load_from is refused by the hook's loader, on every torch.
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=OrderedDict(
        (k, v) for k, v in first['state_dict'].items()),
                    payload=_Payload(marker)), evil)
    before = current_checkpoint_io()
    try:
        with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth'):
            _runner(tmp_path / 'other', 1, load_from=str(evil)).train()
    finally:
        # MMEngine calls no after_run for a run that raised, so the hook's
        # IO stays on; put MMEngine's back for the tests that follow.
        restore_checkpoint_io(before)
    assert not marker.exists()
