"""Hand-made checkpoints that try to run code, write files or crash the
process are refused on every route, and nothing they aim at happens.

Each attack (``tests/pickle_attacks.py``) is loaded in a fresh process,
through ``load_checkpoint_file`` on each route and through MMEngine's
loader with this package's checkpoint IO switched on; a crash shows as
the process's exit status. The guards are also tested one by one, each on
a file that only that guard stops.
"""
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import pickle_attacks as attacks
from rla_mmdet.checkpoint import (WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                                  UnsafeCheckpointError, load_checkpoint_file)
from rla_mmdet.checkpoint.allow_list import NUMPY_KINDS

pytestmark = pytest.mark.core

#: ``restricted=`` of each route of load_checkpoint_file on this torch.
ROUTES = {'restricted': True, 'default': None}
if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:
    ROUTES['weights_only'] = False

_LOAD_EVERY_ROUTE = '''
import sys
from mmengine.runner.checkpoint import CheckpointLoader
from rla_mmdet.checkpoint import load_checkpoint_file
from rla_mmdet.engine import enable_checkpoint_io
path, routes = sys.argv[1], eval(sys.argv[2])
for route, restricted in list(routes.items()) + [('mmengine', None)]:
    try:
        if route == 'mmengine':
            enable_checkpoint_io()
            out = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        else:
            out = load_checkpoint_file(path, restricted=restricted)
        print('LOADED', route, repr(out)[:300], flush=True)
    except Exception as exc:
        print('REFUSED', route, type(exc).__name__,
              str(exc).replace(chr(10), ' ')[:400], flush=True)
'''


def _load_in_a_subprocess(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', _LOAD_EVERY_ROUTE,
         str(path), repr(ROUTES)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)


@pytest.mark.parametrize('name', [name for name, _ in attacks.ATTACKS])
def test_attack_is_refused_on_every_route_and_does_nothing(tmp_path, name):
    marker = tmp_path / 'marker'
    victim = attacks.victim_file(str(tmp_path))
    before = os.stat(victim)
    path = tmp_path / 'attack.pth'
    attacks.write(name, str(path),
                  str(marker) if name == 'history_buffer_chain' else victim)
    out = _load_in_a_subprocess(path)
    # No crash (a forged pointer would end it with SIGSEGV, -11).
    assert out.returncode == 0, out.stdout[-3000:]
    lines = [line for line in out.stdout.splitlines()
             if line.startswith(('LOADED', 'REFUSED'))]
    assert [line.split()[1] for line in lines] == list(ROUTES) + ['mmengine']
    for line in lines:
        assert line.startswith('REFUSED') and \
            line.split()[2] == 'UnsafeCheckpointError', out.stdout[-3000:]
        assert "refused to load '" in line and 'attack.pth' in line
    assert not marker.exists()
    after = os.stat(victim)
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode, before.st_uid, before.st_gid)
    with open(victim) as f:
        assert f.read() == 'mine\n'


