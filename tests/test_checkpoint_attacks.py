"""Hand-made checkpoints that try to run code, write files or crash the
process are refused on every route, and nothing they aim at happens.

Each attack (``tests/pickle_attacks.py``) is loaded in a fresh process,
through ``load_checkpoint_file`` on each route and through MMEngine's
loader with this package's checkpoint IO switched on; a crash shows as
the process's exit status. The guards are also tested one by one, each on
a file that only that guard stops.
"""
import builtins
import hashlib
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import pickle_attacks as attacks
from rla_mmdet.checkpoint import (WEIGHTS_ONLY_ENFORCES_ALLOW_LIST,
                                  UnsafeCheckpointError, load_checkpoint_file,
                                  records, remote)
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
    with pytest.raises(UnsafeCheckpointError, match=r'\(refused'):
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


# ------------------------------------------- storages, records, the one read
def _refused(path, restricted, match='not what torch.save writes'):
    with pytest.raises(UnsafeCheckpointError, match=match) as info:
        load_checkpoint_file(path, restricted=restricted)
    return str(info.value)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_storage_is_checked_against_its_record(tmp_path, restricted):
    """A storage claiming 16 floats over a record of 8 bytes (torch < 2.15
    gave a tensor of the heap after the record)."""
    good = tmp_path / 'good.pth'
    attacks.write_storage_zip(str(good), attacks.storage_id(numel=2),
                              b'\0' * 8)
    assert load_checkpoint_file(good, restricted=restricted)['x'].tolist() \
        == [0.0, 0.0]
    bad = tmp_path / 'over.pth'
    attacks.write_storage_over_claim(str(bad), 16)
    assert 'storage 0 of 64 bytes' in _refused(bad, restricted)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
@pytest.mark.parametrize('pid, match', [
    pytest.param(dict(kind=('os', 'FloatStorage')), 'not a torch storage',
                 id='os.FloatStorage'),
    pytest.param(dict(location='meta'), 'on device meta', id='meta'),
    pytest.param(dict(location='hpu'), 'on device hpu', id='hpu'),
    pytest.param(dict(key='../0'), 'data in the file has -1', id='no-record'),
])
def test_storage_ids_outside_torch_save_are_refused(tmp_path, restricted, pid,
                                                    match):
    path = tmp_path / 'f.pth'
    attacks.write_storage_zip(str(path), attacks.storage_id(**pid))
    _refused(path, restricted, match)


def test_storage_names_from_other_modules_are_refused(tmp_path):
    """torch.load maps any ``*Storage`` global to a storage type before
    the allow-list sees it; the restricted unpickler refuses it first."""
    p = attacks.Program().global_('os', 'FloatStorage')
    value = p.put()
    attacks._result_dict(p, 'x', value)
    _save_program(tmp_path / 'f.pth', p)
    with pytest.raises(UnsafeCheckpointError,
                       match="only torch's own storage types"):
        load_checkpoint_file(tmp_path / 'f.pth', restricted=True)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_legacy_storages_are_filled_from_the_file(tmp_path, restricted):
    good = tmp_path / 'good.pth'
    attacks.write_legacy(str(good), attacks.storage_id(view=True), ['0'],
                         [(2, b'\0' * 8)])
    assert load_checkpoint_file(good, restricted=restricted)['x'].tolist() \
        == [0.0, 0.0]
    torch.save(dict(w=torch.arange(6.).view(2, 3)[:, 1:],
                    b=torch.ones(2, dtype=torch.int8)), good,
               _use_new_zipfile_serialization=False)
    loaded = load_checkpoint_file(good, restricted=restricted)
    assert loaded['w'].tolist() == [[1., 2.], [4., 5.]]
    for name, keys, data, match in [
            ('unlisted', [], [], 'never fills'),
            ('unnamed', ['0', '1'], [(2, b'\0' * 8)] * 2, 'never names'),
            ('short', ['0'], [(2, b'\0' * 4)], 'data in the file has 4')]:
        bad = tmp_path / f'{name}.pth'
        attacks.write_legacy(str(bad), attacks.storage_id(view=True), keys,
                             data)
        _refused(bad, restricted, match)
    attacks.write_legacy_module_id(str(tmp_path / 'module.pth'))
    _refused(tmp_path / 'module.pth', restricted, r"\('module', \.\.\.\)")


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_odd_inputs_raise_one_of_the_two_errors(tmp_path, restricted):
    """What raised OverflowError or AssertionError is a ValueError (or
    UnsafeCheckpointError, one) with one sentence naming the file."""
    for name in ('text_persistent_id', 'huge_frame'):
        path = tmp_path / f'{name}.pth'
        getattr(attacks, f'write_{name}')(str(path))
        with pytest.raises(ValueError, match=f"'.*{name}.pth'") as info:
            load_checkpoint_file(path, restricted=restricted)
        assert '\n' not in str(info.value)
    assert 'text id' in _refused(tmp_path / 'text_persistent_id.pth',
                                 restricted)


