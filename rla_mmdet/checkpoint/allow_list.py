"""The allow-list: what a checkpoint's pickle may build, and how.

A pickle is a program: its ``GLOBAL`` opcodes import names, ``REDUCE``,
``NEWOBJ`` and ``NEWOBJ_EX`` call them, ``BUILD`` hands state to an
object's ``__setstate__``, and ``APPENDS`` / ``SETITEMS`` call methods of
whatever is on its stack. An allow-list of *names* is not enough: one
allowed class whose ``__setstate__`` changes shared state, or one allowed
helper that calls its argument, opens the rest of the process. So this list
holds values and constructors of values, each written here:

- every global a pickle may name is a key of :data:`ALLOWED`; its value is
  either a plain value (a torch dtype, a marker) or one of this module's
  constructors, which checks the types of every argument before it builds
  anything (:func:`_constructor`);
- the tensor rebuild functions are torch's own, called by a constructor
  after the storage, offset, sizes, strides (within the storage, and no
  more elements than it holds: a stride-0 view of two bytes could
  otherwise stand for gigabytes), flags and backward hooks (none) were
  checked; ``torch._tensor._rebuild_from_type_v2``
  only takes one of these constructors as its function, and only
  ``torch.Tensor`` / ``torch.nn.Parameter`` as its type;
- numpy values come from plain numeric dtypes (:data:`NUMPY_KINDS`) built
  by name; the state a pickle gives a dtype must equal the state of that
  dtype (nothing is set from it), and arrays and scalars are copied from
  raw bytes of the right length (:func:`numpy.frombuffer`), never through
  numpy's ``__setstate__``;
- an MMEngine ``HistoryBuffer`` is rebuilt by calling its constructor with
  checked plain state (a length and two numeric arrays); its pickled
  ``statistics_methods`` are read as names only (the ``getattr`` the pickle
  uses for them returns a name, not an attribute) and not used: the
  statistics are the ones registered in this process;
- ``BUILD`` only sets the ``__dict__`` of an ``OrderedDict`` (a
  ``state_dict``'s ``_metadata``) or hands state to this module's
  placeholders; ``APPEND(S)`` only extends lists, ``SETITEM(S)`` only fills
  dicts, ``ADDITEMS`` only fills sets, each with keys whose hash costs
  little (:data:`_KEY_TYPES`, flat tuples of them); ``INST``, ``OBJ`` and
  the ``EXT`` opcodes are refused.

The same constructors serve torch's own ``weights_only`` unpickler
(:data:`TORCH_SAFE_GLOBALS`, passed per call through
``torch.serialization.safe_globals`` on torch >= 2.6); there torch's own
list and checks guard torch's types. Values that a pickle builds in
several steps (numpy arrays, dtypes, ``HistoryBuffer``) are placeholders
until :func:`resolve` replaces them in the loaded checkpoint.

What either unpickler returns is then checked as a whole, on both routes
(:func:`check_values`): it may hold only values (tensors and
``Parameter`` s no larger than their storage, ``None``, numbers,
strings, bytes, ``slice``, ``torch.Size`` / ``device`` / ``dtype``,
numpy values of :data:`NUMPY_KINDS`, ``HistoryBuffer`` and the usual
containers of these). A global that a pickle names but never calls (a
class, a function, one of this module's constructors or markers) is
refused wherever it ends up, and so are numpy values of other dtypes
that torch's own unpickler builds.

The cost of a load is linear in the size of the pickle: each object is
visited once however many others share it (a few hundred bytes can name
a value with 2**60 paths), and a refusal's message is built only when
refusing, from bounded descriptions (:func:`describe`: a few items, two
levels, tensors by dtype and shape) that never call a value's
``__repr__``.
"""
import _compat_pickle
import io
import pickle
import reprlib
from collections import Counter, OrderedDict
from functools import lru_cache
from itertools import islice
from types import BuiltinFunctionType, FunctionType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from .records import bounded_nbytes, is_storage_type


