"""Checkpoint files read without running code from them.

:func:`load_checkpoint_file` is the one place this package reads a
checkpoint, whatever names it: a path, or a URL or MMEngine name
(``torchvision://``, ``open-mmlab://``...), which is downloaded into
torch's hub cache first and then read as a local file with every check
below (:mod:`rla_mmdet.checkpoint.remote`; other schemes such as ``s3://``
are refused). MMEngine's own URL loader unpickles with
``weights_only=False`` on every torch, so where this package's checkpoint
IO is on, MMEngine's loaders for every prefix are this function.

Threat model: the file is written by someone else (downloaded, shared, or
replaced on a shared disk). Reading it must not run code, write files,
change the process (a class, a registry, torch's allow-list) or crash it;
the worst it may do is fail to load, with one sentence saying why. What
each layer guarantees, in the order they act:

1. **Two formats only reach** ``torch.load`` (:func:`_check_format`): the
   zip format, whose records must be exactly those ``torch.save`` writes
   (``data.pkl``, ``data/<n>``, ``byteorder``, ``version``, ...; listed by
   Python's ``zipfile`` and by torch's own reader), and the legacy
   single-pickle format. A TorchScript archive (``torch.jit.save``: ``code/``,
   ``constants.pkl``), which ``torch.load`` hands to ``torch.jit.load``
   whatever ``pickle_module`` says and which runs the archive's
   ``__setstate__`` methods, is refused; so is a tar archive (torch's
   oldest format), which torch's legacy loader extracts to disk before it
   reads anything, and any other file. This check is this package's, on
   every torch and route.
2. **Storages are filled from the file** (:mod:`.records`): the file is
   read once, and its sha256, format, records and storages are checked in
   the bytes that ``torch.load`` then reads. A scan of the pickle that
   imports and calls nothing checks every persistent id: a storage of a
   torch storage type on a known device, whose data in the file (its zip
   record, or its legacy key and element count) holds the bytes the
   pickle claims; zip records are stored, never compressed, and found
   where torch's reader finds them.
3. **The pickle builds values only** (:mod:`.allow_list`): every global
   it names, every call, every ``BUILD`` and every container it fills is
   checked there; nothing outside :data:`~.allow_list.ALLOWED` is
   imported, and what is allowed are constructors of values that check
   their arguments. Two routes enforce it:

   - ``restricted=True`` (the default, ``None``, on every torch): this
     package's :class:`~.allow_list.RestrictedUnpickler`, passed to
     ``torch.load`` as its ``pickle_module``. It checks the arguments of
     every call, including the function that
     ``torch._tensor._rebuild_from_type_v2`` calls, which torch's own
     ``weights_only`` unpickler leaves unchecked.
   - ``restricted=False`` (torch >= 2.6): ``torch.load(weights_only=True)``
     with :data:`~.allow_list.TORCH_SAFE_GLOBALS` allowed for that call
     only (``torch.serialization.safe_globals``). This package's
     constructors then build the numpy and MMEngine values, and torch's
     own list and checks guard torch's types.

4. **Nothing global changes**: ``import rla_mmdet`` adds nothing to torch's
   process-wide ``weights_only`` list, and loading sets the state of no
   class. MMEngine's own ``torch.load`` calls are untouched unless its
   checkpoint IO is switched on (``CheckpointIOHook``, the ``tools/``
   scripts: :func:`rla_mmdet.engine.enable_checkpoint_io`), which routes its
   loaders, for paths and for every prefix, through this function. Without
   it, MMEngine's loads are MMEngine's: ``torch.load`` with torch's
   default for local files (``weights_only=True`` from torch 2.6, full
   unpickling below) and full unpickling for URLs on every torch.

A ``.safetensors`` file (known by its content, whatever its name) is no
pickle and never reaches ``torch.load``: :mod:`.safetensors_io` checks its
header and reads it.

A missing file is a ``FileNotFoundError``, an unsafe one an
:class:`UnsafeCheckpointError`, a truncated or corrupt one a
``ValueError`` (whatever torch or Python raised while reading it); each
names the file in one sentence.
"""
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import tarfile
import zipfile
from typing import Any, BinaryIO, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from packaging.version import Version

