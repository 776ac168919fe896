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

The cache: each URL has its own entry (:func:`cache_path`),
``<cache>/<key>/<name>``. ``<key>`` is the first 16 hex digits of the
sha256 of the whole URL (scheme and host in lower case, no fragment), so
``http://a/x.pth`` and ``http://b/x.pth`` are two entries; ``<name>`` is
the URL's file name, percent-decoded, with every character but ``A-Z``,
``a-z``, ``0-9``, ``.``, ``_`` and ``-`` replaced by ``_``, leading dots
dropped and at most 128 characters long. The file's resolved path must be
exactly that place in the resolved cache folder, or nothing is written:
whatever the URL holds (``%2F``, ``..``, backslashes, NUL...), nothing
outside the cache folder is created.

A download goes to a temporary file (``.<name>.<random>.partial``) in the
entry's folder and is renamed into place only when complete and, where a
hash is known, matching it (so an interrupted download never leaves a file
a later run trusts); the hash is an explicit ``sha256`` or the hex digits
after the last ``-`` of the URL's file name (``name-<sha256 prefix>.pth``,
torch.hub's convention; 8 or more). A download is given up (one sentence,
nothing kept) when:

- it is larger than :data:`MAX_DOWNLOAD_BYTES` (4 GiB; the environment
  variable ``RLA_MMDET_MAX_DOWNLOAD_BYTES`` sets another number of bytes):
  refused on its ``Content-Length`` before a byte is read, or, without
  one, as soon as the body passes the cap;
- connecting, or one read, stalls for :data:`TIMEOUT_S` seconds;
- it brings fewer than :data:`MIN_BYTES_PER_WINDOW` bytes in any
  :data:`RATE_WINDOW_S` seconds (a server dripping a byte at a time).

Processes sharing the cache take turns on each entry (a ``filelock`` on
``<key>/.lock``; no ``fcntl``, so it works on Windows too): in a
distributed run one process per node downloads and the others find the
file, and a download of another URL never waits for it. The holder writes
its pid and host to ``<key>/.holder``; a process that has waited
:data:`LOCK_TIMEOUT_S` seconds without the holder's download growing gives
up with one sentence naming that holder. Temporary files a killed download
left in an entry are removed when the entry's lock is next taken. A
progress bar shows on a terminal.
"""
import hashlib
import http.client
import os
import os.path as osp
import posixpath
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from typing import BinaryIO, Iterator, List, Optional, Tuple

import filelock
import torch

from ..atomic import atomic_file

URL_PREFIXES = ('http://', 'https://')
#: MMEngine's prefixes that name an entry of one of its model tables.
NAMED_PREFIXES = ('torchvision://', 'modelzoo://', 'open-mmlab://',
                  'openmmlab://', 'mmcls://')
#: Everything this package reads besides local paths.
SAFE_PREFIXES = URL_PREFIXES + NAMED_PREFIXES
#: Seconds a connection or a read may stall before the download gives up.
TIMEOUT_S = 60.0
#: The largest file a download may bring, in bytes (4 GiB), unless the
#: environment variable :data:`MAX_DOWNLOAD_BYTES_ENV` gives another.
MAX_DOWNLOAD_BYTES = 4 << 30
MAX_DOWNLOAD_BYTES_ENV = 'RLA_MMDET_MAX_DOWNLOAD_BYTES'
#: A download must bring at least this many bytes in every window of
#: :data:`RATE_WINDOW_S` seconds (about 1 KiB/s), or it is given up.
MIN_BYTES_PER_WINDOW = 1 << 16
RATE_WINDOW_S = 60.0
#: Seconds a process waits for another's download of the same URL while
#: that download does not grow, before it gives up.
LOCK_TIMEOUT_S = 300.0
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,64})\.[^-]*\Z')
_UNSAFE_IN_NAME = re.compile(r'[^A-Za-z0-9._-]')
_MAX_NAME = 128  # characters of a cached file's name
_PARTIAL = '.partial'  # the end of an entry's temporary files
_LOCK, _HOLDER = '.lock', '.holder'  # an entry's bookkeeping files
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


def cache_path(url: str) -> str:
    """Where ``url``'s file is cached: ``<cache>/<key>/<name>`` (see the
    module's docstring), checked to lie there once resolved.

    Raises:
        ValueError: the URL has no file name, or the entry resolves
            elsewhere (a link in the cache folder).
    """
    folder = cache_dir()
    name = _cache_name(url)
    key = _url_key(url)
    path = osp.join(folder, key, name)
    if osp.realpath(path) != osp.join(osp.realpath(folder), key, name):
        raise ValueError(
            f'the cache entry {osp.join(folder, key)!r} of {url!r} is a '
            'link or holds one, so its file would not lie in the cache '
            'folder; delete the entry and try again.')
    return path


def _url_key(url: str) -> str:
    """16 hex digits of the sha256 of ``url``, its scheme and host in
    lower case and its fragment (never sent to the server) dropped."""
    parts = urllib.parse.urlsplit(url)
    user, at, host = parts.netloc.rpartition('@')
    normal = urllib.parse.urlunsplit((parts.scheme.lower(),
                                      user + at + host.lower(), parts.path,
                                      parts.query, ''))
    return hashlib.sha256(normal.encode('utf-8',
                                        'surrogatepass')).hexdigest()[:16]


def _cache_name(url: str) -> str:
    """The URL's file name made safe: ``[A-Za-z0-9._-]`` only, no leading
    dot, at most :data:`_MAX_NAME` characters (the extension kept)."""
    name = _UNSAFE_IN_NAME.sub('_', _file_name(url)).lstrip('.')
    if len(name) > _MAX_NAME:
        stem, ext = osp.splitext(name)
        ext = ext[:16]
        name = stem[:_MAX_NAME - len(ext)] + ext
    if not name:
        raise _no_file_name(url)
    return name


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
    """The URL's own file name, percent-decoded (not safe as a path)."""
    try:
        name = posixpath.basename(urllib.parse.urlsplit(url).path)
    except ValueError as exc:  # e.g. an unclosed [ in the host
        raise ValueError(f'checkpoint URL {url!r} is not a valid URL ({exc}); '
                         'check it.') from None
    if not name:
        raise _no_file_name(url)
    return urllib.parse.unquote(name)