class Refused(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list."""


# ------------------------------------------------------------ checks
class _Describe(reprlib.Repr):
    """Bounded descriptions of values from a file, for refusal messages.

    Python's own scalars, strings and containers are shown as
    :mod:`reprlib` shows them (a few items, two levels, strings and bytes
    cut); tensors and numpy values by type, dtype and shape; classes and
    functions by name; anything else by its type's name. No value's own
    ``__repr__`` runs, nothing is sorted or materialised, and a large int
    is shown by its size: each description costs a few hundred characters
    whatever the value.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 2
        self.maxstring = self.maxother = self.maxlong = 80
        self.maxtuple = self.maxlist = self.maxdict = 4
        self.maxset = self.maxfrozenset = 4

    def repr1(self, x: Any, level: int) -> str:
        kind = type(x)
        if kind in (str, tuple, list):  # reprlib's own, bounded
            return super().repr1(x, level)
        if kind in (type(None), bool, float, complex, torch.dtype,
                    torch.device, _Marker):
            return repr(x)
        if kind is int:
            bits = x.bit_length()
            return repr(x) if bits <= 64 else f'<an int of {bits} bits>'
        if kind in (bytes, bytearray):
            more = self.fillvalue if len(x) > self.maxstring else ''
            return repr(x[:self.maxstring]) + more
        if kind in (dict, OrderedDict, Counter):
            return self._firsts(
                (_Pair(k, v) for k, v in x.items()), level, '{', '}')
        if kind is set:
            return self._firsts(x, level, '{', '}')
        if kind is frozenset:
            return self._firsts(x, level, 'frozenset({', '})')
        if kind is slice:
            return self._firsts((x.start, x.stop, x.step), level, 'slice(',
                                ')')
        if kind is torch.Size:
            return self._firsts(x, level, 'torch.Size([', '])')
        if kind is _Pair:
            return f'{self.repr1(x.key, level)}: {self.repr1(x.value, level)}'
        return self.repr_instance(x, level)

    def _firsts(self, items: Iterable, level: int, left: str,
                right: str) -> str:
        """``items`` shown as reprlib shows a list, taking no more of them
        than it shows (one more says that there are more)."""
        firsts = list(islice(items, self.maxlist + 1))
        return self._repr_iterable(firsts, level, left, right, self.maxlist)

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, torch.Tensor):
            return (f'<a {type(x).__name__} of dtype {x.dtype} and shape '
                    f'{self.repr1(x.shape, 1)}>')
        if isinstance(x, (np.ndarray, np.generic)):
            return (f'<a numpy {type(x).__name__} of dtype '
                    f'{self.repr1(x.dtype.str, level)}>')
        if isinstance(x, np.dtype):
            return f'<the numpy dtype {self.repr1(x.str, level)}>'
        if isinstance(x, (type, FunctionType, BuiltinFunctionType)):
            name = f'{x.__module__}.{x.__qualname__}'
            what = 'class' if isinstance(x, type) else 'function'
            return f'<the {what} {self.repr1(name, level)}>'
        return f'<a {type(x).__module__}.{type(x).__qualname__}>'


class _Pair:
    """A dict item, as :class:`_Describe` shows it."""

    def __init__(self, key: Any, value: Any) -> None:
        self.key, self.value = key, value


describe = _Describe().repr


def _check(ok: bool, what: str, *values: Any) -> None:
    """Refuse unless ``ok``. The message is ``what`` with its ``{}``
    fields filled by :func:`describe` of ``values``, built only here, on
    refusal: a check costs nothing for its message, and a message stays
    short whatever the values."""
    if not ok:
        raise Refused('refused ' + what.format(*map(describe, values)))


def _is_int(value: Any) -> bool:
    return type(value) is int


#: The largest size or stride taken (torch's and numpy's are int64).
_MAX_INT = 2**63 - 1


def _check_ints(values: Any, what: str) -> Tuple[int, ...]:
    _check(
        isinstance(values, (tuple, list, torch.Size))
        and all(_is_int(v) and 0 <= v <= _MAX_INT for v in values),
        what + ' {}: expected a tuple of non-negative int64 values', values)
    return tuple(values)


def _check_no_hooks(hooks: Any) -> None:
    _check(type(hooks) in (OrderedDict, dict) and not hooks,
           'a tensor with backward hooks: checkpoints hold none')


def _check_plain_state(state: Any, what: str) -> None:
    _check(state is None or (type(state) in (dict, OrderedDict) and not state),
           'state {} for {}: a checkpoint tensor has no attributes', state,
           what)


