"""Checkpoints named by URL or by one of MMEngine's prefixes.

A URL is a file the user names, like a path, and is read the same way:
:func:`fetch` downloads it once into torch's hub cache
(``<TORCH_HOME>/hub/checkpoints``, where ``torch.hub`` and MMEngine put
theirs), and :func:`rla_mmdet.checkpoint.load_checkpoint_file` then reads
the local file with all its checks. MMEngine's own URL loader
(``torch.hub.load_state_dict_from_url``) unpickles with
``weights_only=False`` on every torch; this module never unpickles.

Names, and what becomes of them (:func:`locate`):

- ``http://`` and ``https://``: downloaded.
- ``torchvision://`` and ``modelzoo://`` (torchvision's model table),
  ``open-mmlab://`` and ``openmmlab://`` (MMEngine's table, with its
  deprecated names), ``mmcls://`` (MMEngine's mmcls table, and MMEngine's
  key conversion after loading): looked up in the table MMEngine itself
  uses, then downloaded (a few old ``open-mmlab://`` names are files in
  MMEngine's home, read as local files).
- Every other ``scheme://`` (MMEngine's ``pavi://``, ``s3://``,
  ``petrel://`` and whatever a plugin registers) is refused with one
  sentence: this package cannot test those storages, so it cannot vouch
  for what they return.

A download goes to a temporary file in the cache folder and is renamed into
place only when complete and, where a hash is known, matching it (so an
interrupted download never leaves a file a later run trusts); the hash is
an explicit ``sha256`` or the hex digits after the last ``-`` of the file
name (``name-<sha256 prefix>.pth``, torch.hub's convention; 8 or more).
Processes sharing the cache folder take turns on it (a lock on the
folder), so in a distributed run one process per node downloads and the
others find the file. A progress bar shows on a terminal.
"""
import fcntl
import hashlib
import http.client
import os
import os.path as osp
import re
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch

URL_PREFIXES = ('http://', 'https://')
#: MMEngine's prefixes that name an entry of one of its model tables.
NAMED_PREFIXES = ('torchvision://', 'modelzoo://', 'open-mmlab://',
                  'openmmlab://', 'mmcls://')
#: Everything this package reads besides local paths.
SAFE_PREFIXES = URL_PREFIXES + NAMED_PREFIXES
#: Seconds a connection or a read may stall before the download gives up.
TIMEOUT_S = 60.0
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[^-]*\Z')
_CHUNK = 1 << 20


class DownloadError(ConnectionError):
    """A checkpoint could not be downloaded (the message says why)."""


def is_remote(name: str) -> bool:
    """Whether ``name`` is a URL or ``scheme://...`` rather than a path."""
    return '://' in name


def _refuse_scheme(name: str) -> ValueError:
    scheme = name.split('://', 1)[0] + '://'
    return ValueError(
        f'checkpoint {name!r}: rla_mmdet reads checkpoints from local paths, '
        f'{", ".join(SAFE_PREFIXES[:-1])} and {SAFE_PREFIXES[-1]} names, and '
        f'cannot check what {scheme} returns before unpickling it; copy the '
        'file to a local path (or an http(s) URL) and give that instead.')


def _table_entry(name: str, prefix: str) -> str:
    """The URL (or MMEngine-home path) MMEngine's table gives ``name``."""
    from mmengine.runner import checkpoint as mm
    model = name[len(prefix):]
    if prefix in ('torchvision://', 'modelzoo://'):
        try:
            table = mm.get_torchvision_models()
        except ImportError:
            raise ValueError(
                f'checkpoint {name!r}: {prefix} names are looked up in '
                "torchvision's model table, and torchvision is not "
                'installed; install it or give the URL of the file.') from None
    elif prefix == 'mmcls://':
        table = mm.get_mmcls_models()
    else:
        table = mm.get_external_models()
        model = mm.get_deprecated_model_names().get(model, model)
    if model not in table:
        raise ValueError(
            f'checkpoint {name!r}: {model!r} is not in the table MMEngine '
            f'uses for {prefix} names ({len(table)} entries, e.g. '
            f'{", ".join(sorted(table)[:3])}); check the name or give the '
            'URL of the file.')
    target = table[model]
    if not target.startswith(URL_PREFIXES):
        target = osp.join(mm._get_mmengine_home(), target)
    return target


def locate(name: str) -> str:
    """The URL or local path behind a remote ``name``.

    Raises:
        ValueError: for a scheme this package does not read, or a name
            MMEngine's table does not have.
    """
    if name.startswith(URL_PREFIXES):
        return name
    for prefix in NAMED_PREFIXES:
        if name.startswith(prefix):
            return _table_entry(name, prefix)
    raise _refuse_scheme(name)