# ------------------------------------ issue 27: cost, views, values only
_LOAD_BOUNDED = '''
import resource, sys, time
from rla_mmdet.checkpoint import load_checkpoint_file
# The address space this process has now, plus 384 MiB: a load that
# materialises a repeated view (>= 512 MiB) or a value with 2**60 paths
# fails instead of taking the machine.
with open('/proc/self/statm') as f:
    now = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (now + 384 * 2**20, ) * 2)
routes = eval(sys.argv[1])
for path in sys.argv[2:]:
    for route, restricted in routes.items():
        start = time.perf_counter()
        try:
            load_checkpoint_file(path, restricted=restricted)
            outcome = 'LOADED - -'
        except Exception as exc:
            outcome = f'REFUSED {type(exc).__name__} {len(str(exc))}'
        seconds = time.perf_counter() - start
        print(path.rsplit('/', 1)[-1], route, outcome, f'{seconds:.2f}',
              flush=True)
'''


def _load_bounded(paths, routes=ROUTES) -> dict:
    """Load each of ``paths`` on each of ``routes`` in one fresh process
    whose memory is capped; ``{(file name, route): (outcome, exception,
    message length, seconds)}``."""
    out = subprocess.run(
        [sys.executable, '-c', _LOAD_BOUNDED,
         repr(routes)] + [str(p) for p in paths],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    results = {}
    for line in out.stdout.splitlines():
        name, route, outcome, exc, length, seconds = line.split()
        results[name, route] = (outcome, exc, length, float(seconds))
    assert len(results) == len(paths) * len(routes), out.stdout[-3000:]
    return results


def test_small_files_cost_little_to_load_or_refuse(tmp_path):
    """Each object is visited once, messages are built only on refusal
    and describe values in a few hundred characters, and a view larger
    than its storage is refused without being materialised: each file
    below is loaded or refused in well under a second, in 384 MiB."""
    files = {
        # 2**60 paths through 61 shared lists and tuples: loads.
        'dag.pth': (lambda p: attacks.write_shared_dag(p), 'LOADED'),
        # The same of tuples only: loads.
        'dag_tuples.pth':
        (lambda p: attacks.write_shared_dag(p, use='tuples'), 'LOADED'),
        # The same handed to torch.Size: refused, with a short message
        # (torch's own unpickler calls torch.Size, whose TypeError is the
        # loader's one-sentence ValueError).
        'dag_size.pth': (
            lambda p: attacks.write_shared_dag(p, use='torch.Size'),
            'REFUSED', 'ValueError'),
        # 2**28 float16 elements (512 MiB) over 2 bytes.
        'view28.pth':
        (lambda p: attacks.write_repeated_view(p, (2**28, )), 'REFUSED'),
        # 2**30 elements in 30 dimensions over 2 bytes.
        'view2x30.pth':
        (lambda p: attacks.write_repeated_view(p, (2, ) * 30), 'REFUSED'),
    }
    for name, (write, *_) in files.items():
        write(str(tmp_path / name))
        assert os.path.getsize(tmp_path / name) < 2000
    results = _load_bounded([tmp_path / name for name in files])
    for (name, route), (outcome, exc, length, seconds) in results.items():
        expected = files[name][1]
        assert outcome == expected, (name, route, outcome, exc)
        if outcome == 'REFUSED':
            assert exc in ('UnsafeCheckpointError', ) + files[name][2:], (
                name, route, exc)
            assert int(length) < 800, (name, route, length)
        assert seconds < 3, (name, route, seconds)


def test_a_key_that_costs_2_to_the_depth_to_hash_is_refused(tmp_path):
    """A dict key or set item is a number, string, bytes or a flat tuple
    of these: a tuple of shared tuples (whose hash Python recomputes
    through every path) is refused before it is hashed, on every route
    (torch's own weights_only unpickler would hash it while unpickling:
    the scan before torch.load refuses it first)."""
    path = tmp_path / 'dag_key.pth'
    attacks.write_shared_dag(str(path), use='key')
    results = _load_bounded([path])
    for (_, route), (outcome, exc, _, seconds) in results.items():
        assert (outcome, exc) == ('REFUSED', 'UnsafeCheckpointError'), route
        assert seconds < 3, (route, seconds)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_zip_records_are_read_as_torch_reads_them(tmp_path, restricted,
                                                  monkeypatch):
    """Compressed, duplicated or displaced records, and a byteorder that
    is neither, are refused before torch.load is called."""
    calls = []
    monkeypatch.setattr(torch, 'load', lambda *a, **k: calls.append(a))
    deflated = tmp_path / 'deflated.pth'
    attacks.write_deflated_record(str(deflated), 1 << 20)
    assert os.path.getsize(deflated) < 4096
    _refused(deflated, restricted, 'compressed zip record')
    odd = tmp_path / 'odd.pth'
    attacks.write_storage_zip(str(odd), attacks.storage_id(), byteorder='odd')
    _refused(odd, restricted, 'neither little nor big')
    twice = tmp_path / 'twice.pth'
    attacks.write_storage_zip(str(twice), attacks.storage_id(numel=16))
    with zipfile.ZipFile(twice, 'a') as archive, pytest.warns(
            UserWarning, match='Duplicate name'):
        archive.writestr('archive/data/0', bytes(64))
    _refused(twice, restricted, 'two records of the same name')
    assert calls == []


def test_zip_records_are_where_torch_finds_them(tmp_path):
    """Python's zipfile reads an archive after other bytes (torch's
    reader does not): the records are refused unless they start where
    the archive's directory says."""
    path = tmp_path / 'f.pth'
    attacks.write_storage_zip(str(path), attacks.storage_id())
    records.check_zip(path.read_bytes())
    with pytest.raises(records.Unsafe, match='start elsewhere'):
        records.check_zip(b'PK\x03\x04' + bytes(26) + path.read_bytes())


def test_the_bytes_checked_are_the_bytes_loaded(tmp_path, monkeypatch):
    """The file is opened once; replacing it after its sha256 was checked
    changes nothing that loads."""
    path, other = tmp_path / 'a.pth', tmp_path / 'b.pth'
    torch.save(dict(w=torch.zeros(2)), path)
    torch.save(dict(w=torch.ones(2)), other)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    opened, real_open, real_check = [], builtins.open, remote.check_sha256

    def counting_open(file, *args, **kwargs):
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike))
                      else file)
        return real_open(file, *args, **kwargs)

    def check_then_swap(*args):
        real_check(*args)
        os.replace(other, path)  # a writer wins the race right here

    monkeypatch.setattr(builtins, 'open', counting_open)
    monkeypatch.setattr(remote, 'check_sha256', check_then_swap)
    loaded = load_checkpoint_file(path, sha256=digest)
    assert loaded['w'].tolist() == [0.0, 0.0]
    assert opened.count(str(path)) == 1


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_repeated_views_are_refused_on_every_route(tmp_path, restricted):
    path = tmp_path / 'view.pth'
    attacks.write_repeated_view(str(path), (4, 3), dtype='float32')
    with pytest.raises(UnsafeCheckpointError,
                       match='more elements than its storage of 4 bytes'):
        load_checkpoint_file(path, restricted=restricted)
    # A view inside its storage (a slice of a larger tensor) loads.
    torch.save({'w': torch.arange(12.).view(3, 4)[1:, ::2]}, path)
    loaded = load_checkpoint_file(path, restricted=restricted)['w']
    assert loaded.tolist() == [[4., 6.], [8., 10.]]