# ------------------------------------------------------------ tensors
def _storage_nbytes(storage: Any) -> int:
    return getattr(storage, '_untyped_storage', storage).nbytes()


def _check_view_size(numel_bytes: Optional[int], nbytes: int) -> None:
    _check(
        numel_bytes is not None, 'a tensor with more elements than its '
        'storage of {} bytes holds (a view that repeats its data, such as '
        'stride 0): a state_dict holds none', nbytes)


def _check_storage_extent(storage: Any, offset: Any, size: Any, stride: Any,
                          itemsize: int) -> None:
    """The tensor lies inside its storage (``set_`` would otherwise grow
    the storage or read past it), and has no more elements than it (a
    stride-0 view of a few bytes could otherwise stand for gigabytes)."""
    _check(
        isinstance(storage,
                   (torch.storage.TypedStorage, torch.UntypedStorage)),
        'a tensor on {}: expected a storage of the file', storage)
    _check(_is_int(offset) and 0 <= offset <= _MAX_INT,
           'storage offset {}: expected an int64 >= 0', offset)
    size = _check_ints(size, 'tensor size')
    stride = _check_ints(stride, 'tensor stride')
    _check(len(size) == len(stride), 'size {} with stride {}', size, stride)
    if 0 in size:
        return
    nbytes = _storage_nbytes(storage)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    _check((last + 1) * itemsize <= nbytes,
           'a tensor of size {}, stride {} and offset {} reaching past its '
           'storage of {} bytes', size, stride, offset, nbytes)
    _check_view_size(bounded_nbytes(size, itemsize, nbytes), nbytes)


def _itemsize(dtype: Any) -> int:
    _check(isinstance(dtype, torch.dtype), 'tensor dtype {}', dtype)
    return _element_size(dtype)


@lru_cache(maxsize=None)
def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _rebuild_tensor(storage, offset, size, stride):
    """``torch._utils._rebuild_tensor`` (legacy files)."""
    _check_storage_extent(storage, offset, size, stride,
                          _itemsize(storage.dtype))
    return torch._utils._rebuild_tensor(storage, offset, tuple(size),
                                        tuple(stride))


def _check_flags(requires_grad: Any, hooks: Any, metadata: Any) -> None:
    _check(type(requires_grad) is bool, 'requires_grad={}', requires_grad)
    _check_no_hooks(hooks)
    _check(
        metadata is None or (type(metadata) is dict and all(
            type(k) is str and type(v) is bool
            for k, v in metadata.items())),
        'tensor metadata {}', metadata)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks,
                       metadata=None):
    """``torch._utils._rebuild_tensor_v2`` (what ``torch.save`` writes)."""
    _check_storage_extent(storage, offset, size, stride,
                          _itemsize(storage.dtype))
    _check_flags(requires_grad, hooks, metadata)
    args = (storage, offset, tuple(size), tuple(stride), requires_grad,
            OrderedDict())
    if metadata:
        args += (metadata, )
    return torch._utils._rebuild_tensor_v2(*args)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks,
                       dtype, metadata=None):
    """``torch._utils._rebuild_tensor_v3`` (dtypes without a typed
    storage)."""
    _check_storage_extent(storage, offset, size, stride, _itemsize(dtype))
    _check_flags(requires_grad, hooks, metadata)
    args = (storage, offset, tuple(size), tuple(stride), requires_grad,
            OrderedDict(), dtype)
    if metadata:
        args += (metadata, )
    return torch._utils._rebuild_tensor_v3(*args)


def _rebuild_parameter(data, requires_grad, hooks):
    """``torch._utils._rebuild_parameter``."""
    _check(type(data) is torch.Tensor, 'parameter data {}', data)
    _check_flags(requires_grad, hooks, None)
    return torch._utils._rebuild_parameter(data, requires_grad,
                                           OrderedDict())


