"""The allow-list loader on every torch, and CheckpointIOHook in a Runner.

The restricted unpickler is what torch < 2.6 uses; it is tested here on the
installed torch whichever it is (``restricted=True``), so the main stack
checks it too. So is the refusal of TorchScript archives, which torch.load
would hand to torch.jit.load on either route.
"""
import os
import subprocess
import sys
import zipfile
from collections import OrderedDict
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from rla_mmdet import RLAResNet
from rla_mmdet.checkpoint import (WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                                  UnsafeCheckpointError, get_state_dict,
                                  load_checkpoint_file)
from rla_mmdet.converters import imagenet_to_mmdet, mmdet2_to_mmdet3
from rla_mmdet.engine import (checkpoint_io_enabled, enable_checkpoint_io,
                              restore_checkpoint_io)
from rla_mmdet.engine.fileio import current_checkpoint_io
from helpers import load_tool

pytestmark = pytest.mark.core


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
                       r"evil\.pth.*\(refused"):
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


# ------------------------------------------------------ TorchScript archives
#: What the TorchScript ``__setstate__`` of :class:`_LoudOnLoad` prints.
SETSTATE_MARKER = 'rla-mmdet-test: TorchScript __setstate__ ran'

#: The sentence every loader raises for the archive.
TORCHSCRIPT_REFUSED = (r"refused to load '.*scripted\.pth': it is a "
                       r'TorchScript archive .*could run code.*torch\.jit'
                       r'\.load')


class _LoudOnLoad(nn.Module):
    """A module whose TorchScript ``__setstate__`` prints
    :data:`SETSTATE_MARKER`; ``torch.jit.load`` runs it."""

    def __init__(self):
        super().__init__()
        self.register_buffer('scale', torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        print('rla-mmdet-test: TorchScript __setstate__ ran')
        self.scale = state[0]
        self.training = state[1]


@pytest.fixture
def scripted(tmp_path):
    """A TorchScript archive (``torch.jit.script`` + ``torch.jit.save``)
    named like a checkpoint."""
    path = tmp_path / 'scripted.pth'
    torch.jit.save(torch.jit.script(_LoudOnLoad()), str(path))
    return path


def test_torchscript_archive_is_refused_before_its_code_runs(scripted):
    # In a fresh process, whose whole output is captured: every route of
    # the loader refuses the archive, then torch.jit.load opens it, which
    # shows that the marker is printed when the archive's code runs.
    routes = [True, None] + ([False] if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST
                             else [])
    script = '\n'.join([
        'import torch',
        'from rla_mmdet.checkpoint import UnsafeCheckpointError, '
        'load_checkpoint_file',
        f'for restricted in {routes!r}:',
        '    try:',
        f'        load_checkpoint_file({str(scripted)!r}, '
        'restricted=restricted)',
        '    except UnsafeCheckpointError as exc:',
        "        print('REFUSED', restricted, exc, flush=True)",
        "print('LOADERS DONE', flush=True)",
        f'torch.jit.load({str(scripted)!r})',
    ])
    out = subprocess.run([sys.executable, '-c', script],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:]
    lines = out.stdout.splitlines()
    refused = [line for line in lines if line.startswith('REFUSED')]
    assert [line.split()[1] for line in refused] == [str(r) for r in routes]
    for line in refused:
        assert 'TorchScript archive' in line and 'torch.jit.load' in line
    # Printed once: by torch.jit.load, after the loaders.
    assert out.stdout.count(SETSTATE_MARKER) == 1, out.stdout[-2000:]
    assert lines.index('LOADERS DONE') < lines.index(SETSTATE_MARKER)


def test_torchscript_archive_through_every_loader(scripted, tmp_path,
                                                  capfd):
    # init_cfg Pretrained
    model = RLAResNet(depth=18, init_cfg=dict(type='Pretrained',
                                              checkpoint=str(scripted)))
    with pytest.raises(UnsafeCheckpointError, match=TORCHSCRIPT_REFUSED):
        model.init_weights()
    # MMEngine's loader as tools/test.py and tools/demo.py switch it
    before = enable_checkpoint_io()
    try:
        with pytest.raises(UnsafeCheckpointError, match=TORCHSCRIPT_REFUSED):
            from mmengine.runner.checkpoint import load_checkpoint
            load_checkpoint(nn.Linear(2, 1), str(scripted))
    finally:
        restore_checkpoint_io(before)
    # load_from of a Runner with CheckpointIOHook (--resume takes this
    # loader too)
    before = current_checkpoint_io()
    try:
        with pytest.raises(UnsafeCheckpointError, match=TORCHSCRIPT_REFUSED):
            _runner(tmp_path / 'run', 1, load_from=str(scripted)).train()
    finally:
        restore_checkpoint_io(before)
    # both converters, as functions and as tools
    dst = tmp_path / 'out.pth'
    with pytest.raises(UnsafeCheckpointError, match=TORCHSCRIPT_REFUSED):
        imagenet_to_mmdet(str(scripted), str(dst))
    with pytest.raises(UnsafeCheckpointError, match=TORCHSCRIPT_REFUSED):
        mmdet2_to_mmdet3(str(scripted), str(dst), configs_dir=str(tmp_path))
    for tool in ('rla_imagenet_to_mmdet', 'rla_mmdet2_to_mmdet3'):
        main = load_tool(f'model_converters/{tool}.py').main
        with pytest.raises(UnsafeCheckpointError,
                           match=TORCHSCRIPT_REFUSED):
            main([str(scripted), str(dst)])
    assert not dst.exists()
    assert SETSTATE_MARKER not in ''.join(capfd.readouterr())


def test_zip_records_torch_save_does_not_write_are_refused(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=OrderedDict(w=torch.ones(2))), good)
    assert torch.equal(load_checkpoint_file(good)['state_dict']['w'],
                       torch.ones(2))
    with zipfile.ZipFile(good) as archive:
        names = archive.namelist()
        folder = names[0].split('/')[0]
        records = {name: archive.read(name) for name in names}
    # An extra record, as torch.jit.save writes, in a plain checkpoint
    extra = tmp_path / 'extra.pth'
    with zipfile.ZipFile(extra, 'w') as archive:
        for name, data in records.items():
            archive.writestr(name, data)
        archive.writestr(f'{folder}/extra/notes.txt', b'hello')
    with pytest.raises(UnsafeCheckpointError,
                       match=r"extra\.pth': it is a zip archive with "
                       r'records that torch\.save does not write '
                       r'\(extra/notes\.txt\)'):
        load_checkpoint_file(extra)
    # A zip without the pickle is no checkpoint
    empty = tmp_path / 'no_pickle.pth'
    with zipfile.ZipFile(empty, 'w') as archive:
        archive.writestr(f'{folder}/version', b'3\n')
    with pytest.raises(ValueError, match=r'no_pickle\.pth.*not a readable'):
        load_checkpoint_file(empty)
