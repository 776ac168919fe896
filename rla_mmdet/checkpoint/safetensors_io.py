"""Weights in the ``.safetensors`` format: read and written with no pickle.

A ``.safetensors`` file is an 8-byte little-endian header length, a JSON
header (each tensor's ``dtype``, ``shape`` and ``data_offsets`` into the
data area, and an optional ``__metadata__`` of strings), then the raw
tensor bytes. Reading it runs no code from it, whoever wrote it; the
``safetensors`` library (imported only when such a file is named) parses
it.

:func:`load_safetensors` is what :func:`~.loading.load_checkpoint_file`
calls for a file whose content is this format (:func:`is_safetensors`: the
extension is not looked at). Before the library sees the bytes, the header
is checked here (:func:`check_header`): its length within the file, a JSON
object, every dtype known, shapes of small non-negative integers, and the
offsets of the tensors tiling the data area exactly, each ``prod(shape) *
itemsize`` long. So a file that passes allocates no more than its own
size, and a file that does not is refused with one sentence.

The checkpoint it gives is ``{'state_dict': tensors, 'meta': meta}``, as
MMEngine and the converters write them. ``meta`` is stored in
``__metadata__``, one entry per key, each value as JSON text
(:func:`meta_to_header`, :func:`meta_from_header`); an entry of another
writer that is not JSON (e.g. ``format: pt``) is kept as the string. JSON
has no tuples: a tuple comes back as a list.

A ``.safetensors`` file holds weights only: no optimizer, no parameter
schedulers, no message hub. It initialises a model (``init_cfg``,
``load_from``, ``tools/test.py``, ``init_detector``), but a training run
cannot resume from it (:func:`check_resume_source`).
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .records import bounded_nbytes

__all__ = [
    'SUFFIX', 'is_safetensors', 'is_safetensors_file', 'load_safetensors',
    'check_header', 'meta_to_header', 'meta_from_header',
    'dump_safetensors', 'save_safetensors', 'check_resume_source'
]

SUFFIX = '.safetensors'
#: dtype names of the format -> (name of the torch dtype, bytes per item).
#: Those whose torch dtype this torch lacks are unknown to it.
_DTYPES = {
    'F64': ('float64', 8), 'F32': ('float32', 4), 'F16': ('float16', 2),
    'BF16': ('bfloat16', 2), 'I64': ('int64', 8), 'I32': ('int32', 4),
    'I16': ('int16', 2), 'I8': ('int8', 1), 'U8': ('uint8', 1),
    'BOOL': ('bool', 1), 'U16': ('uint16', 2), 'U32': ('uint32', 4),
    'U64': ('uint64', 8), 'F8_E4M3': ('float8_e4m3fn', 1),
    'F8_E5M2': ('float8_e5m2', 1)
}
_HEADER_LENGTH_BYTES = 8
#: Digits an integer of the header may have (offsets are below 2**64).
_MAX_INT_DIGITS = 20


def is_safetensors(head: bytes) -> bool:
    """Whether ``head`` (the first 9 or more bytes of a file) starts a
    ``.safetensors`` file: a header length, then the header's ``{``.

    No ``torch.save`` file starts so: a zip archive starts with ``PK`` and
    a pickle with its protocol byte.
    """
    return (len(head) > _HEADER_LENGTH_BYTES
            and head[_HEADER_LENGTH_BYTES:_HEADER_LENGTH_BYTES + 1] == b'{')


def is_safetensors_file(name: str) -> bool:
    """Whether the checkpoint ``name`` is a ``.safetensors`` file: by its
    content for a local file, by its extension for a URL."""
    if '://' in name:
        return name.split('?', 1)[0].endswith(SUFFIX)
    path = osp.expanduser(name)
    if not osp.isfile(path):
        return path.endswith(SUFFIX)
    with open(path, 'rb') as f:
        return is_safetensors(f.read(_HEADER_LENGTH_BYTES + 1))


# ------------------------------------------------ the header
class _BadHeader(ValueError):
    """What is wrong with a header, for the loader's sentence."""


def _small_int(text: str) -> int:
    if len(text.lstrip('-')) > _MAX_INT_DIGITS:
        raise _BadHeader(f'an integer of {len(text)} digits')
    return int(text)


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _BadHeader('a name given twice')
    return result


def _parse_json(text: str) -> Any:
    """``json.loads`` with integers bounded and repeated keys refused."""
    try:
        return json.loads(
            text, parse_int=_small_int, object_pairs_hook=_unique_keys)
    except _BadHeader:
        raise
    except (ValueError, RecursionError) as exc:
        raise _BadHeader(f'a header that is not JSON ({type(exc).__name__})'
                         ) from None


def _dtype(name: Any) -> Tuple[torch.dtype, int]:
    known = _DTYPES.get(name) if isinstance(name, str) else None
    dtype = getattr(torch, known[0], None) if known else None
    if dtype is None:
        raise _BadHeader(
            'a dtype that this torch does not know (known: ' +
            ', '.join(n for n, (t, _) in _DTYPES.items()
                      if hasattr(torch, t)) + ')')
    return dtype, known[1]