_TENSOR_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2,
                      _rebuild_tensor_v3, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2``, whose ``func`` may only be
    one of the tensor constructors above."""
    _check(func in _TENSOR_REBUILDERS,
           '_rebuild_from_type_v2 calling {}: only tensor rebuild functions '
           'may be called', func)
    _check(new_type in (torch.Tensor, torch.nn.Parameter),
           '_rebuild_from_type_v2 to {}', new_type)
    _check(type(args) is tuple, '_rebuild_from_type_v2 arguments')
    _check_plain_state(state, new_type.__name__)
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, {})


# ------------------------------------------------------------ containers
#: What a dict key or a set item may be: values whose hash costs little,
#: and flat tuples of them (a tuple's hash is not cached: a key of tuples
#: that share tuples would cost 2**depth to hash).
_KEY_TYPES = frozenset({
    type(None), bool, int, float, complex, str, bytes, torch.dtype,
    torch.device
})


def _check_keys(keys: Iterable) -> None:
    for key in keys:
        _check(
            type(key) in _KEY_TYPES or (type(key) is tuple and all(
                type(k) in _KEY_TYPES for k in key)),
            'a dict key or set item {}: keys are numbers, strings, bytes '
            'or flat tuples of these', key)


def _ordered_dict(*args):
    _check(
        not args or (len(args) == 1 and type(args[0]) is list and all(
            type(p) in (tuple, list) and len(p) == 2 for p in args[0])),
        'OrderedDict arguments')
    if args:
        _check_keys(p[0] for p in args[0])
    return OrderedDict(*args)


def _from_one(cls: type, arg_type: type) -> Callable:
    """A constructor of ``cls`` from nothing or one ``arg_type`` value (how
    ``Counter``, ``set`` and ``frozenset`` pickle)."""

    def build(*args):
        _check(not args or (len(args) == 1 and type(args[0]) is arg_type),
               '{} arguments', cls)
        if args:
            _check_keys(args[0])
        return cls(*args)

    build.__name__ = f'_{cls.__name__.lower()}'
    return build


_counter = _from_one(Counter, dict)
_set = _from_one(set, list)
_frozenset = _from_one(frozenset, list)


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _complex(*args):
    _check(len(args) <= 2 and all(map(_number, args)), 'complex arguments')
    try:
        return complex(*args)
    except OverflowError:  # an int beyond the range of a float
        _check(False, 'complex{}: a number too large for a float', args)


def _slice(*args):
    _check(
        len(args) <= 3 and all(a is None or _is_int(a) for a in args),
        'slice arguments')
    return slice(*args)


def _encode(text, encoding='utf-8'):
    """``_codecs.encode``: how protocol 2 writes ``bytes``."""
    _check(type(text) is str and encoding in ('latin1', 'latin-1'),
           '_codecs.encode of {} with {}', text, encoding)
    return text.encode('latin1')


def _bytearray(*args):
    _check(
        not args or (len(args) == 1 and type(args[0]) is bytes) or
        (len(args) == 2 and type(args[0]) is str
         and args[1] in ('latin1', 'latin-1')), 'bytearray arguments')
    return bytearray(*args)


def _size(*args):
    _check(len(args) == 1, 'torch.Size arguments')
    return torch.Size(_check_ints(args[0], 'torch.Size'))


def _device(*args):
    _check(
        1 <= len(args) <= 2 and type(args[0]) is str
        and (len(args) == 1 or _is_int(args[1])), 'torch.device arguments')
    return torch.device(*args)


# ------------------------------------------------------------ numpy
#: The numpy dtypes a checkpoint may hold (the names numpy pickles them
#: by): booleans, integers, floats and complex numbers. Structured, object,
#: string and datetime dtypes are refused.
NUMPY_KINDS = frozenset({
    'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8',
    'c8', 'c16'
})
_KIND_NAMES = ', '.join(sorted(NUMPY_KINDS))


class _Marker:
    """A name a pickle may refer to that stands for nothing callable."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f'<{self.name}>'


_NDARRAY = _Marker('numpy.ndarray')


class Placeholder:
    """A value a pickle builds in two steps (a call, then ``BUILD``): what
    the call returns until :func:`resolve` swaps in :attr:`value`."""

    value: Any

    def __setstate__(self, state: Any) -> None:
        raise Refused(f'refused to set the state of {type(self).__name__}')

    def get(self) -> Any:
        _check('value' in self.__dict__,
               '{} that the pickle never completed', type(self))
        return self.value