from . import records, remote, safetensors_io
from .allow_list import (TORCH_SAFE_GLOBALS, Refused, RestrictedPickleModule,
                         resolve)

_TORCH_VERSION = Version(torch.__version__).release[:2]
#: Whether ``restricted=False`` is available: torch's ``weights_only``
#: unpickler takes ``(constructor, name)`` entries per call from torch 2.6.
WEIGHTS_ONLY_ENFORCES_ALLOW_LIST = _TORCH_VERSION >= (2, 6) and hasattr(
    torch.serialization, 'safe_globals')


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds objects whose unpickling could run code, or is a
    kind of file whose opening could write to disk."""


def _unsafe(label: str, what: str, advice: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f'refused to load {label}: {what}; {advice}')


# ------------------------------------------------ the file's format
#: The records ``torch.save`` writes into its zip archive (below the
#: archive's top-level folder), besides the tensor data ``data/<n>``.
_TORCH_SAVE_RECORDS = frozenset({
    'data.pkl', 'byteorder', 'version', '.data/version',
    '.data/serialization_id', '.format_version', '.storage_alignment'
})
_STORAGE_RECORD = re.compile(r'data/[0-9]+\Z')
_ZIP_MAGIC = b'PK\x03\x04'  # what torch.load takes for its zip format
_PICKLE_PROTOCOLS = range(2, 6)  # a legacy file starts with PROTO 2..5


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
    has ``data.pkl``."""
    file.seek(0)
    records = _zipfile_records(file)
    foreign = _not_torch_save(records)
    if not foreign:
        file.seek(0)
        foreign = _not_torch_save(_torch_records(file))
    return foreign, 'data.pkl' in records


def _check_zip_records(file: BinaryIO, label: str) -> None:
    """Refuse a zip archive that is not a plain ``torch.save`` checkpoint
    (``torch.load`` would hand a TorchScript archive to ``torch.jit.load``,
    which runs the archive's code)."""
    try:
        foreign, has_pickle = _foreign_records(file)
    except (zipfile.BadZipFile, RuntimeError, OSError, ValueError,
            EOFError) as exc:
        raise _corrupt(label, exc) from None
    if foreign:
        script = any(r == 'constants.pkl' or r.startswith('code/')
                     for r in foreign)
        what = ('a TorchScript archive written by torch.jit.save'
                if script else 'a zip archive with records that torch.save '
                'does not write')
        raise _unsafe(
            label, f'it is {what} ({abbreviate(foreign, 3)}), and opening '
            'it as a checkpoint could run code from it',
            'if you trust its author, open it with torch.jit.load and save '
            'the state_dict() of the module it gives with torch.save.')
    if not has_pickle:
        raise _corrupt(label, KeyError('the zip archive has no data.pkl'))


def _is_tar(file: BinaryIO) -> bool:
    """Whether torch's legacy loader would open ``file`` as a tar archive
    (it asks Python's ``tarfile`` the same way)."""
    file.seek(0)
    try:
        tarfile.open(fileobj=file, mode='r:', format=tarfile.PAX_FORMAT)
    except (tarfile.TarError, EOFError, OSError, ValueError,
            UnicodeDecodeError):
        return False
    return True


def _check_format(file: BinaryIO, label: str) -> None:
    """Let only a ``torch.save`` zip archive or a legacy single-pickle
    file reach ``torch.load``; ``file`` is left at its start."""
    head = file.read(4)
    if head == _ZIP_MAGIC:
        _check_zip_records(file, label)
    elif _is_tar(file):
        raise _unsafe(
            label, "it is a tar archive (torch's oldest checkpoint "
            'format), which torch.load extracts to disk before reading it',
            'if you trust its author, load it with torch.load in a throw-away '
            'environment and save it again with torch.save.')
    elif not (len(head) >= 2 and head[0] == pickle.PROTO[0]
              and head[1] in _PICKLE_PROTOCOLS):
        raise _corrupt(
            label,
            ValueError('it is neither a zip archive of torch.save nor a '
                       'pickle'))
    file.seek(0)