def test_refusal_messages_stay_short_for_huge_values(tmp_path):
    p = attacks.Program()
    p.global_('torch', 'Size')
    p.op(pickle.MARK).str_('x' * 2**20).op(pickle.TUPLE + pickle.TUPLE1)
    p.op(pickle.REDUCE)
    _save_program(tmp_path / 'size.pth', p)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"refused torch.Size \('xxx") as refusal:
        load_checkpoint_file(tmp_path / 'size.pth', restricted=True)
    assert len(str(refusal.value)) < 800


_NOT_VALUES = [
    ('torch', 'Tensor'),
    ('torch', 'UntypedStorage'),
    ('torch._utils', '_rebuild_tensor_v2'),
    ('collections', 'OrderedDict'),
    ('__builtin__', 'set'),
    ('numpy', 'ndarray'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer'),
    ('rla_mmdet.checkpoint.allow_list', 'NumpyArray'),
]


@pytest.mark.parametrize('where', ['value', 'key', 'tuple', 'metadata'])
@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_classes_and_functions_are_not_values(tmp_path, restricted, where):
    """A global the pickle names but never calls (a class, a function, a
    constructor of the allow-list, a marker) is refused wherever it ends
    up; torch's weights_only unpickler returns such globals as they are."""
    for module, name in _NOT_VALUES:
        path = tmp_path / f'{name}.pth'
        attacks.write_global_as_value(str(path), module, name, where)
        with pytest.raises(UnsafeCheckpointError,
                           match='in the loaded checkpoint|Unsupported '
                           'global|not on the allow-list|dict key'):
            load_checkpoint_file(path, restricted=restricted)


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
@pytest.mark.parametrize('via', ['numpy.dtype',
                                 attacks.NUMPY_DTYPE_PLACEHOLDER])
def test_numpy_dtypes_outside_the_plain_kinds_are_refused(
        tmp_path, restricted, via):
    """Whether the pickle calls numpy.dtype or the allow-list's dtype
    placeholder (a name torch's unpickler is given), only the plain
    numeric kinds load."""
    path = tmp_path / 'dtype.pth'
    for name in ['U2', 'M8[s]', 'S3', 'V4', 'O']:
        attacks.write_numpy_dtype(str(path), name, via)
        with pytest.raises(UnsafeCheckpointError,
                           match='plain numeric dtypes|not on the allow'):
            load_checkpoint_file(path, restricted=restricted)
    if via == 'numpy.dtype':
        attacks.write_numpy_dtype(str(path), 'f4', via)
        dtype, array = load_checkpoint_file(path, restricted=restricted)['x']
        assert dtype == np.dtype('f4') and array.dtype == dtype


@pytest.mark.parametrize('restricted', list(ROUTES.values()),
                         ids=list(ROUTES))
def test_a_number_beyond_a_float_is_refused(tmp_path, restricted):
    path = tmp_path / 'complex.pth'
    attacks.write_huge_complex(str(path))
    with pytest.raises(ValueError, match=r"complex.pth'.*(large|overflow)"):
        load_checkpoint_file(path, restricted=restricted)