class NumpyDType(Placeholder):
    """A numpy dtype of :data:`NUMPY_KINDS` (checked here too: torch's
    unpickler may call this class by its name); ``BUILD`` may only restate
    its own state."""

    def __init__(self, name: str) -> None:
        _check(
            type(name) is str and name in NUMPY_KINDS,
            'numpy dtype {}: only plain numeric dtypes (' + _KIND_NAMES +
            ') may be loaded', name)
        self.value = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        _check(state == self.get().__reduce__()[2],
               'numpy dtype state {} for {}: only the plain state of the '
               'dtype is taken', state, self.value)


def _numpy_dtype(name, align=False, copy=True):
    """``numpy.dtype`` (how numpy pickles a dtype)."""
    _check(type(align) is bool and type(copy) is bool,
           'numpy dtype arguments {}', (name, align, copy))
    return NumpyDType(name)


def _plain_dtype(dtype: Any) -> np.dtype:
    _check(isinstance(dtype, NumpyDType), 'numpy dtype {}', dtype)
    return dtype.get()


def _numpy_scalar(dtype, raw):
    """``numpy.core.multiarray.scalar``: a numpy scalar from its bytes."""
    dtype = _plain_dtype(dtype)
    _check(type(raw) is bytes and len(raw) == dtype.itemsize,
           '{} as the bytes of a numpy {} scalar', raw, dtype)
    return np.frombuffer(raw, dtype)[0]


class NumpyArray(Placeholder):
    """A numpy array of a plain dtype, copied from the raw bytes of its
    ``BUILD`` state."""

    def __setstate__(self, state: Any) -> None:
        _check(type(state) is tuple and len(state) == 5 and state[0] == 1,
               'numpy array state {}', state)
        _, shape, dtype, fortran, raw = state
        shape = _check_ints(shape, 'numpy array shape')
        dtype = _plain_dtype(dtype)
        _check(type(fortran) is bool, 'numpy array order')
        _check(
            type(raw) is bytes
            and len(raw) == bounded_nbytes(shape, dtype.itemsize, len(raw)),
            'numpy array data {} for shape {} and dtype {}', raw, shape,
            dtype)
        self.value = np.frombuffer(
            raw, dtype).reshape(shape, order='F' if fortran else 'C').copy(
                order='K')


def _reconstruct(subtype, shape, typecode):
    """``numpy.core.multiarray._reconstruct``: an empty array that the
    pickle then fills through ``BUILD``."""
    _check(subtype is _NDARRAY and shape == (0, ) and typecode == b'b',
           'numpy _reconstruct{}', (subtype, shape, typecode))
    return NumpyArray()


# ------------------------------------------------------------ MMEngine
class StatisticName(str):
    """A ``HistoryBuffer`` statistics method, by name only."""


class HistoryBufferState(Placeholder):
    """What a pickled ``mmengine.logging.HistoryBuffer`` becomes: its
    ``BUILD`` state is checked and handed to ``HistoryBuffer``'s
    constructor; ``HistoryBuffer.__setstate__`` (which updates a dict that
    every ``HistoryBuffer`` shares) is never called."""

    #: The state keys MMEngine writes (0.7: the first three; >= 0.8 adds
    #: ``statistics_methods``).
    KEYS = ('max_length', '_log_history', '_count_history')

    def __setstate__(self, state: Any) -> None:
        _check(
            type(state) is dict and all(k in state for k in self.KEYS)
            and set(state) <= set(self.KEYS) | {'statistics_methods'},
            'HistoryBuffer state {}', state)
        max_length = state['max_length']
        _check(_is_int(max_length) and 0 < max_length <= _MAX_INT,
               'HistoryBuffer max_length {}', max_length)
        log, count = (_plain_array(state[k], k) for k in self.KEYS[1:])
        _check(log.shape == count.shape,
               'HistoryBuffer histories of different lengths')
        methods = state.get('statistics_methods', {})
        _check(
            type(methods) is dict and all(
                type(k) is str and isinstance(v, StatisticName)
                for k, v in methods.items()),
            'HistoryBuffer statistics_methods: expected names of its '
            'statistics')
        self.value = HistoryBuffer(log, count, max_length)