def _no_file_name(url: str) -> ValueError:
    return ValueError(
        f'checkpoint URL {url!r} does not end in a file name, which the '
        'download cache needs; give the URL of the file itself.')


def max_download_bytes() -> int:
    """The size cap of a download: :data:`MAX_DOWNLOAD_BYTES_ENV` if set,
    else :data:`MAX_DOWNLOAD_BYTES`."""
    value = os.environ.get(MAX_DOWNLOAD_BYTES_ENV, '').strip()
    if not value:
        return MAX_DOWNLOAD_BYTES
    if not re.fullmatch(r'[0-9]{1,20}', value) or int(value) == 0:
        raise ValueError(
            f'{MAX_DOWNLOAD_BYTES_ENV} must be the largest download in '
            f'bytes, a positive whole number, got {value[:40]!r}; set it so '
            'or unset it for the default of 4 GiB.')
    return int(value)


@contextmanager
def _entry_lock(entry: str, url: str) -> Iterator[None]:
    """Hold the lock of the cache entry ``entry`` (a folder): remove the
    temporary files a killed download left there, and say who holds it."""
    lock = filelock.FileLock(osp.join(entry, _LOCK))
    _acquire(lock, entry, url)
    holder = osp.join(entry, _HOLDER)
    try:
        for leftover in _partials(entry):
            os.remove(leftover)
        with atomic_file(holder, suffix=_PARTIAL) as f:
            f.write(f'pid {os.getpid()} on {socket.gethostname()}'.encode(
                'ascii', 'replace'))
        yield
    finally:
        try:
            os.remove(holder)
        except OSError:
            pass
        lock.release()