# ------------------------------------------------ loading
def _torch_load(file: BinaryIO, map_location: Any, restricted: bool) -> Any:
    """``torch.load`` of an open, format-checked file with the allow-list,
    placeholders resolved."""
    if restricted:
        # weights_only=False only because torch refuses a pickle_module with
        # weights_only=True; the restricted unpickler does the refusing.
        loaded = torch.load(
            file,
            map_location=map_location,
            pickle_module=RestrictedPickleModule,
            weights_only=False)
    else:
        with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
            loaded = torch.load(
                file, map_location=map_location, weights_only=True)
    return resolve(loaded)


def load_checkpoint_file(filename: Any,
                         map_location: Any = 'cpu',
                         restricted: Optional[bool] = None,
                         sha256: Optional[str] = None) -> Dict[str, Any]:
    """Load a checkpoint file, building only values of the allow-list.

    Args:
        filename: Path of a ``.pth`` / ``.pth.tar`` / ``.safetensors``
            file, or a URL
            (``http://``, ``https://``) or MMEngine name (``torchvision://``,
            ``modelzoo://``, ``open-mmlab://``, ``openmmlab://``,
            ``mmcls://``), downloaded once into torch's hub cache and then
            read like a local file (:mod:`.remote`).
        map_location: Passed to :func:`torch.load`.
        restricted: ``True`` or ``None`` (default): this package's
            :class:`~.allow_list.RestrictedUnpickler`, on every torch.
            ``False``: torch's ``weights_only=True`` with this package's
            constructors for that call (torch >= 2.6).
        sha256: The file's sha256 (or its first 8 or more hex digits),
            checked before it is read. A URL whose file name ends in
            ``-<hex digits>.<ext>`` is checked against those digits anyway.

    Raises:
        TypeError: ``filename`` is not a path or a URL.
        FileNotFoundError: The file (or the URL) does not exist.
        UnsafeCheckpointError: The file is a TorchScript or tar archive, a
            zip archive with records ``torch.save`` does not write, or a
            pickle that asks for anything outside the allow-list.
        ValueError: The file is truncated, corrupt or not a checkpoint, does
            not match ``sha256``, or is named by a scheme this package does
            not read (``s3://``, ``pavi://``...).
        ConnectionError: A URL could not be downloaded.
    """
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError('checkpoint must be a file path or a URL, got '
                        f'{filename!r}.')
    if restricted is False and not WEIGHTS_ONLY_ENFORCES_ALLOW_LIST:
        raise ValueError(
            f'restricted=False needs torch >= 2.6 (this is torch '
            f'{torch.__version__}, whose weights_only unpickler cannot take '
            'the allow-list per call); pass restricted=None or True.')
    name = os.fspath(filename)
    if not remote.is_remote(name):
        path = osp.expanduser(name)
        return _load_path(path, repr(path), map_location, restricted, sha256)
    target = remote.locate(name)
    if not target.startswith(remote.URL_PREFIXES):  # a file of MMEngine's
        return _load_path(target, f'{name!r} ({target!r})', map_location,
                          restricted, sha256)
    path, downloaded = remote.fetch(target, sha256)
    try:  # the hash once more, of the bytes that are loaded
        checkpoint = _load_path(path, f'{name!r} (downloaded to {path!r})',
                                map_location, restricted,
                                remote.expected_sha256(target, sha256))
    except ValueError:
        if downloaded:  # a file that failed its checks is not kept
            os.remove(path)
        raise
    if name.startswith('mmcls://'):
        from mmengine.runner.checkpoint import _process_mmcls_checkpoint
        checkpoint = _process_mmcls_checkpoint(checkpoint)
    return checkpoint