def _plain_array(value: Any, what: str) -> np.ndarray:
    _check(isinstance(value, NumpyArray), 'HistoryBuffer {}', what)
    array = value.get()
    _check(array.ndim == 1, 'HistoryBuffer {} of shape {}', what, array.shape)
    return array


def _statistic_name(owner, name):
    """Stands for ``builtins.getattr``, which protocol 2 writes for
    ``HistoryBuffer.<statistics method>``: returns the name, looks up
    nothing."""
    _check(owner is HistoryBufferState and type(name) is str
           and name.isidentifier() and not name.startswith('__'),
           'getattr({}, {}): only the name of a HistoryBuffer statistics '
           'method may be given', owner, name)
    return StatisticName(name)


# ------------------------------------------------------------ the list
def _torch_dtypes() -> Dict[str, Any]:
    return {
        f'torch.{name}': value
        for name, value in vars(torch).items()
        if isinstance(value, torch.dtype)
    }


def _constructors() -> Dict[str, Callable]:
    table: Dict[str, Callable] = {
        'torch._utils._rebuild_tensor': _rebuild_tensor,
        'torch._utils._rebuild_tensor_v2': _rebuild_tensor_v2,
        'torch._utils._rebuild_tensor_v3': _rebuild_tensor_v3,
        'torch._utils._rebuild_parameter': _rebuild_parameter,
        'torch._tensor._rebuild_from_type_v2': _rebuild_from_type_v2,
        'torch.Size': _size,
        'torch.device': _device,
        'collections.OrderedDict': _ordered_dict,
        'collections.Counter': _counter,
        '_codecs.encode': _encode,
        'builtins.set': _set,
        'builtins.frozenset': _frozenset,
        'builtins.complex': _complex,
        'builtins.slice': _slice,
        'builtins.bytearray': _bytearray,
        'builtins.getattr': _statistic_name,
        'numpy.dtype': _numpy_dtype,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBufferState,
    }
    for core in ('numpy.core', 'numpy._core'):  # numpy 1 / numpy 2 names
        table[f'{core}.multiarray._reconstruct'] = _reconstruct
        table[f'{core}.multiarray.scalar'] = _numpy_scalar
    return table


#: ``{'module.name': what the unpickler returns for it}``: this module's
#: constructors, torch dtypes, ``torch.Tensor`` / ``torch.nn.Parameter``
#: (as the type argument of ``_rebuild_from_type_v2``), ``UntypedStorage``
#: (as a storage type) and the ``numpy.ndarray`` marker. Nothing else.
ALLOWED: Dict[str, Any] = dict(
    _constructors(), **_torch_dtypes(), **{
        'torch.Tensor': torch.Tensor,
        'torch._tensor.Tensor': torch.Tensor,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        'torch.UntypedStorage': torch.UntypedStorage,
        'torch.storage.UntypedStorage': torch.UntypedStorage,
        'numpy.ndarray': _NDARRAY,
    })
_CALLABLE = frozenset(
    id(v) for k, v in ALLOWED.items()
    if callable(v) and v not in (torch.Tensor, torch.nn.Parameter,
                                 torch.UntypedStorage))
#: The classes ``NEWOBJ`` may create (with no arguments).
_NEWOBJ = (HistoryBufferState, )
#: The containers each filling opcode may fill.
_LISTS, _DICTS, _SETS = (list, ), (dict, OrderedDict, Counter), (set, )

#: What torch's own ``weights_only`` unpickler (torch >= 2.6) is given,
#: per call (``torch.serialization.safe_globals``), never for the whole
#: process: this module's constructors under the names pickles use, and the
#: placeholder types it may ``BUILD``. For the names torch allows itself
#: (tensors, ``OrderedDict``, ``set``...) torch's own entries win; ours add
#: numpy, MMEngine's ``HistoryBuffer`` and the builtins torch lacks.
#: torch's own dtypes and classes are not repeated.
TORCH_SAFE_GLOBALS: List[Tuple[Any, str]] = [
    (obj, name) for name, obj in ALLOWED.items()
    if id(obj) in _CALLABLE or obj is _NDARRAY
] + [(cls, f'{cls.__module__}.{cls.__qualname__}')
     for cls in (NumpyDType, NumpyArray)]


