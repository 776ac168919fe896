"""Checkpoint loading that never runs code from the file.

:func:`load_checkpoint_file` is the one place this package reads a
checkpoint file. It refuses, with :class:`UnsafeCheckpointError`:

1. A zip archive holding anything but the records ``torch.save`` writes
   (``data.pkl``, ``data/<n>``, ``byteorder``, ``version``,
   ``.data/version``, ``.data/serialization_id``, ``.format_version``,
   ``.storage_alignment``, all in the archive's one top-level folder).
   ``torch.load`` hands a TorchScript archive (``torch.jit.save``: ``code/``,
   ``constants.pkl``...) to ``torch.jit.load`` before it unpickles anything,
   whatever ``pickle_module`` says, and ``torch.jit.load`` runs the
   archive's ``__setstate__`` methods. The records are listed (by Python's
   ``zipfile`` and by torch's own zip reader, the view ``torch.load`` acts
   on) before ``torch.load`` is called, on every supported torch and on both
   routes below; this check is this package's, not torch's.
2. A pickle naming a global outside the allow-list: tensors and torch's own
   rebuild functions, containers, and the types MMEngine checkpoints also
   hold (its ``HistoryBuffer``, numpy arrays and scalars, a
   ``collections.Counter`` for ``MultiStepLR`` milestones, and a ``getattr``
   that only returns the statistics methods a ``HistoryBuffer`` pickles by
   name). Such a global is refused before it is imported.

Who enforces the allow-list of 2. depends on torch:

- torch >= 2.6 (``restricted=None``, the default, or ``False``): torch
  itself, ``torch.load(weights_only=True)`` with :data:`SAFE_GLOBALS` added
  by :func:`register_safe_globals`, which ``import rla_mmdet`` calls;
  MMEngine's own ``torch.load`` calls then load and resume its checkpoints
  and still refuse anything else (and torch >= 2.6 refuses TorchScript
  archives there too).
- torch 2.0 to 2.5, and ``restricted=True`` on any torch: this package,
  :class:`RestrictedUnpickler` passed to ``torch.load`` as its
  ``pickle_module`` (``add_safe_globals`` is missing below 2.4 and cannot
  take a ``(function, name)`` entry below 2.6). MMEngine's own
  ``torch.load`` calls unpickle everything on these versions (torch's
  default there) and open TorchScript archives; the tools and the
  :class:`~rla_mmdet.engine.CheckpointIOHook` of this package's configs
  route MMEngine's local loads through :func:`load_checkpoint_file`.

Legacy (non-zip) ``torch.save`` files take the same two routes. A missing,
corrupt or unsafe file is reported in one sentence.

What a checkpoint must hold to fit a backbone is declared by the backbone
(:class:`CheckpointAdapterMixin`) and checked by :func:`fit_state_dict`, for
:func:`load_backbone_weights` and the converters alike.
"""
import _compat_pickle
import importlib
import os
import os.path as osp
import pickle
import re
import types
import zipfile
from abc import ABCMeta, abstractmethod
from collections import Counter, OrderedDict
from typing import (Any, BinaryIO, Callable, Dict, Iterable, List, Mapping,
                    Optional, Tuple)

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

__all__ = [
    'UnsafeCheckpointError', 'SAFE_GLOBALS', 'register_safe_globals',
    'load_checkpoint_file', 'get_state_dict', 'load_backbone_weights',
    'load_pretrained_init_cfg', 'split_unbuilt', 'RestrictedUnpickler',
    'CheckpointAdapterMixin', 'fit_state_dict', 'detector_unbuilt',
    'abbreviate'
]

_TORCH_VERSION = tuple(
    int(p) for p in re.findall(r'\d+', torch.__version__)[:2])