def _load_path(path: str, label: str, map_location: Any,
               restricted: Optional[bool],
               sha256: Optional[str]) -> Dict[str, Any]:
    """:func:`load_checkpoint_file` of a local file; errors name ``label``.

    The file is opened and read once: its sha256, its format, its records
    and storages are checked in those bytes, and ``torch.load`` reads the
    same bytes, so a file changed on disk meanwhile cannot slip in."""
    data = _read(path, label)
    if sha256 is not None:
        remote.check_sha256(
            hashlib.sha256(data).hexdigest(),
            remote.expected_sha256(path, sha256), f'checkpoint file {label}')
    if safetensors_io.is_safetensors(data[:9]):  # never torch.load
        return safetensors_io.load_safetensors(data, label, map_location)
    _check_format(io.BytesIO(data), label)
    checkpoint = _load_checked(data, label, map_location,
                               restricted is not False)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{label} holds a {type(checkpoint).__name__}, '
                         'not a checkpoint dict of tensors.')
    return checkpoint


def _read(path: str, label: str) -> bytes:
    missing = FileNotFoundError(
        f'checkpoint file {label} does not exist; check the path '
        '(or the init_cfg / load_from / --resume argument that gave it).')
    if not osp.isfile(path):
        raise missing
    try:
        with open(path, 'rb') as file:
            return file.read()
    except FileNotFoundError:
        raise missing from None
    except OSError as exc:
        raise _corrupt(label, exc) from None


def _load_checked(data: bytes, label: str, map_location: Any,
                  restricted: bool) -> Any:
    """The storages of ``data`` checked against its records, then
    :func:`_torch_load` of ``data``; every error reported as one
    sentence."""
    try:
        if data[:4] == _ZIP_MAGIC:
            records.check_zip(data)
        else:
            records.check_legacy(data)
        return _torch_load(io.BytesIO(data), map_location, restricted)
    except records.CostlyKey:
        raise _unsafe(
            label, 'it holds a dict key or set item made of tuples of tuples, '
            'whose hash can cost 2**depth (a checkpoint keys its values by '
            'names and numbers)', 'ask its author for a file written by '
            'torch.save.') from None
    except records.Unsafe as exc:
        raise _unsafe(
            label, f'its records or storages are not what torch.save writes '
            f'({exc}), and torch could read memory outside the file for them',
            'ask its author for a file written by torch.save.') from None
    except pickle.UnpicklingError as exc:
        if isinstance(exc, Refused) or 'Weights only load failed' in str(
                exc):
            raise _unsafe(
                label, 'it asks for more than tensors and plain checkpoint '
                f'values ({_first_line(exc).rstrip(".")})',
                'only load it with torch.load(weights_only=False) if you '
                'trust its author.') from None
        raise _corrupt(label, exc) from None
    except Exception as exc:  # noqa: B902 (torch's AssertionError too)
        raise _corrupt(label, exc) from None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The line of ``exc``'s message that says why, at most ``limit``
    characters (a message may quote the file), ending the sentence."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines()]
    found = [line for line in lines if 'refused' in line or
             'Unsupported global' in line or 'GLOBAL' in line]
    line = (found or lines or [type(exc).__name__])[0]
    line = line if len(line) <= limit else line[:limit] + '...'
    return line if line.endswith('.') else line + '.'


def _corrupt(label: str, exc: BaseException) -> ValueError:
    return ValueError(
        f'{label} is not a readable PyTorch checkpoint (truncated, '
        f'corrupt or another kind of file): {type(exc).__name__}: '
        f'{_first_line(exc)}')


def abbreviate(keys: Iterable, n: int = 5) -> str:
    """The first ``n`` items of ``keys`` for an error message, and how many
    there are in all when that is more."""
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
    return ', '.join(map(str, keys[:n])) + more


# MMEngine logs 'Loads checkpoint by {name[10:]} backend', hence the names.
def load_from_local_weights_only(filename, map_location=None):
    """MMEngine's local-path loader, through :func:`load_checkpoint_file`
    (installed by :func:`rla_mmdet.engine.enable_checkpoint_io`)."""
    return load_checkpoint_file(filename, map_location)


def load_from_remote(filename, map_location=None):
    """MMEngine's loader for every ``scheme://`` it knows, through
    :func:`load_checkpoint_file`: URLs and MMEngine's named prefixes are
    downloaded and checked, any other scheme is refused (installed by
    :func:`rla_mmdet.engine.enable_checkpoint_io`)."""
    return load_checkpoint_file(filename, map_location)