def test_import_leaves_torch_allow_list_alone(tmp_path):
    """``import rla_mmdet`` and its loads add nothing to torch's
    process-wide ``weights_only`` list; on torch >= 2.6 a plain
    ``torch.load(weights_only=True)`` still refuses the chain file."""
    chain = tmp_path / 'chain.pth'
    marker = tmp_path / 'marker'
    attacks.write_history_buffer_chain(str(chain), str(marker))
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=OrderedDict(w=torch.ones(2)),
                    meta=dict(seed=np.int64(3)),
                    hub=dict(loss=HistoryBuffer([1.0], [1]))), good)
    script = f'''
import torch
# What rla_mmdet imports may add entries of their own (torch >= 2.10 adds
# its DTensor types when torch.distributed.tensor is imported): import them
# first, so that any difference is the package's.
import mmdet.models, mmengine.runner
get = getattr(torch.serialization, 'get_safe_globals', lambda: [])
before = sorted(map(repr, get()))
import rla_mmdet
after_import = sorted(map(repr, get()))
from rla_mmdet.checkpoint import load_checkpoint_file
for restricted in {list(ROUTES.values())!r}:
    c = load_checkpoint_file({str(good)!r}, restricted=restricted)
    assert c['hub']['loss'].current() == 1.0 and c['meta']['seed'] == 3
after = sorted(map(repr, get()))
for when, now in (('import', after_import), ('loads', after)):
    print('UNCHANGED' if now == before else f'CHANGED by {{when}}: {{now}}')
if {WEIGHTS_ONLY_ENFORCES_ALLOW_LIST!r}:
    try:
        torch.load({str(chain)!r}, weights_only=True)
        print('LOADED')
    except Exception as exc:
        print('TORCH REFUSED', type(exc).__name__)
'''
    out = subprocess.run([sys.executable, '-c', script],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    lines = out.stdout.splitlines()
    assert lines.count('UNCHANGED') == 2, out.stdout[-3000:]
    if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:
        assert 'TORCH REFUSED UnpicklingError' in lines, out.stdout[-3000:]
    assert not marker.exists()


# ------------------------------------------------------ the guards, one by one
def _save_program(path, program: attacks.Program) -> None:
    attacks.write_torch_zip(str(path), program.data())


def _history_buffer_with_statistic(path, name: str) -> None:
    """A real HistoryBuffer pickled with an extra statistics method
    ``name`` (an alias of ``min``), as MMEngine >= 0.8 writes the ones a
    process registered."""
    buffer = HistoryBuffer([1.0, 3.0], [1, 1], max_length=5)
    methods = HistoryBuffer._statistics_methods
    methods[name] = HistoryBuffer.min
    buffer.__dict__['statistics_methods'] = dict(methods)
    try:
        torch.save(dict(state_dict=OrderedDict(w=torch.ones(1)),
                        hub=dict(loss=buffer)), path)
    finally:
        del methods[name]
        buffer.__dict__.pop('statistics_methods', None)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_history_buffer_is_rebuilt_without_its_setstate(tmp_path, restricted):
    path = tmp_path / 'hub.pth'
    _history_buffer_with_statistic(path, 'extra_statistic')
    shared = dict(HistoryBuffer._statistics_methods)
    loaded = load_checkpoint_file(path, restricted=restricted)['hub']['loss']
    assert type(loaded) is HistoryBuffer
    assert loaded.max_length == 5 and loaded.mean() == 2.0
    assert loaded.data[1].tolist() == [1, 1]
    # The dict every HistoryBuffer shares is as it was: the file's names
    # were read, not registered.
    assert HistoryBuffer._statistics_methods == shared


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_getattr_gives_a_name_only_inside_a_history_buffer(tmp_path,
                                                           restricted):
    # Outside a HistoryBuffer's state the name is refused...
    p = attacks.Program()
    p.global_('__builtin__', 'getattr')
    p.global_('mmengine.logging.history_buffer', 'HistoryBuffer')
    p.str_('mean').op(pickle.TUPLE2 + pickle.REDUCE)
    _save_program(tmp_path / 'bare.pth', p)
    with pytest.raises(UnsafeCheckpointError, match='outside the state'):
        load_checkpoint_file(tmp_path / 'bare.pth', restricted=restricted)
    # ... and a special attribute is refused anywhere.
    p = attacks.Program()
    p.global_('__builtin__', 'getattr')
    p.global_('mmengine.logging.history_buffer', 'HistoryBuffer')
    p.str_('__class__').op(pickle.TUPLE2 + pickle.REDUCE)
    _save_program(tmp_path / 'dunder.pth', p)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"getattr\(.*'__class__'\)"):
        load_checkpoint_file(tmp_path / 'dunder.pth', restricted=restricted)