#: ``torch.load(weights_only=True)`` can enforce the whole allow-list
#: (``add_safe_globals`` with ``(function, name)`` entries: torch >= 2.6).
WEIGHTS_ONLY_ENFORCES_ALLOW_LIST = _TORCH_VERSION >= (2, 6) and hasattr(
    torch.serialization, 'add_safe_globals')


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds objects whose unpickling could run code."""


def _numpy_globals() -> List[Any]:
    major = int(np.__version__.split('.')[0])
    multiarray = importlib.import_module(
        'numpy._core.multiarray' if major >= 2 else 'numpy.core.multiarray')
    types = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their own classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType') and name != 'ObjectDType'
        ]
    return types


def _history_buffer_method(owner: Any, name: str) -> Any:
    """A ``getattr`` limited to the statistics methods of ``HistoryBuffer``.

    A ``HistoryBuffer`` pickles its ``_statistics_methods`` (``min``,
    ``max``, ``current``, ``mean`` and any registered with
    ``HistoryBuffer.register_statistics``) as ``getattr(HistoryBuffer,
    name)``. Allowing the builtin ``getattr`` would let a pickle reach any
    attribute of any allowed object, so the unpickler gets this instead.
    """
    # The class-level registry is only filled when a first HistoryBuffer is
    # created, which a fresh process loading a checkpoint has not done yet.
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in ('min', 'max', 'current', 'mean')
            or name in HistoryBuffer._statistics_methods):
        return getattr(owner, name)
    raise _Refused(
        f'refused getattr({owner!r}, {name!r}): only the statistics methods '
        'of mmengine.logging.HistoryBuffer may be looked up')


#: The types MMEngine checkpoints contain beyond tensors and containers.
SAFE_GLOBALS = [HistoryBuffer, Counter,
                (_history_buffer_method, 'builtins.getattr')
                ] + _numpy_globals()


def register_safe_globals() -> None:
    """Allow MMEngine's checkpoint types in ``torch.load(weights_only=True)``.

    ``weights_only`` stays on: a pickle naming any other global is refused.
    torch 2.4 and 2.5 get the entries they accept (not the ``getattr``
    replacement, which needs torch >= 2.6); torch < 2.4 has no list to add
    to, and :func:`load_checkpoint_file` enforces the list itself there.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return
    if WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:
        add(SAFE_GLOBALS)
    else:
        add([g for g in SAFE_GLOBALS if not isinstance(g, tuple)])


# ------------------------------------------------- the restricted unpickler
class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


def _global_name(obj: Any) -> str:
    return f'{obj.__module__}.{obj.__qualname__}'


def _allowed_globals() -> Dict[str, Any]:
    """``{'module.name': object}`` that :class:`RestrictedUnpickler` may
    return: what ``torch.save`` writes for tensors, and
    :data:`SAFE_GLOBALS`."""
    allowed: Dict[str, Any] = {}
    try:  # torch's own weights-only list (a private helper of torch)
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed.update(_get_allowed_globals())
    except (ImportError, AttributeError):
        pass
    for name in ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3',
                 '_rebuild_parameter', '_rebuild_parameter_with_state',
                 '_rebuild_sparse_tensor', '_rebuild_meta_tensor_no_storage',
                 '_rebuild_qtensor', '_rebuild_nested_tensor'):
        if hasattr(torch._utils, name):
            allowed[f'torch._utils.{name}'] = getattr(torch._utils, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f'torch.{name}'] = getattr(torch, name)
    allowed.update({
        'torch._tensor._rebuild_from_type_v2':
        torch._tensor._rebuild_from_type_v2,
        'torch.serialization._get_layout': torch.serialization._get_layout,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        'torch.Size': torch.Size,
        'torch.Tensor': torch.Tensor,
        'torch.device': torch.device,
        'collections.OrderedDict': OrderedDict,
        # bytes under pickle protocol 2 (torch.save's) are _codecs.encode
        '_codecs.encode': __import__('_codecs').encode,
        'builtins.set': set,
        'builtins.frozenset': frozenset,
        'builtins.slice': slice,
        'builtins.complex': complex,
        'builtins.getattr': _history_buffer_method,
    })
    for obj in SAFE_GLOBALS:
        if not isinstance(obj, tuple):
            allowed[_global_name(obj)] = obj
    allowed['mmengine.logging.history_buffer.HistoryBuffer'] = HistoryBuffer
    # numpy 2 moved numpy.core to numpy._core: accept files of either.
    for name, obj in list(allowed.items()):
        for old, new in (('numpy.core.', 'numpy._core.'),
                         ('numpy._core.', 'numpy.core.')):
            if name.startswith(old):
                allowed.setdefault(new + name[len(old):], obj)
    return allowed