# ------------------------------------------------------------ the unpickler
class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler with every opcode that imports, calls or
    sets state replaced by a checked one.

    ``find_class`` returns only :data:`ALLOWED` entries; ``REDUCE``,
    ``NEWOBJ`` and ``NEWOBJ_EX`` call only this module's constructors;
    ``BUILD`` only fills an ``OrderedDict``'s ``__dict__`` or a
    placeholder. A checkpoint's pickle holds only the structure (the tensor
    bytes are read outside it), so the pure-Python unpickler costs little.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:
            # Protocol 2 (torch.save's) writes Python 2 names such as
            # __builtin__.set; map them as pickle.Unpickler does.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        key = f'{module}.{name}'
        if key not in ALLOWED:
            _check(False, 'global {}: it is not on the allow-list of '
                   'checkpoint types', key)
        return ALLOWED[key]

    def load_global(self) -> None:
        module = self.readline()[:-1].decode('utf-8')
        name = self.readline()[:-1].decode('utf-8')
        self.append(self._global(module, name))

    def load_stack_global(self) -> None:
        name = self.stack.pop()
        module = self.stack.pop()
        self.append(self._global(module, name))

    def _global(self, module: Any, name: Any) -> Any:
        """``find_class``, after refusing a ``*Storage`` name that is not
        one of torch's storage types: torch's ``torch.load`` maps such a
        name from any module to a storage type before ``find_class``."""
        _check(type(module) is str and type(name) is str,
               'a global whose module or name is not a text')
        _check('Storage' not in name or is_storage_type(module, name),
               f'global {module[:60]}.{name[:60]}: only torch\'s own '
               'storage types may be named')
        return self.find_class(module, name)

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        _check(id(func) in _CALLABLE and type(args) is tuple,
               'a call of {}: only checkpoint constructors may be called',
               func)
        _check(not kwargs, 'keyword arguments')
        return func(*args)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, {})

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, kwargs)

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        _check(cls in _NEWOBJ and args == () and not kwargs,
               'creating {} with {} and {}', cls, args, kwargs)
        self.append(cls())

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Placeholder):
            inst.__setstate__(state)
            return
        _check(
            type(inst) is OrderedDict and type(state) is dict and all(
                type(k) is str and not k.startswith('__') for k in state),
            'setting the state of {}', inst)
        inst.__dict__.update(state)

    def _target(self, types: tuple, opcode: str) -> Any:
        target = self.stack[-1]
        _check(type(target) in types, '{} on {}', opcode, target)
        return target

    def load_append(self) -> None:
        value = self.stack.pop()
        self._target(_LISTS, 'APPEND').append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target(_LISTS, 'APPENDS').extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._target(_DICTS, 'SETITEM')
        _check_keys((key, ))
        target[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target(_DICTS, 'SETITEMS')
        _check_keys(items[0::2])
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target(_SETS, 'ADDITEMS')
        _check_keys(items)
        target.update(items)

    def _refuse_opcode(self) -> None:
        raise Refused('refused a pickle opcode (INST, OBJ or EXT) that '
                      'torch.save never writes')

    for _opcodes, _method in (
        ((pickle.GLOBAL, ), load_global),
        ((pickle.STACK_GLOBAL, ), load_stack_global),
        ((pickle.REDUCE, ), load_reduce),
        ((pickle.NEWOBJ, ), load_newobj),
        ((pickle.NEWOBJ_EX, ), load_newobj_ex),
        ((pickle.BUILD, ), load_build),
        ((pickle.APPEND, ), load_append),
        ((pickle.APPENDS, ), load_appends),
        ((pickle.SETITEM, ), load_setitem),
        ((pickle.SETITEMS, ), load_setitems),
        ((pickle.ADDITEMS, ), load_additems),
        ((pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4),
         _refuse_opcode),
    ):
        for _opcode in _opcodes:
            dispatch[_opcode[0]] = _method
    del _opcodes, _method, _opcode


class RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs of a pickle module."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    @staticmethod
    def loads(data, **kwargs):
        return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


# ------------------------------------------------------------ resolving
_CONTAINERS = _DICTS + (list, tuple, set, frozenset)
#: The values a loaded checkpoint may hold besides containers of them,
#: tensors and numpy values (:func:`check_values`).
_PLAIN_VALUES = frozenset({
    type(None), bool, int, float, complex, str, bytes, bytearray,
    torch.dtype, torch.device, torch.Size, HistoryBuffer
})


def resolve(obj: Any) -> Any:
    """``obj`` with every placeholder replaced by its value, refused
    unless what is left holds values only (:func:`check_values`)."""
    obj = _replace_placeholders(obj)
    check_values(obj)
    return obj


def _replace_placeholders(obj: Any) -> Any:
    """``obj`` with each placeholder in its containers replaced by its
    value. Each container is walked once (remembered on entry), so an
    object a pickle shares among many others costs one visit, not one
    per path to it."""
    # id -> (the container, kept alive so its id stays its own; what
    # replaces it)
    done: Dict[int, Tuple[Any, Any]] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, Placeholder):
            return value.get()
        kind = type(value)
        if kind not in _CONTAINERS:
            return value
        if id(value) in done:
            return done[id(value)][1]
        done[id(value)] = (value, value)
        if kind in _DICTS:
            for key in list(value):
                _check(walk(key) is key, 'a placeholder as a dict key')
                value[key] = walk(value[key])
            attributes = getattr(value, '__dict__', {})  # _metadata
            for name in list(attributes):
                attributes[name] = walk(attributes[name])
        elif kind is list:
            value[:] = [walk(v) for v in value]
        else:
            items = [walk(v) for v in value]
            if any(a is not b for a, b in zip(items, value)):
                done[id(value)] = (value, kind(items))
        return done[id(value)][1]

    return walk(obj)