def local_path(name: str) -> str:
    """The local file behind ``name``: itself for a path, else its cached
    download (fetched if absent)."""
    if not is_remote(name):
        return name
    target = locate(name)
    return fetch(target)[0] if target.startswith(URL_PREFIXES) else target


def cache_dir() -> str:
    """Where downloaded checkpoints are kept (torch.hub's folder)."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def expected_sha256(url: str, sha256: Optional[str]) -> Optional[str]:
    """The full sha256 or the prefix the download must match, if any."""
    if sha256 is not None:
        if not (isinstance(sha256, str)
                and re.fullmatch(r'[0-9a-fA-F]{8,64}', sha256)):
            raise ValueError(
                f'sha256 must be the hex digest of the file (or its first 8 '
                f'or more hex digits), got {sha256!r}.')
        return sha256.lower()
    match = _HASH_IN_NAME.search(_file_name(url))
    return match.group(1) if match else None


def _file_name(url: str) -> str:
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(
            f'checkpoint URL {url!r} does not end in a file name, which the '
            'download cache needs; give the URL of the file itself.')
    return urllib.parse.unquote(name)


@contextmanager
def _locked(folder: str) -> Iterator[None]:
    """One process at a time in ``folder`` (a lock on the folder itself,
    so no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(digest: str, expected: Optional[str], what: str) -> None:
    """Refuse ``what`` (a phrase naming the file) unless its sha256
    ``digest`` starts with ``expected`` (``None``: nothing to check)."""
    if expected is not None and not digest.startswith(expected):
        raise ValueError(
            f'{what} has sha256 {digest[:len(expected)]}..., not '
            f'{expected}... as its file name (or sha256=) says: the file '
            'changed or is not the one named; check the name and the hash.')


def fetch(url: str, sha256: Optional[str] = None) -> Tuple[str, bool]:
    """The cached file of ``url``, downloaded first if absent.

    Returns:
        The path, and whether this call downloaded it.

    Raises:
        FileNotFoundError: the server has no such file (HTTP 404 / 410).
        DownloadError: (a ``ConnectionError``) unreachable, another HTTP
            error, a timeout, or a transfer cut short.
        ValueError: the file does not match its hash.
    """
    expected = expected_sha256(url, sha256)
    folder = cache_dir()
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, _file_name(url))
    with _locked(folder):
        if osp.isfile(path):
            check_sha256(
                sha256_of(path) if expected else '', expected,
                f'the cached copy {path!r} of {url!r} (delete it to '
                'download again)')
            return path, False
        fd, tmp = tempfile.mkstemp(
            prefix=f'.{osp.basename(path)}.', suffix='.partial', dir=folder)
        try:
            with os.fdopen(fd, 'wb') as out:
                digest = _download(url, out)
            check_sha256(digest, expected, f'the download of {url!r}')
            os.replace(tmp, path)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
    return path, True


def _download(url: str, out) -> str:
    """Stream ``url`` into ``out``; returns the sha256 of what it wrote."""
    request = urllib.request.Request(url, headers={'User-Agent': 'rla_mmdet'})
    advice = ('check the URL and the network, or download the file and give '
              'its local path')
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return _copy(response, out, url, advice)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise FileNotFoundError(
                f'checkpoint URL {url!r} does not exist on its server (HTTP '
                f'{exc.code}); check the URL.') from None
        raise DownloadError(f'could not download {url!r}: HTTP {exc.code} '
                            f'{exc.reason}; {advice}.') from None
    except (socket.timeout, TimeoutError):
        raise DownloadError(
            f'downloading {url!r} stalled for {TIMEOUT_S:g} s and was given '
            f'up; {advice}.') from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(
                f'downloading {url!r} stalled for {TIMEOUT_S:g} s and was '
                f'given up; {advice}.') from None
        raise DownloadError(f'could not reach {url!r} ({reason}); '
                            f'{advice}.') from None
    except (OSError, http.client.HTTPException) as exc:  # reset, cut short
        raise DownloadError(f'downloading {url!r} failed '
                            f'({type(exc).__name__}: {exc}); {advice}.'
                            ) from None


def _copy(response, out, url: str, advice: str) -> str:
    size = response.headers.get('Content-Length')
    size = int(size) if size and size.isdigit() else None
    digest = hashlib.sha256()
    done = 0
    with torch.hub.tqdm(
            total=size, disable=not sys.stderr.isatty(), unit='B',
            unit_scale=True, unit_divisor=1024,
            desc=f'Downloading {_file_name(url)}') as bar:
        for chunk in iter(lambda: response.read(_CHUNK), b''):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            bar.update(len(chunk))
    if size is not None and done != size:
        raise DownloadError(
            f'the download of {url!r} stopped after {done} of {size} bytes; '
            f'{advice}.')
    return digest.hexdigest()