_ALLOWED: Optional[Dict[str, Any]] = None
_NOT_BUILDABLE = (type, types.FunctionType, types.BuiltinFunctionType,
                  types.MethodType, types.ModuleType)


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler that only imports the allow-list.

    ``find_class`` refuses every global but torch's tensor rebuild
    functions, storages, dtypes, ``collections.OrderedDict`` and
    :data:`SAFE_GLOBALS`; ``BUILD`` (setting the state of an object) is
    refused on classes and functions, so a pickle cannot change an allowed
    type either. It is the pure-Python unpickler, whose opcodes can be
    overridden; a checkpoint's pickle holds only the structure, the tensor
    bytes are read outside it, so this costs little.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _allowed_globals()
        if self.proto < 3 and self.fix_imports:
            # Protocol 2 (torch.save's) writes Python 2 names such as
            # __builtin__.set; map them as pickle.Unpickler does.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        # (torch's UnpicklerWrapper resolves '...Storage' names before this.)
        obj = _ALLOWED.get(f'{module}.{name}')
        if obj is None:
            raise _Refused(f'refused global {module}.{name}: it is not on '
                           'the allow-list of checkpoint types')
        return obj

    def load_build(self) -> None:
        inst = self.stack[-2]
        if isinstance(inst, _NOT_BUILDABLE):
            raise _Refused(f'refused to set the state of {inst!r}: only '
                           'instances of allowed types may be built')
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs of a pickle module."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    @staticmethod
    def loads(data, **kwargs):
        import io
        return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


# ------------------------------------------- the records of a zip checkpoint
#: The records ``torch.save`` writes into its zip archive (below the
#: archive's top-level folder), besides the tensor data ``data/<n>``.
_TORCH_SAVE_RECORDS = frozenset({
    'data.pkl', 'byteorder', 'version', '.data/version',
    '.data/serialization_id', '.format_version', '.storage_alignment'
})
_STORAGE_RECORD = re.compile(r'data/[0-9]+\Z')
_ZIP_MAGIC = b'PK\x03\x04'  # what torch.load takes for its zip format


def _zipfile_records(file: BinaryIO) -> List[str]:
    """The names in the zip archive ``file``, less their one top-level
    folder (``torch.save`` puts every record in one)."""
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
    folders = {name.split('/', 1)[0] for name in names}
    if len(folders) != 1 or not all('/' in name for name in names):
        return names  # kept whole: not of torch.save's layout
    return [name.split('/', 1)[1] for name in names]


def _torch_records(file: BinaryIO) -> List[str]:
    """The records that torch's own zip reader (the one ``torch.load``
    uses) finds in ``file``; empty where this torch cannot list them."""
    reader = getattr(torch._C, 'PyTorchFileReader', None)
    if reader is None or not hasattr(reader, 'get_all_records'):
        return []
    return list(reader(file).get_all_records())


def _not_torch_save(records: Iterable[str]) -> List[str]:
    return [
        r for r in records
        if r not in _TORCH_SAVE_RECORDS and not _STORAGE_RECORD.match(r)
    ]


def _foreign_records(file: BinaryIO) -> Tuple[List[str], bool]:
    """The records of a zip checkpoint that ``torch.save`` does not write
    (as Python's ``zipfile``, then torch's reader see them), and whether it
    has ``data.pkl``; ``file`` is left at its start."""
    file.seek(0)
    records = _zipfile_records(file)
    foreign = _not_torch_save(records)
    if not foreign:
        file.seek(0)
        foreign = _not_torch_save(_torch_records(file))
    file.seek(0)
    return foreign, 'data.pkl' in records