def test_rebuild_from_type_calls_only_tensor_rebuilders(tmp_path):
    p = attacks.Program()
    p.global_('torch._tensor', '_rebuild_from_type_v2')
    p.op(pickle.MARK)
    p.global_('_codecs', 'encode')
    p.global_('torch', 'Tensor')
    p.op(pickle.MARK).str_('x').str_('latin1').op(pickle.TUPLE)
    p.op(pickle.EMPTY_DICT + pickle.TUPLE + pickle.REDUCE)
    _save_program(tmp_path / 'f.pth', p)
    with pytest.raises(UnsafeCheckpointError,
                       match='only tensor rebuild functions'):
        load_checkpoint_file(tmp_path / 'f.pth', restricted=True)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_numpy_values_of_plain_dtypes_only(tmp_path, restricted):
    arrays = {kind: np.arange(6).astype(kind).reshape(2, 3)
              for kind in sorted(NUMPY_KINDS)}
    scalars = {kind: np.dtype(kind).type(1) for kind in sorted(NUMPY_KINDS)}
    fortran = np.asfortranarray(np.arange(6.).reshape(2, 3))
    path = tmp_path / 'plain.pth'
    torch.save(dict(arrays=arrays, scalars=scalars, fortran=fortran,
                    dtype=np.dtype('f4')), path)
    loaded = load_checkpoint_file(path, restricted=restricted)
    for kind, array in arrays.items():
        got = loaded['arrays'][kind]
        assert got.dtype == array.dtype and np.array_equal(got, array)
        assert got.flags.writeable
        assert loaded['scalars'][kind] == scalars[kind]
        assert type(loaded['scalars'][kind]) is type(scalars[kind])
    assert loaded['fortran'].flags.f_contiguous
    assert np.array_equal(loaded['fortran'], fortran)
    assert loaded['dtype'] == np.dtype('f4')
    for name, value, refusal in [
            ('structured', np.zeros(2, dtype=[('a', 'f4'), ('b', 'i4')]),
             'only plain numeric dtypes'),
            ('object', np.array([1, 'a'], dtype=object),
             'only plain numeric dtypes'),
            ('datetime', np.array(['2026-01-01'], dtype='datetime64[D]'),
             'only plain numeric dtypes'),
            ('string', np.array(['ab']), 'only plain numeric dtypes'),
            ('big_endian', np.arange(3, dtype='>i4'),
             'only the plain state of the dtype')]:
        bad = tmp_path / f'{name}.pth'
        torch.save(dict(x=value), bad)
        with pytest.raises(UnsafeCheckpointError, match=refusal):
            load_checkpoint_file(bad, restricted=restricted)


@pytest.mark.parametrize('opcodes', [
    pytest.param(pickle.MARK + b'i__builtin__\ndict\n', id='INST'),
    pytest.param(b'c__builtin__\ndict\n' + pickle.EMPTY_TUPLE +
                 pickle.NEWOBJ, id='NEWOBJ-dict'),
    pytest.param(pickle.EMPTY_DICT + pickle.EMPTY_DICT + pickle.BUILD,
                 id='BUILD-dict'),
    pytest.param(b'ctorch\nSize\n' + pickle.MARK + b'X\x01\x00\x00\x00a' +
                 pickle.TUPLE + pickle.TUPLE1 + pickle.REDUCE,
                 id='Size-of-str'),
    pytest.param(b'ctorch\nfloat32\n' + pickle.EMPTY_TUPLE + pickle.REDUCE,
                 id='call-a-dtype'),
])
def test_opcodes_and_calls_outside_the_list_are_refused(tmp_path, opcodes):
    p = attacks.Program().op(opcodes)
    _save_program(tmp_path / 'f.pth', p)
    with pytest.raises(UnsafeCheckpointError, match='Details: refused'):
        load_checkpoint_file(tmp_path / 'f.pth', restricted=True)


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save(dict(w=torch.arange(4.)), path)
    assert load_checkpoint_file(path)['w'].tolist() == [0., 1., 2., 3.]
    # The same file with the tensor's size raised from 4 to 1000.
    import zipfile
    with zipfile.ZipFile(path) as archive:
        records = {n: archive.read(n) for n in archive.namelist()}
    name = next(n for n in records if n.endswith('data.pkl'))
    size_4 = pickle.BININT1 + b'\x04' + pickle.TUPLE1  # the size (4,)
    assert records[name].count(size_4) == 1
    records[name] = records[name].replace(
        size_4, pickle.BININT2 + (1000).to_bytes(2, 'little') + pickle.TUPLE1)
    bad = tmp_path / 'bad.pth'
    with zipfile.ZipFile(bad, 'w') as archive:
        for n, data in records.items():
            archive.writestr(n, data)
    with pytest.raises(UnsafeCheckpointError, match='past its storage'):
        load_checkpoint_file(bad)


def test_files_of_other_formats_never_reach_torch(tmp_path, monkeypatch):
    """A tar (torch's oldest format) is refused as unsafe, any other
    non-checkpoint as unreadable, both before torch.load is called."""
    calls = []
    monkeypatch.setattr(torch, 'load',
                        lambda *a, **k: calls.append(a) or {})
    tar = tmp_path / 'old.tar'
    import tarfile
    with tarfile.open(tar, 'w') as archive:
        info = tarfile.TarInfo('pickle')
        archive.addfile(info)
    with pytest.raises(UnsafeCheckpointError, match='tar archive'):
        load_checkpoint_file(tar)
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='neither a zip archive'):
        load_checkpoint_file(text)
    assert calls == []
