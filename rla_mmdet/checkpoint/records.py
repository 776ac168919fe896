"""The storages a checkpoint names, checked against the bytes of the file
before ``torch.load`` reads them.

A tensor's data is not in its pickle: the pickle names a storage by a
persistent id (``('storage', <storage type>, <key>, <location>, <numel>)``)
and torch fills it from the record ``data/<key>`` of the zip archive, or,
in the legacy single-pickle format, from the raw data that follows the
pickles. torch < 2.15 sizes the storage from the pickle's claim, not from
the data it has: a claim larger than the record gives a tensor of heap
memory (or a crash, or a heap write when the ``byteorder`` record asks for
a byte swap), and a legacy storage whose key is missing from the file's
key list is never filled. So before ``torch.load`` runs, on every torch
and route:

- the zip archive is read as torch's reader reads it (one central
  directory, where its end record says, no name twice) and its records are
  stored, never compressed (``torch.save`` never compresses);
- the pickle is walked by :class:`Scanner`, which builds nothing: every
  global is a :class:`Symbol`, every call a :class:`Node`, nothing is
  imported or called; it only collects the persistent ids;
- every persistent id must be a storage of a torch storage type, on a
  known device, whose bytes (``numel`` times the element size) the file
  holds: its record's size in the zip directory, or the element count
  before its raw data in a legacy file. Sizes come from the file's
  records, never from the pickle.

Each function raises :class:`Unsafe` for a file made to do harm and
``ValueError`` for one that is merely corrupt.
"""
import io
import pickle
import re
import struct
import zipfile
from functools import lru_cache, partial
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

#: The devices a storage may be saved from. Others (``meta``: no data;
#: ``hpu``, ``xla``...: backends torch may not have) are refused.
_LOCATION = re.compile(r'(cpu|mps|cuda(:[0-9]{1,4})?)\Z')
#: What torch's legacy format starts with (``torch.serialization``).
_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950a86a20f9469cfc6c, 1001


class Unsafe(Exception):
    """The file's storages or records are made to read memory that is not
    in the file, or to be read otherwise by torch than checked here."""


class CostlyKey(Exception):
    """A dict key or set item of the pickle is a tuple holding tuples:
    hashing it, as any unpickler does while filling the dict or set, can
    cost 2**depth when the tuples are shared."""


# ------------------------------------------------------------ the scan
class Symbol:
    """A global a pickle names: its module and name, never imported."""

    __slots__ = ('module', 'name')

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class Node:
    """What a call, a new object or a persistent id would have built."""

    __slots__ = ()


#: The keys a scan puts into the dicts and sets it builds (it needs only
#: the values of the legacy header and key list, whose keys are strings).
_PLAIN_KEYS = (str, bytes, int, float, bool, type(None))


#: The globals that hash the items of the list they are called with.
_HASHING = ('set', 'frozenset', 'OrderedDict', 'Counter', 'dict')


def _check_keys(keys: list) -> None:
    """Refuse keys that are tuples holding tuples (see :class:`CostlyKey`)."""
    for key in keys:
        if type(key) is tuple and any(type(k) is tuple for k in key):
            raise CostlyKey('a dict key or set item made of tuples of tuples')