def _check_zip_records(file: BinaryIO, filename: str) -> None:
    """Refuse a zip archive that is not a plain ``torch.save`` checkpoint,
    before ``torch.load`` opens it (it would hand a TorchScript archive to
    ``torch.jit.load``, which runs the archive's code)."""
    if file.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
        file.seek(0)
        return  # a legacy torch.save pickle: the unpickler guards it
    try:
        foreign, has_pickle = _foreign_records(file)
    except (zipfile.BadZipFile, RuntimeError, OSError, ValueError,
            EOFError) as exc:
        raise _corrupt(filename, exc) from None
    if foreign:
        script = any(r == 'constants.pkl' or r.startswith('code/')
                     for r in foreign)
        what = ('a TorchScript archive written by torch.jit.save'
                if script else 'a zip archive with records that torch.save '
                'does not write')
        raise UnsafeCheckpointError(
            f'refused to load {filename!r}: it is {what} '
            f'({abbreviate(foreign, 3)}), and opening it as a checkpoint '
            'could run code from it; if you trust its author, open it with '
            'torch.jit.load and save the state_dict() of the module it '
            'gives with torch.save.')
    if not has_pickle:
        raise _corrupt(filename, KeyError('the zip archive has no data.pkl'))


def _torch_load(file: BinaryIO, map_location: Any,
                restricted: Optional[bool] = None) -> Any:
    """``torch.load`` of an open file with the allow-list, whichever torch
    this is (its zip records were checked by :func:`_check_zip_records`).

    ``restricted=None`` picks ``weights_only=True`` where torch enforces
    the whole list (>= 2.6) and :class:`RestrictedUnpickler` elsewhere.
    """
    if restricted is None:
        restricted = not WEIGHTS_ONLY_ENFORCES_ALLOW_LIST
    if not restricted:
        register_safe_globals()
        return torch.load(file, map_location=map_location, weights_only=True)
    # weights_only=False only because torch refuses a pickle_module with
    # weights_only=True; the restricted unpickler does the refusing here.
    return torch.load(
        file,
        map_location=map_location,
        pickle_module=_RestrictedPickleModule,
        weights_only=False)


def load_checkpoint_file(filename: Any,
                         map_location: Any = 'cpu',
                         restricted: Optional[bool] = None) -> Dict[str, Any]:
    """Load a checkpoint file, unpickling only the allow-list.

    Args:
        filename: Path of a ``.pth`` / ``.pth.tar`` file.
        map_location: Passed to :func:`torch.load`.
        restricted: ``True`` uses :class:`RestrictedUnpickler`, ``False``
            torch's ``weights_only=True`` (torch >= 2.6 for the whole list);
            ``None`` (default) picks what this torch supports.

    Raises:
        TypeError: ``filename`` is not a path.
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file is a zip archive with records that
            ``torch.save`` does not write (a TorchScript archive...), or
            holds objects outside the allow-list; loading either could run
            code.
        ValueError: The file is truncated, corrupt or not a checkpoint.
    """
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f'checkpoint must be a file path, got {filename!r}.')
    if restricted is False and not WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:
        raise ValueError(
            f'restricted=False needs torch >= 2.6 (this is torch '
            f'{torch.__version__}, whose weights_only unpickler cannot take '
            'the whole allow-list); pass restricted=None or True.')
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist; check the path '
            '(or the init_cfg / load_from / --resume argument that gave it).')
    try:
        file = open(filename, 'rb')
    except OSError as exc:
        raise _corrupt(filename, exc) from None
    with file:
        # The records are checked in the file torch.load reads next.
        _check_zip_records(file, filename)
        checkpoint = _load_checked(file, filename, map_location, restricted)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{filename!r} holds a {type(checkpoint).__name__}, '
                         'not a checkpoint dict of tensors.')
    return checkpoint