def _acquire(lock: filelock.FileLock, entry: str, url: str) -> None:
    """Take ``lock``, waiting while the holder's download grows, up to
    :data:`LOCK_TIMEOUT_S` seconds without growth."""
    limit = LOCK_TIMEOUT_S
    grown = _partial_bytes(entry)
    deadline = time.monotonic() + limit
    while True:
        try:
            lock.acquire(timeout=min(1.0, max(0.0, deadline -
                                              time.monotonic())))
            return
        except filelock.Timeout:
            pass
        now = _partial_bytes(entry)
        if now != grown:
            grown, deadline = now, time.monotonic() + limit
        elif time.monotonic() >= deadline:
            raise DownloadError(
                f'waited {limit:g} s for {_holder(entry)} to download '
                f'{url!r} into the cache entry {entry!r} without the '
                'download growing; wait for that process or stop it, then '
                'try again.')


def _partials(entry: str) -> List[str]:
    with os.scandir(entry) as found:
        return [e.path for e in found if e.name.endswith(_PARTIAL)]


def _partial_bytes(entry: str) -> int:
    total = 0
    for path in _partials(entry):
        try:
            total += os.stat(path).st_size
        except OSError:  # renamed or removed meanwhile
            pass
    return total


def _holder(entry: str) -> str:
    """Who holds ``entry``'s lock, as it wrote (bounded, printable)."""
    try:
        with open(osp.join(entry, _HOLDER), 'rb') as f:
            text = f.read(100).decode('ascii', 'replace')
    except OSError:
        text = ''
    text = re.sub(r'[^A-Za-z0-9 ._:-]', '?', text).strip()
    return f'the process with {text}' if text else \
        'another process (it recorded no pid)'


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
            error, a timeout, too slow, larger than the size cap, a
            transfer cut short, or another process holding the entry too
            long.
        ValueError: the file does not match its hash, or the URL cannot
            name a cache entry.
    """
    expected = expected_sha256(url, sha256)
    path = cache_path(url)
    entry = osp.dirname(path)
    os.makedirs(entry, exist_ok=True)
    with _entry_lock(entry, url):
        if osp.isfile(path):
            check_sha256(
                sha256_of(path) if expected else '', expected,
                f'the cached copy {path!r} of {url!r} (delete it to '
                'download again)')
            return path, False
        with atomic_file(path, suffix=_PARTIAL) as out:
            digest = _download(url, out)
            check_sha256(digest, expected, f'the download of {url!r}')
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


def _copy(response, out: BinaryIO, url: str, advice: str) -> str:
    """Stream the body into ``out`` within the size cap and the minimum
    rate; returns its sha256."""
    cap = max_download_bytes()
    size = response.headers.get('Content-Length')
    size = int(size) if size and re.fullmatch('[0-9]+', size) else None
    if size is not None and size > cap:
        raise _too_large(url, f'announces {size} bytes, more than', cap,
                         advice)
    digest = hashlib.sha256()
    done = window = 0
    window_start = time.monotonic()
    with torch.hub.tqdm(
            total=size, disable=not sys.stderr.isatty(), unit='B',
            unit_scale=True, unit_divisor=1024,
            desc=f'Downloading {_cache_name(url)}') as bar:
        # read1: what has arrived, so the rate is checked while a server
        # drips bytes (read(n) would wait for all n of them)
        for chunk in iter(lambda: response.read1(_CHUNK), b''):
            done += len(chunk)
            if done > cap:
                raise _too_large(url, 'went on past', cap, advice)
            out.write(chunk)
            out.flush()  # the size on disk is what waiting processes watch
            digest.update(chunk)
            bar.update(len(chunk))
            window += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= RATE_WINDOW_S:
                if window < MIN_BYTES_PER_WINDOW:
                    raise DownloadError(
                        f'downloading {url!r} brought {window} bytes in '
                        f'{elapsed:.3g} s, fewer than the '
                        f'{MIN_BYTES_PER_WINDOW} per {RATE_WINDOW_S:g} s '
                        f'it must keep up, and was given up; {advice}.')
                window, window_start = 0, time.monotonic()
    if size is not None and done != size:
        raise DownloadError(
            f'the download of {url!r} stopped after {done} of {size} bytes; '
            f'{advice}.')
    return digest.hexdigest()


def _too_large(url: str, what: str, cap: int, advice: str) -> DownloadError:
    return DownloadError(
        f'the download of {url!r} {what} {cap} bytes, the most a checkpoint '
        f'download may bring ({MAX_DOWNLOAD_BYTES_ENV} sets another '
        f'number), and was given up; {advice}.')