def _entry(entry: Any, limit: int) -> Tuple[int, int, int]:
    """``(begin, end, nbytes)`` of one tensor's header entry (``nbytes``
    capped at ``limit + 1``)."""
    if not (isinstance(entry, dict)
            and set(entry) == {'dtype', 'shape', 'data_offsets'}):
        raise _BadHeader('a tensor entry without exactly dtype, shape and '
                         'data_offsets')
    _, itemsize = _dtype(entry['dtype'])
    shape, offsets = entry['shape'], entry['data_offsets']
    if not (isinstance(shape, list) and all(
            type(n) is int and n >= 0 for n in shape)):
        raise _BadHeader('a shape that is not a list of sizes >= 0')
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
            type(n) is int for n in offsets)):
        raise _BadHeader('data_offsets that are not two integers')
    begin, end = offsets
    nbytes = bounded_nbytes(shape, itemsize, limit)
    return begin, end, limit + 1 if nbytes is None else nbytes


def check_header(data: bytes) -> Dict[str, Any]:
    """The JSON header of the ``.safetensors`` bytes ``data``, checked.

    Raises:
        ValueError: the bytes are truncated, the header is longer than the
            file or is not a JSON object of tensor entries, a dtype is
            unknown, a shape is not sizes, an entry's bytes do not match
            its dtype and shape, or the tensors' bytes are out of the data
            area, overlap or leave a gap (the message says which; it names
            no value of the file).
    """
    size = len(data)
    if size < _HEADER_LENGTH_BYTES:
        raise _BadHeader(f'{size} bytes, fewer than the 8 of the header '
                         'length (the file is truncated)')
    length = int.from_bytes(data[:_HEADER_LENGTH_BYTES], 'little')
    if length > size - _HEADER_LENGTH_BYTES:
        raise _BadHeader(f'a header of {length} bytes in a file of {size} '
                         'bytes (the file is truncated, or not this format)')
    try:
        text = data[_HEADER_LENGTH_BYTES:_HEADER_LENGTH_BYTES +
                    length].decode('utf-8')
    except UnicodeDecodeError:
        raise _BadHeader('a header that is not UTF-8 text') from None
    header = _parse_json(text)
    if not isinstance(header, dict):
        raise _BadHeader('a header that is not a JSON object')
    metadata = header.get('__metadata__', {})
    if not (isinstance(metadata, dict) and all(
            isinstance(v, str) for v in metadata.values())):
        raise _BadHeader('a __metadata__ that is not a map of strings')
    area = size - _HEADER_LENGTH_BYTES - length
    spans = sorted(
        _entry(v, area) for k, v in header.items() if k != '__metadata__')
    at = 0
    for begin, end, nbytes in spans:
        if begin < 0 or end > area:
            raise _BadHeader(f'a tensor at bytes {begin} to {end} of a data '
                             f'area of {area} bytes (the file is truncated, '
                             'or its offsets are out of range)')
        if end - begin != nbytes:
            need = nbytes if nbytes <= area else f'more than the {area} of ' \
                'the data area'
            raise _BadHeader('a tensor whose data_offsets span '
                             f'{end - begin} bytes where its dtype and shape '
                             f'need {need}')
        if begin != at:
            raise _BadHeader('tensors whose data_offsets overlap' if begin <
                             at else 'a gap between the tensors\' bytes')
        at = end
    if at != area:
        raise _BadHeader(f'{area - at} bytes after the last tensor')
    return header


# ------------------------------------------------ meta
def meta_from_header(metadata: Mapping[str, str]) -> Dict[str, Any]:
    """The ``meta`` dict of a header's ``__metadata__``: each value read as
    JSON, or kept as the string where it is not JSON."""
    meta = {}
    for key, text in metadata.items():
        try:
            meta[key] = _parse_json(text)
        except _BadHeader:
            meta[key] = text
    return meta


def meta_to_header(meta: Mapping[str, Any]) -> Dict[str, str]:
    """``__metadata__`` for ``meta``: each value as JSON text.

    Raises:
        TypeError: a key is not a str, or a value is not made of what JSON
            holds (dicts with str keys, lists, tuples, str, numbers, bool,
            None).
    """
    header = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise TypeError(
                'meta keys must be str to be stored in a .safetensors '
                f'header, got a {type(key).__name__}.')
        try:
            header[key] = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f'meta[{key!r}] cannot be stored in a .safetensors header, '
                f'which holds JSON ({str(exc)[:200]}); remove it from meta '
                'or write a .pth file.') from None
    return header


# ------------------------------------------------ reading
def _safetensors_torch():
    """``safetensors.torch``, imported now, in a supported version."""
    from ..dependencies import UnsupportedVersionError, check_version
    try:
        try:
            import safetensors.torch
        except ImportError:
            check_version('safetensors', None)  # says what to install
            raise
        check_version('safetensors', getattr(safetensors, '__version__', '0'))
    except UnsupportedVersionError as exc:
        # An ImportError only: the file is not at fault (a ValueError would
        # have the loader delete a downloaded copy).
        raise ImportError(str(exc)) from None
    return safetensors.torch