def _load_checked(file: BinaryIO, filename: str, map_location: Any,
                  restricted: Optional[bool]) -> Any:
    """:func:`_torch_load`, its errors reported as one sentence."""
    try:
        return _torch_load(file, map_location, restricted)
    except pickle.UnpicklingError as exc:
        if isinstance(exc, _Refused) or 'Weights only load failed' in str(
                exc):
            raise UnsafeCheckpointError(
                f'refused to load {filename!r}: it contains objects that are '
                'neither tensors nor MMEngine checkpoint types, and unpickling '
                'them could run code. Only load it with torch.load('
                'weights_only=False) if you trust its author. Details: '
                f'{_first_line(exc)}') from None
        raise _corrupt(filename, exc) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            UnicodeDecodeError, ValueError, KeyError, IndexError,
            AttributeError, TypeError) as exc:
        raise _corrupt(filename, exc) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if 'refused' in line or 'Unsupported global' in line or \
                'GLOBAL' in line:
            return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _corrupt(filename: str, exc: BaseException) -> ValueError:
    return ValueError(
        f'{filename!r} is not a readable PyTorch checkpoint (truncated, '
        f'corrupt or another kind of file): {type(exc).__name__}: '
        f'{_first_line(exc)}')


# MMEngine logs 'Loads checkpoint by {name[10:]} backend', hence the name.
def load_from_local_weights_only(filename, map_location=None):
    """MMEngine's local-path loader, through :func:`load_checkpoint_file`
    (installed by :func:`rla_mmdet.engine.enable_checkpoint_io`)."""
    return load_checkpoint_file(filename, map_location)


def get_state_dict(checkpoint: Mapping, filename: str = '') -> 'OrderedDict':
    """Return the state dict of a checkpoint in any of the common layouts.

    Accepts ``{'state_dict': ...}`` (MMEngine, mmdetection 2.x and the
    authors' ImageNet ``*.pth.tar``), ``{'model': ...}`` and a bare mapping
    of tensors. A ``module.`` prefix shared by every key (written by
    ``DistributedDataParallel``) is removed.
    """
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            state_dict = checkpoint[key]
            break
    else:
        state_dict = checkpoint
    if not state_dict or not all(
            torch.is_tensor(v) for v in state_dict.values()):
        raise ValueError(
            f'{filename!r} has no state dict of tensors (looked under '
            f"'state_dict', 'model' and the top level; its keys are "
            f'{abbreviate(checkpoint)}).')
    if all(k.startswith('module.') for k in state_dict):
        state_dict = OrderedDict(
            (k[len('module.'):], v) for k, v in state_dict.items())
    return OrderedDict(state_dict)


def split_unbuilt(state_dict: Mapping[str, Any], prefixes: Tuple[str, ...]
                  ) -> Tuple['OrderedDict', List[str]]:
    """Split off the tensors of modules a backbone does not build.

    Args:
        state_dict: A checkpoint's tensors.
        prefixes: Key prefixes with no module in the model, e.g.
            ``RLAResNet.unbuilt_prefixes()`` (the ImageNet classifier and
            the norm of the last hidden-state update), with ``'backbone.'``
            in front for a whole detector.

    Returns:
        The kept tensors (in their order) and the dropped keys.
    """
    kept = OrderedDict(
        (k, v) for k, v in state_dict.items() if not k.startswith(prefixes))
    return kept, [k for k in state_dict if k.startswith(prefixes)]


def abbreviate(keys: Iterable, n: int = 5) -> str:
    """The first ``n`` items of ``keys`` for an error message, and how many
    there are in all when that is more."""
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
    return ', '.join(map(str, keys[:n])) + more


def fit_state_dict(state_dict: Mapping[str, torch.Tensor],
                   model: torch.nn.Module,
                   unbuilt: Tuple[str, ...],
                   source: str,
                   target: str,
                   hint: Optional[Callable[[List[str], List[str]], str]] = None
                   ) -> Tuple['OrderedDict', List[str]]:
    """The tensors of ``state_dict`` that ``model`` takes, in its key order.

    Keys starting with ``unbuilt`` are dropped; every other key must be one
    of ``model``'s with its shape, and every key of ``model`` must be there
    (BatchNorm's ``num_batches_tracked`` counters, which older files lack,
    excepted). The loader and both converters check files with this.

    Args:
        state_dict: The checkpoint's tensors.
        model: The module they are for (a backbone or a whole detector).
        unbuilt: Key prefixes without a module in ``model``.
        source: The file, as named in the error (e.g. ``repr(path)``).
        target: The model, as named in the error.
        hint: ``hint(missing, unexpected)`` returns what a mismatching
            file probably is (e.g.
            :meth:`CheckpointAdapterMixin.checkpoint_hint`), appended to
            the error.

    Returns:
        The kept tensors and the dropped keys.

    Raises:
        ValueError: naming ``source``, ``target`` and the first missing,
            unexpected and mismatching keys.
    """
    own = model.state_dict()
    kept, dropped = split_unbuilt(state_dict, unbuilt)
    missing = [
        k for k in own
        if k not in kept and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in kept if k not in own]
    shapes = [
        f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in kept.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f'missing keys: {abbreviate(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {abbreviate(unexpected)}')
        if shapes:
            parts.append(f'shape mismatches: {abbreviate(shapes, 3)}')
        raise ValueError(f'{source} does not fit {target}: ' +
                         '; '.join(parts) + '.' +
                         (hint(missing, unexpected) if hint else ''))
    return OrderedDict((k, kept[k]) for k in own if k in kept), dropped