def check_values(obj: Any) -> None:
    """Refuse ``obj`` unless it holds only values: tensors and
    ``Parameter`` s that hold no more elements than their storage, the
    types of :data:`_PLAIN_VALUES`, numpy arrays, scalars and dtypes of
    :data:`NUMPY_KINDS`, ``slice`` s of these, and the containers of
    :data:`_CONTAINERS` (with their attributes, such as a ``state_dict``'s
    ``_metadata``) holding these. Classes and functions (a constructor of
    the allow-list, ``torch.Tensor`` the class), markers, names and
    placeholders are refused wherever they are. Each object is visited
    once, without recursion."""
    seen = set()
    todo = [obj]
    while todo:
        value = todo.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        kind = type(value)
        if kind in _PLAIN_VALUES:
            continue
        if kind in _CONTAINERS:
            todo.extend(value)
            if kind in _DICTS:
                todo.extend(value.values())
                todo.extend(getattr(value, '__dict__', {}).values())
        elif kind is slice:
            todo.extend((value.start, value.stop, value.step))
        elif kind in (torch.Tensor, torch.nn.Parameter):
            _check_tensor_value(value)
            todo.extend(vars(value).values())
        else:
            _check_other_value(value)


def _check_tensor_value(tensor: torch.Tensor) -> None:
    if tensor.layout is torch.strided:
        nbytes = tensor.untyped_storage().nbytes()
        _check_view_size(
            bounded_nbytes(tuple(tensor.shape), tensor.element_size(), nbytes),
            nbytes)


def _plain_numpy(dtype: np.dtype) -> bool:
    name = dtype.str[1:]
    return (name in NUMPY_KINDS and dtype.isnative
            and dtype.metadata is None and dtype == np.dtype(name))


def _check_other_value(value: Any) -> None:
    """Refuse ``value`` unless it is a numpy value of a plain dtype."""
    if isinstance(value, StatisticName):
        _check(False, 'the HistoryBuffer statistics method name {} outside '
               'the state it belongs to', str(value))
    if isinstance(value, (np.ndarray, np.generic, np.dtype)):
        dtype = value if isinstance(value, np.dtype) else value.dtype
        _check(
            _plain_numpy(dtype) and (isinstance(value, np.dtype) or type(
                value) in (np.ndarray, dtype.type)),
            'numpy value {}: only plain numeric dtypes (' + _KIND_NAMES +
            ') may be loaded', value)
        return
    _check(
        False, '{} in the loaded checkpoint: a checkpoint holds only '
        'tensors, numbers, strings, bytes, containers of these, and numpy '
        'and HistoryBuffer values', value)