def _unreadable(label: str, what: str) -> ValueError:
    return ValueError(
        f'{label} is a .safetensors file that cannot be read: it has {what}; '
        'download or write it again (tools/model_converters/publish_model.py '
        'writes them).')


def _to_location(tensors: 'OrderedDict', map_location: Any,
                 label: str) -> 'OrderedDict':
    """``tensors`` (on the CPU) moved as ``torch.load``'s ``map_location``
    would: a device or its name, or a dict whose ``'cpu'`` entry names
    one."""
    if isinstance(map_location, dict):
        map_location = map_location.get('cpu')
    if map_location is None or map_location == 'cpu':
        return tensors
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(
            f'map_location for the .safetensors file {label} must be a '
            'device or its name (e.g. "cpu", "cuda:0"), got a '
            f'{type(map_location).__name__}.')
    device = torch.device(map_location)
    return OrderedDict((k, v.to(device)) for k, v in tensors.items())


def load_safetensors(data: bytes, label: str,
                     map_location: Any = 'cpu') -> Dict[str, Any]:
    """The checkpoint ``{'state_dict': ..., 'meta': ...}`` in the
    ``.safetensors`` bytes ``data``.

    Args:
        data: The whole file.
        label: The file as named in errors (e.g. ``repr(path)``).
        map_location: Where the tensors go: a device, its name or
            ``{'cpu': device}``; ``None`` or ``'cpu'`` keeps them on the CPU.

    Raises:
        ValueError: the file is truncated or its header is not valid (see
            :func:`check_header`); one sentence naming ``label``.
        ImportError: the ``safetensors`` package is not installed.
    """
    try:
        header = check_header(data)
    except _BadHeader as exc:
        raise _unreadable(label, str(exc)) from None
    library = _safetensors_torch()
    try:
        tensors = library.load(data)
    except Exception as exc:  # the library's SafetensorError is an Exception
        raise _unreadable(
            label, f'content the safetensors library refuses '
            f'({type(exc).__name__}: {str(exc)[:200]})') from None
    state_dict = OrderedDict(
        (k, tensors[k]) for k in header if k != '__metadata__')
    return dict(
        state_dict=_to_location(state_dict, map_location, label),
        meta=meta_from_header(header.get('__metadata__', {})))


# ------------------------------------------------ writing
def _plain_tensors(state_dict: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """Contiguous CPU tensors of ``state_dict``, each with storage of its
    own (the format stores no views of one another)."""
    tensors, storages = {}, set()
    for key, value in state_dict.items():
        if not (isinstance(key, str) and torch.is_tensor(value)):
            raise TypeError(
                'a .safetensors file holds tensors named by str; the state '
                f'dict maps a {type(key).__name__} to a '
                f'{type(value).__name__}.')
        value = value.detach().cpu().contiguous()
        pointer = value.untyped_storage().data_ptr() if hasattr(
            value, 'untyped_storage') else value.storage().data_ptr()
        if pointer in storages and value.numel():
            value = value.clone()
        storages.add(pointer)
        tensors[key] = value
    return tensors


def dump_safetensors(state_dict: Mapping[str, torch.Tensor],
                     meta: Optional[Mapping[str, Any]] = None) -> bytes:
    """The ``.safetensors`` file of ``state_dict`` and ``meta`` (stored in
    ``__metadata__``, see :func:`meta_to_header`)."""
    header = meta_to_header(meta or {})
    tensors = _plain_tensors(state_dict)
    try:
        return _safetensors_torch().save(tensors, metadata=header)
    except Exception as exc:  # the library's SafetensorError is an Exception
        raise ValueError(
            'the safetensors library cannot store this state dict '
            f'({type(exc).__name__}: {str(exc)[:200]}); write a .pth file '
            'instead.') from None


def save_safetensors(state_dict: Mapping[str, torch.Tensor],
                     path: str,
                     meta: Optional[Mapping[str, Any]] = None) -> None:
    """Write :func:`dump_safetensors` to ``path``, atomically (a temporary
    file in the same folder renamed into place)."""
    data = dump_safetensors(state_dict, meta)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'  # a new file's usual permissions
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def check_resume_source(load_from: Optional[str]) -> None:
    """Refuse to resume a training run from a ``.safetensors`` file.

    Resuming restores the optimizer, the parameter schedulers and the
    iteration counters (the message hub) along with the weights; a
    ``.safetensors`` file holds only the weights, so the run would start
    over with a fresh optimizer under the old iteration number, or stop
    with a ``KeyError`` inside MMEngine.

    Raises:
        ValueError: ``load_from`` is a ``.safetensors`` file (by content,
            or by extension for a URL).
    """
    if load_from and is_safetensors_file(str(load_from)):
        raise ValueError(
            f'cannot resume from {str(load_from)!r}: a .safetensors file '
            'holds weights only, not the optimizer, parameter schedulers and '
            'iteration counters a resumed run needs; resume from the .pth '
            'the run saved, or start a new run from these weights with '
            'load_from (without --resume).')