# ------------------------------------------------ what a backbone declares
class CheckpointAdapterMixin(metaclass=ABCMeta):
    """What the checkpoint loader and the converters need of a backbone.

    A backbone declares how its checkpoints are laid out: the modules it
    does not build (:meth:`unbuilt_prefixes`), checks of stored layouts it
    reads (:meth:`check_state_dict`), and hints for the common mistakes
    (the plain network of its family through :attr:`plain_network`,
    :attr:`plain_key_prefixes` and :attr:`rla_modules`; its own variants
    through :meth:`variant_hint`). :func:`load_backbone_weights`, the
    converters and ``load_state_dict`` (through ``_load_from_state_dict``)
    use these and nothing else. List it before ``BaseModule`` in the bases.
    """

    #: The network of the family without RLA, for the hint on its files.
    plain_network: str = ''
    #: Key prefixes only that network's checkpoints have.
    plain_key_prefixes: Tuple[str, ...] = ()
    #: The RLA modules that network lacks, named in the hint.
    rla_modules: Tuple[str, ...] = ()

    @abstractmethod
    def describe(self) -> str:
        """A short description of the configuration, for error messages."""

    @abstractmethod
    def unbuilt_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of checkpoints that this backbone has no module
        for; loading drops them quietly."""

    @staticmethod
    def check_state_dict(state_dict: Mapping[str, torch.Tensor],
                         source: str = 'the state dict',
                         prefix: str = '') -> None:
        """Refuse a state dict whose stored layout this backbone cannot
        take (keys under ``prefix``; ``source`` names it in the error).
        Every layout passes unless a backbone says otherwise."""

    def variant_hint(self, missing: List[str], unexpected: List[str]) -> str:
        """A sentence on which variant of this backbone a mismatching file
        is from (``''`` when none fits)."""
        return ''

    @staticmethod
    def marker_hint(missing: List[str], unexpected: List[str], marker: str,
                    has: str, lacks: str) -> str:
        """``has`` when only the file has keys with ``marker`` in them,
        ``lacks`` when only the model has them, else ``''``."""
        if any(marker in k for k in unexpected):
            return has
        if any(marker in k for k in missing):
            return lacks
        return ''

    @classmethod
    def file_kind_hint(cls, keys: Iterable[str],
                       detector_advice: str = "add prefix='backbone.' to "
                       'the init_cfg') -> str:
        """A sentence for a file of another kind (``keys`` are the ones
        the backbone does not have): a plain network of the family, or a
        whole detector (then ``detector_advice`` says what to do)."""
        keys = list(keys)
        if cls.plain_key_prefixes and any(
                k.startswith(cls.plain_key_prefixes) for k in keys):
            return (f' It looks like a plain {cls.plain_network} checkpoint: '
                    f'it has no RLA modules ({", ".join(cls.rla_modules)}), '
                    'so it cannot initialise an RLA backbone.')
        if any(k.startswith('backbone.') for k in keys):
            return (' It looks like a whole-detector checkpoint: '
                    f'{detector_advice}.')
        return ''

    def checkpoint_hint(self, missing: List[str],
                        unexpected: List[str]) -> str:
        """A sentence on what a mismatching checkpoint probably is."""
        return (self.file_kind_hint(unexpected)
                or self.variant_hint(missing, unexpected))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Whichever loader is used (MMEngine's load_checkpoint, a plain
        # load_state_dict), the stored layout is checked and the tensors of
        # unbuilt modules are not reported as unexpected keys.
        self.check_state_dict(state_dict, prefix=prefix)
        _, unbuilt = split_unbuilt(
            state_dict, tuple(prefix + p for p in self.unbuilt_prefixes()))
        for key in unbuilt:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def detector_unbuilt(detector: torch.nn.Module) -> Tuple[str, ...]:
    """The unbuilt prefixes of a detector's RLA backbone, under
    ``backbone.`` (none for another backbone)."""
    backbone = getattr(detector, 'backbone', None)
    if not isinstance(backbone, CheckpointAdapterMixin):
        return ()
    return tuple('backbone.' + p for p in backbone.unbuilt_prefixes())


def load_backbone_weights(model: torch.nn.Module,
                          filename: Any,
                          prefix: Optional[str] = None,
                          map_location: Any = 'cpu') -> None:
    """Load a checkpoint into an RLA backbone, strictly.

    Every parameter and buffer of ``model`` must come from the file with the
    right shape, and every tensor of the file must be used, except the ones
    the detection backbone does not build (the ImageNet classifier ``bn2`` /
    ``fc``, see ``RLAResNet.unbuilt_prefixes``). Anything else raises a
    ``ValueError`` naming the file and the first mismatching keys, so a
    backbone is never left half initialised.

    Args:
        model: The backbone.
        filename: The checkpoint file.
        prefix: Take only the keys under this prefix (e.g. ``'backbone.'``
            for a whole-detector checkpoint) and strip it.
        map_location: Passed to :func:`torch.load`.
    """
    if not isinstance(model, CheckpointAdapterMixin):
        raise TypeError(
            f'load_backbone_weights needs an RLA backbone (a subclass of '
            f'CheckpointAdapterMixin), got {type(model).__name__}; load other '
            "models with MMEngine's load_checkpoint.")
    checkpoint = load_checkpoint_file(filename, map_location)
    state_dict = get_state_dict(checkpoint, str(filename))
    if prefix:
        if not isinstance(prefix, str):
            raise TypeError(f'prefix must be a str such as "backbone.", got '
                            f'{prefix!r}.')
        if not prefix.endswith('.'):
            prefix += '.'
        picked = OrderedDict((k[len(prefix):], v)
                             for k, v in state_dict.items()
                             if k.startswith(prefix))
        if not picked:
            raise ValueError(f'{filename!r} has no key starting with '
                             f'prefix={prefix!r}; its first keys are '
                             f'{abbreviate(state_dict)}.')
        state_dict = picked
    source = repr(str(filename))
    model.check_state_dict(state_dict, source)
    state_dict, dropped = fit_state_dict(
        state_dict, model, model.unbuilt_prefixes(), source,
        f'{type(model).__name__}({model.describe()})', model.checkpoint_hint)
    model.load_state_dict(state_dict, strict=False)
    print_log(
        f'{type(model).__name__}: loaded {len(state_dict)} tensors from '
        f'{filename}' + (f' (prefix {prefix!r})' if prefix else '') +
        (f'; ignored {len(dropped)} tensors of unbuilt modules '
         f'({abbreviate(dropped, 2)})' if dropped else ''),
        logger='current')


def load_pretrained_init_cfg(model: torch.nn.Module) -> bool:
    """Load ``model.init_cfg`` if it is ``dict(type='Pretrained', ...)``.

    The backbones' ``init_weights`` call this: the ``checkpoint``,
    ``prefix`` and ``map_location`` keys go to :func:`load_backbone_weights`
    (strict), and the model is marked initialised. Returns whether it
    loaded; any other ``init_cfg`` is left to the caller.
    """
    cfg = model.init_cfg
    if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
        return False
    load_backbone_weights(
        model,
        cfg.get('checkpoint'),
        prefix=cfg.get('prefix'),
        map_location=cfg.get('map_location', 'cpu'))
    model._is_init = True
    return True