class Scanner(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler (the one :mod:`.allow_list` and torch's
    ``weights_only`` unpickler follow) with nothing imported or called:
    ``load()`` returns the pickle's structure and :attr:`ids` holds its
    persistent ids in order."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, encoding='utf-8')  # torch.load's encoding
        self.source = file
        self.ids: List[Any] = []

    def find_class(self, module: str, name: str) -> Symbol:
        return Symbol(module, name)

    def persistent_load(self, pid: Any) -> Node:
        self.ids.append(pid)
        return Node()

    def _call(self) -> None:  # REDUCE: func, args -> a node
        args = self.stack.pop()
        func = self.stack[-1]
        if isinstance(func, Symbol) and func.name in _HASHING and \
                type(args) is tuple and args and type(args[0]) is list:
            items = args[0]  # what set(...) or OrderedDict(...) would hash
            if func.name in ('OrderedDict', 'dict'):
                items = [p[0] for p in items
                         if type(p) in (tuple, list) and p]
            _check_keys(items)
        self.stack[-1] = Node()

    def _newobj(self) -> None:  # NEWOBJ: cls, args -> a node
        del self.stack[-2:]
        self.append(Node())

    def _newobj_ex(self) -> None:  # NEWOBJ_EX: cls, args, kwargs -> a node
        del self.stack[-3:]
        self.append(Node())

    def _build(self) -> None:
        self.stack.pop()

    def _append(self) -> None:
        self._fill(list, [self.stack.pop()])

    def _appends(self) -> None:
        self._fill(list, self.pop_mark())

    def _setitem(self) -> None:
        self._fill(dict, self.stack[-2:])
        del self.stack[-2:]

    def _setitems(self) -> None:
        self._fill(dict, self.pop_mark())

    def _additems(self) -> None:
        self._fill(set, self.pop_mark())

    def _fill(self, kind: type, items: list) -> None:
        """Fill a container the scan built itself; what the pickle made
        by a call (a node) takes nothing."""
        if kind is not list:  # refused before any unpickler hashes it
            _check_keys(items[::2] if kind is dict else items)
        target = self.stack[-1]
        if type(target) is not kind:
            return
        if kind is list:
            target.extend(items)
        elif kind is dict:  # the scan keeps plain keys only
            for i in range(0, len(items) - 1, 2):
                if type(items[i]) in _PLAIN_KEYS:
                    target[items[i]] = items[i + 1]
        else:
            target.update(v for v in items if type(v) in _PLAIN_KEYS)

    def _frame(self) -> None:
        size, = struct.unpack('<Q', self.read(8))
        if size > len(self.source.getbuffer()) - self.source.tell():
            raise ValueError('a pickle frame longer than the file')
        self._unframer.load_frame(size)

    def _inst(self) -> None:  # INST module name: the class is not made
        self.readline()
        self.readline()
        self._obj()

    def _obj(self) -> None:
        self.pop_mark()
        self.append(Node())

    def _ext(self, size: int) -> None:  # the registry is not looked up
        self.read(size)
        self.append(Node())

    for _opcodes, _method in (
        ((pickle.FRAME, ), _frame),
        ((pickle.REDUCE, ), _call),
        ((pickle.NEWOBJ, ), _newobj),
        ((pickle.NEWOBJ_EX, ), _newobj_ex),
        ((pickle.BUILD, ), _build),
        ((pickle.APPEND, ), _append),
        ((pickle.APPENDS, ), _appends),
        ((pickle.SETITEM, ), _setitem),
        ((pickle.SETITEMS, ), _setitems),
        ((pickle.ADDITEMS, ), _additems),
        ((pickle.INST, ), _inst),
        ((pickle.OBJ, ), _obj),
    ):
        for _opcode in _opcodes:
            dispatch[_opcode[0]] = _method
    for _opcode, _size in ((pickle.EXT1, 1), (pickle.EXT2, 2),
                           (pickle.EXT4, 4)):
        dispatch[_opcode[0]] = partial(_ext, size=_size)
    del _opcodes, _method, _opcode, _size

    def end_of_pickle(self) -> None:
        """Refuse a protocol-4 frame that runs past ``STOP`` (the next
        pickle of a legacy file would start elsewhere for another
        unpickler)."""
        frame = getattr(self._unframer, 'current_frame', None)
        if frame is not None and frame.tell() != len(frame.getbuffer()):
            raise Unsafe('a pickle frame that runs past the end of its '
                         'pickle')


def scan(file: io.BytesIO) -> Tuple[Any, List[Any]]:
    """The structure of the pickle at ``file``'s position and its
    persistent ids; ``file`` is left just after the pickle."""
    scanner = Scanner(file)
    value = scanner.load()
    scanner.end_of_pickle()
    return value, scanner.ids


# ------------------------------------------------------------ sizes
def bounded_nbytes(shape: Sequence[int], itemsize: int,
                   limit: int) -> Optional[int]:
    """The bytes of an array of ``shape``, or ``None`` where they exceed
    ``limit`` (the product stops there: a long shape of large sizes costs
    no big-int products)."""
    if 0 in shape:
        return 0
    total = itemsize
    for n in shape:
        total *= n
        if total > limit:
            return None
    return total


# ------------------------------------------------------------ storages
def is_storage_type(module: Any, name: Any) -> bool:
    """Whether ``module.name`` is one of torch's storage types, as
    ``torch.save`` names them (``torch.FloatStorage``,
    ``torch.storage.UntypedStorage``...)."""
    return module in ('torch', 'torch.storage') and name in _storage_sizes()


@lru_cache(maxsize=None)
def _storage_sizes() -> Dict[str, int]:
    """``{storage type name: element size}``."""
    sizes = {'UntypedStorage': 1}
    for name in dir(torch):
        if name.endswith('Storage'):
            try:
                dtype = torch.storage._get_dtype_from_pickle_storage_type(name)
            except KeyError:  # Storage, TypedStorage: no dtype of their own
                continue
            sizes[name] = torch._utils._element_size(dtype)
    return sizes


def _storage_id(pid: Any, length: int) -> Tuple[str, int]:
    """The key and byte size of a persistent id of ``length`` items
    (``('storage', type, key, location, numel, ...)``); anything else is
    refused."""
    if not (type(pid) is tuple and len(pid) == length
            and pid[0] == 'storage'):
        raise Unsafe('a persistent id that is not a storage of torch.save '
                     "(such as ('module', ...) or a text id)")
    _, kind, key, location, numel = pid[:5]
    if not (type(kind) is Symbol and is_storage_type(kind.module, kind.name)):
        raise Unsafe('a storage whose type is not a torch storage type')
    if not (type(location) is str and _LOCATION.match(location)):
        raise Unsafe(f'a storage on device {_short(location)}: only cpu, '
                     'cuda and mps storages hold data that can be loaded')
    if not (type(key) is str and type(numel) is int and numel >= 0):
        raise Unsafe('a storage id whose key or size is not a text and '
                     'an int')
    return key, numel * _storage_sizes()[kind.name]


def _short(value: Any) -> str:
    text = value if type(value) is str else type(value).__name__
    return text[:40] + ('...' if len(text) > 40 else '')


def _check_fits(key: str, nbytes: int, has: int) -> None:
    if nbytes > has:
        raise Unsafe(f'storage {_short(key)} of {nbytes} bytes whose data '
                     f'in the file has {has} bytes')


# ------------------------------------------------------------ zip
def check_zip(data: bytes) -> None:
    """Refuse a ``torch.save`` zip archive whose records torch's reader
    could see otherwise than Python's ``zipfile``, that are compressed,
    whose ``byteorder`` is neither ``little`` nor ``big``, or whose pickle
    names a storage its record cannot hold."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        _check_layout(archive, infos, data)
        prefix = infos[0].filename.split('/', 1)[0] + '/'
        sizes = {info.filename[len(prefix):]: info.file_size
                 for info in infos}
        if sizes.get('byteorder', 0) > 8:
            raise Unsafe('a byteorder record of more than 8 bytes')
        byteorder = archive.read(prefix + 'byteorder') \
            if 'byteorder' in sizes else b'little'
        pickled = archive.read(prefix + 'data.pkl')
    if byteorder not in (b'little', b'big'):
        raise Unsafe('a byteorder record that is neither little nor big')
    _, ids = scan(io.BytesIO(pickled))
    for pid in ids:
        key, nbytes = _storage_id(pid, 5)
        _check_fits(key, nbytes, sizes.get(f'data/{key}', -1))


def _check_layout(archive: zipfile.ZipFile, infos: List[zipfile.ZipInfo],
                  data: bytes) -> None:
    """Records as torch's reader (miniz) finds them: the central directory
    where the end record says (``zipfile`` also reads an archive that has
    other bytes before it, miniz does not), each name once (miniz finds
    names without regard to case), stored, and inside the file."""
    end = zipfile._EndRecData(io.BytesIO(data))  # what zipfile itself uses
    if not end or archive.start_dir != end[zipfile._ECD_OFFSET]:
        raise Unsafe('a zip archive whose records start elsewhere than '
                     'its directory says')
    names = [info.filename.lower() for info in infos]
    if len(set(names)) != len(names):
        raise Unsafe('a zip archive with two records of the same name')
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or \
                info.compress_size != info.file_size:
            raise Unsafe('a compressed zip record (torch.save stores '
                         'records uncompressed)')
        if info.header_offset + info.file_size > len(data):
            raise ValueError('a zip record reaches past the end of the file')


# ------------------------------------------------------------ legacy
def check_legacy(data: bytes) -> None:
    """Refuse a legacy single-pickle checkpoint (magic number, protocol,
    system info, the pickle, its storage keys, then each storage's element
    count and data) unless every storage its pickle names is in the key
    list and filled from the file, every view lies inside its storage, and
    every listed key is named."""
    file = io.BytesIO(data)
    head = [scan(file) for _ in range(3)]
    if [value for value, _ in head[:2]] != [_LEGACY_MAGIC, _LEGACY_PROTOCOL]:
        raise ValueError('a legacy checkpoint whose magic number or '
                         'protocol is not torch.save\'s')
    _, ids = scan(file)
    keys, more = scan(file)
    if any(more for _, more in head) or more:
        raise Unsafe('a persistent id outside the main pickle')
    if not (type(keys) is list and all(type(k) is str for k in keys)
            and len(set(keys)) == len(keys)):
        raise ValueError('a legacy checkpoint whose storage key list is not '
                         'a list of distinct texts')
    storages = _legacy_storages(ids)
    if set(keys) != set(storages):
        raise Unsafe('a storage that the file never fills, or data for a '
                     'storage the pickle never names')
    offset = file.tell()
    for key in keys:
        nbytes, size = storages[key]
        count, = struct.unpack('<q', data[offset:offset + 8].rjust(8, b'\0'))
        if count * size != nbytes or offset + 8 + nbytes > len(data):
            _check_fits(key, nbytes, max(0, min(count * size,
                                                len(data) - offset - 8)))
            raise ValueError(f'storage {_short(key)} whose data does not '
                             'match its size')
        offset += 8 + nbytes


def _legacy_storages(ids: List[Any]) -> Dict[str, Tuple[int, int]]:
    """``{root key: (byte size, element size)}`` of the storages, as
    torch's legacy loader makes them (the first id of a key sizes it),
    with each view checked to lie inside its root."""
    roots: Dict[str, Tuple[int, int]] = {}
    views = set()
    for pid in ids:
        key, nbytes = _storage_id(pid, 6)
        size = _storage_sizes()[pid[1].name]
        roots.setdefault(key, (nbytes, size))
        view = pid[5]
        if view is None:
            continue
        if not (type(view) is tuple and len(view) == 3
                and type(view[0]) is str
                and all(type(v) is int and v >= 0 for v in view[1:])):
            raise Unsafe('a storage view that is not (key, offset, size)')
        if (view[1] + view[2]) * size > roots[key][0]:
            raise Unsafe(f'a view of storage {_short(key)} reaching past '
                         'its end')
        views.add(view[0])
    if views & set(roots):
        raise Unsafe('a storage view named like a storage')
    return roots
