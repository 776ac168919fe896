"""Build an mmcv wheel with its C++ ops for the torch it will sit next to.

Run it with the interpreter of the target environment, which already holds
torch, numpy, ninja, wheel and ``setuptools<81`` (mmcv's ``setup.py`` imports
``torch`` and ``pkg_resources``)::

    .venv/bin/python scripts/build_mmcv.py 2.1.0            # prints the wheel
    .venv/bin/python scripts/build_mmcv.py 2.1.0 --install  # and installs it

What it does, and why:

1. Downloads mmcv's source archive from the package index (``pip download``)
   and checks its sha256 against :data:`SDIST_SHA256`, so every build starts
   from the same bytes. ``pip download`` runs the archive's ``setup.py`` for
   its metadata, which on Python 3.13 dies in the same ``get_version()`` as
   point 3 before anything is saved; the archive is then taken from the
   indexes pip reported searching (:func:`download_from_indexes`: their
   PEP 503 page of mmcv, or the folder of a ``file:`` index).
2. Picks the C++ standard that the installed torch needs
   (:func:`cxx_standard`): C++17 below torch 2.14, C++20 from 2.14 on, whose
   headers stop with ``#error C++20 or later compatible compiler is required``.
   mmcv's ``setup.py`` hard-codes ``-std=c++14`` (2.0.x) or ``-std=c++17``
   (2.1.x); the build replaces that flag in a private copy of the source.
   A compiler that cannot compile C++20 gets one sentence, before the build.
3. Makes ``setup.py`` read mmcv's version on every Python from 3.8 on
   (:func:`patch_version_read`): its ``get_version()`` executes
   ``mmcv/version.py`` inside the function and reads the result back from
   ``locals()``, which from Python 3.13 on (PEP 667) is a snapshot that
   ``exec`` does not change, so the build died with ``KeyError:
   '__version__'``. The patched function executes the file into a dict of
   its own and reads the version from there, which means the same on every
   Python.
4. Builds the wheel with ``MMCV_WITH_OPS=1`` and ``--no-build-isolation``
   (against this environment's torch), into a cache folder named after mmcv,
   torch, the Python tag and the standard, so a second environment of the
   same stack reuses it in seconds.

Nothing global is touched: the source is unpacked in a temporary folder, the
wheel cache lives under ``$RLA_MMCV_CACHE`` (default
``${XDG_CACHE_HOME:-~/.cache}/rla_mmdet/mmcv``), and only ``--install``
changes anything, in this interpreter's environment.
"""
import argparse
import hashlib
import html
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import urllib.parse
import urllib.request
from typing import List, Optional

#: sha256 of the source archives on the package index (``mmcv-V.tar.gz``).
SDIST_SHA256 = {
    '2.0.1':
    '2b9b2c23795b3f43cf2ebcaca46552d9b4ef7e903eacdcf7c08ee15195044071',
    '2.1.0':
    'd387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f',
}

#: The index pip searches when it names none (it names only others).
DEFAULT_INDEX = 'https://pypi.org/simple'
#: Seconds a download may wait for the index before it gives up.
TIMEOUT_S = 60

#: The first torch release whose headers require C++20.
CXX20_FROM_TORCH = (2, 14)

_STD_FLAG = re.compile(r"-std=c\+\+1[47]")
#: The end of ``get_version()`` in mmcv's ``setup.py`` (2.0.x and 2.1.x):
#: the version file executed in the function, then read from ``locals()``.
_VERSION_READ = re.compile(
    r"^( +)exec\(compile\(f\.read\(\), version_file, 'exec'\)\)\n"
    r"( +)return locals\(\)\['__version__'\]\n", re.M)


def _release(version: str) -> tuple:
    match = re.match(r'\s*v?(\d+(?:\.\d+)*)', version)
    if match is None:
        raise ValueError(f'cannot read the torch version {version!r}; '
                         'expected digits such as 2.1.2.')
    return tuple(int(p) for p in match.group(1).split('.'))


def cxx_standard(torch_version: str) -> str:
    """The ``-std=`` value to compile mmcv's ops with for ``torch_version``.

    >>> cxx_standard('2.13.0'), cxx_standard('2.14.0.dev20260101+cpu')
    ('c++17', 'c++20')
    """
    return 'c++20' if _release(torch_version) >= CXX20_FROM_TORCH else 'c++17'


def patch_cxx_standard(text: str, std: str) -> str:
    """mmcv's ``setup.py`` with every GCC/NVCC ``-std=c++14|17`` set to
    ``std``; a ``setup.py`` without such a flag is a ValueError, since the
    build would then silently keep its own choice."""
    patched, count = _STD_FLAG.subn(f'-std={std}', text)
    if count == 0:
        raise ValueError("mmcv's setup.py has no '-std=c++14' or "
                         "'-std=c++17' flag to replace; this script knows "
                         f'the layouts of mmcv {", ".join(SDIST_SHA256)}.')
    return patched


def patch_version_read(text: str) -> str:
    """mmcv's ``setup.py`` with ``get_version()`` executing the version file
    into a dict of its own instead of reading ``locals()`` back (empty after
    ``exec`` from Python 3.13 on, PEP 667); a ``setup.py`` without that
    read is a ValueError, since the build would then die on Python 3.13
    with ``KeyError: '__version__'``."""
    patched, count = _VERSION_READ.subn(
        r"\1namespace = {}\n"
        r"\1exec(compile(f.read(), version_file, 'exec'), namespace)\n"
        r"\2return namespace['__version__']\n", text)
    if count != 1:
        raise ValueError("mmcv's setup.py does not read its version with "
                         "exec(...) and locals()['__version__'] in "
                         'get_version(); this script knows the layouts of '
                         f'mmcv {", ".join(SDIST_SHA256)}.')
    return patched


def patch_setup(text: str, std: str) -> str:
    """mmcv's ``setup.py`` compiling with ``-std=std``
    (:func:`patch_cxx_standard`) and reading its version on every Python
    (:func:`patch_version_read`)."""
    return patch_version_read(patch_cxx_standard(text, std))


def check_compiler(std: str, cxx: str = None) -> None:
    """Exit with one sentence unless the C++ compiler accepts ``-std=std``."""
    cxx = cxx or os.environ.get('CXX') or 'c++'
    try:
        proc = subprocess.run(
            [cxx, f'-std={std}', '-x', 'c++', '-fsyntax-only', '-'],
            input='int main() { return 0; }\n', capture_output=True,
            text=True)
        ok = proc.returncode == 0
    except OSError:
        ok = False
    if not ok:
        sys.exit(f'build_mmcv: the C++ compiler {cxx!r} cannot compile '
                 f'{std.upper()}, which the installed torch needs for '
                 "mmcv's ops; install GCC >= 10 or Clang >= 10 (for example "
                 "apt-get install g++) or point CXX at one.")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def index_urls(pip_output: str) -> List[str]:
    """The indexes a ``pip download`` searched, from its own output:
    ``Looking in indexes: A, B`` (pip prints the line only when they are
    not PyPI's alone)."""
    match = re.search(r'^Looking in indexes: (.+)$', pip_output, re.M)
    if match is None:
        return [DEFAULT_INDEX]
    return [u.strip() for u in match.group(1).split(',') if u.strip()]


def sdist_url(index: str, name: str) -> Optional[str]:
    """Where ``index`` offers the file ``name`` of mmcv: a link of its
    PEP 503 page ``<index>/mmcv/``, or the file in a ``file:`` index's
    folder; ``None`` when it does not (or cannot be read)."""
    page = index.rstrip('/') + '/mmcv/'
    parts = urllib.parse.urlsplit(page)
    if parts.scheme == 'file':
        folder = urllib.request.url2pathname(parts.path)
        if osp.isfile(osp.join(folder, name)):
            return urllib.parse.urljoin(page, name)
        page = urllib.parse.urljoin(page, 'index.html')
    try:
        with urllib.request.urlopen(page, timeout=TIMEOUT_S) as response:
            text = response.read().decode('utf-8', 'replace')
    except (OSError, ValueError):
        return None
    for href in re.findall(r'href="([^"]+)"', text):
        url = urllib.parse.urljoin(page, html.unescape(href)).split('#')[0]
        if urllib.parse.urlsplit(url).path.rsplit('/', 1)[-1] == name:
            return url
    return None


def download_from_indexes(indexes: List[str], name: str,
                          dest: str) -> Optional[str]:
    """Save the first copy of ``name`` that ``indexes`` offer as ``dest``;
    the URL it came from, or ``None`` when none offers it."""
    for index in indexes:
        url = sdist_url(index, name)
        if url is None:
            continue
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, \
                    open(dest, 'wb') as f:
                shutil.copyfileobj(response, f)
        except OSError:
            continue
        return url
    return None


def fetch_sdist(version: str, cache: str) -> str:
    """The path of ``mmcv-<version>.tar.gz`` in ``cache``, downloaded once
    and checked against :data:`SDIST_SHA256` every time."""
    if version not in SDIST_SHA256:
        sys.exit(f'build_mmcv: no pinned hash for mmcv {version}; known '
                 f'versions: {", ".join(SDIST_SHA256)}.')
    name = f'mmcv-{version}.tar.gz'
    path = osp.join(cache, name)
    if not osp.exists(path):
        # Downloaded next to its final place and renamed there, so a build
        # running in parallel never reads half a file.
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            req = osp.join(tmp, 'mmcv.txt')
            with open(req, 'w') as f:
                f.write(f'mmcv=={version} '
                        f'--hash=sha256:{SDIST_SHA256[version]}\n')
            # The pinned hash makes pip refuse any other archive; the
            # interpreter's own constraints (a torch cap) do not apply here.
            pip = subprocess.run(
                [sys.executable, '-m', 'pip', 'download',
                 '--disable-pip-version-check', '--no-deps',
                 '--no-binary', ':all:', '--no-build-isolation',
                 '--require-hashes', '-r', req, '-d', tmp],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True, env=dict(os.environ,
                                                  PIP_CONSTRAINT=''))
            if pip.returncode != 0:
                indexes = index_urls(pip.stdout)
                url = download_from_indexes(indexes, name,
                                            osp.join(tmp, name))
                if url is None:
                    sys.stderr.write(pip.stdout)
                    sys.exit(
                        f'build_mmcv: could not download {name}: pip '
                        'download failed (above) and none of the indexes '
                        f'it searched ({", ".join(indexes)}) offers the '
                        f'file; put it (sha256 {SDIST_SHA256[version]}) '
                        f'at {path} and run again.')
                print(f'build_mmcv: pip download could not read the '
                      f'metadata of {name}; took it from {url}',
                      file=sys.stderr)
            os.replace(osp.join(tmp, name), path)
    if sha256(path) != SDIST_SHA256[version]:
        os.remove(path)
        sys.exit(f'build_mmcv: {path} does not have the pinned sha256 and '
                 'was removed; run again to download it anew.')
    return path


def build(version: str, cache: str, jobs: int) -> str:
    """Build (or reuse) the wheel; return its path."""
    from importlib.metadata import version as installed
    torch_version = installed('torch')
    std = cxx_standard(torch_version)
    tag = sysconfig.get_config_var('SOABI') or sys.implementation.cache_tag
    out = osp.join(cache, f'mmcv-{version}_torch-{torch_version}_{tag}_{std}')
    wheels = sorted(w for w in os.listdir(out)
                    if w.endswith('.whl')) if osp.isdir(out) else []
    if wheels:
        print(f'build_mmcv: reusing {osp.join(out, wheels[-1])}',
              file=sys.stderr)
        return osp.join(out, wheels[-1])
    check_compiler(std)
    sdist = fetch_sdist(version, cache)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tar:
            # The 'data' filter (Python 3.12, and 3.8.17 and later 3.8 to
            # 3.11 releases) refuses links and paths out of tmp; asking for
            # it also silences Python 3.13's DeprecationWarning.
            tar.extractall(tmp, **({'filter': 'data'} if hasattr(
                tarfile, 'data_filter') else {}))
        src = osp.join(tmp, f'mmcv-{version}')
        setup_py = osp.join(src, 'setup.py')
        with open(setup_py) as f:
            text = f.read()
        with open(setup_py, 'w') as f:
            f.write(patch_setup(text, std))
        print(f'build_mmcv: compiling mmcv {version} with -std={std} for '
              f'torch {torch_version} (about 10 min on 2 cores)',
              file=sys.stderr)
        # -g0 cancels the -g of Python's own CFLAGS: the same code without
        # debug information compiles faster and makes a far smaller wheel.
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=str(jobs),
                   CFLAGS=(os.environ.get('CFLAGS', '') + ' -g0').strip())
        subprocess.run(
            [sys.executable, '-m', 'pip', 'wheel', '-q',
             '--disable-pip-version-check', '--no-deps',
             '--no-build-isolation', '-w', osp.join(tmp, 'dist'), src],
            check=True, env=env)
        built = [w for w in os.listdir(osp.join(tmp, 'dist'))
                 if w.endswith('.whl')]
        os.makedirs(out, exist_ok=True)
        # Copied beside its final name and renamed last, so an interrupted
        # build leaves no wheel and nobody sees half of one.
        partial = osp.join(out, built[0] + '.partial')
        shutil.copyfile(osp.join(tmp, 'dist', built[0]), partial)
        os.replace(partial, osp.join(out, built[0]))
    return osp.join(out, built[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('version', help='mmcv version, e.g. 2.1.0')
    parser.add_argument('--install', action='store_true',
                        help='pip install the wheel into this environment')
    parser.add_argument(
        '--cache',
        default=os.environ.get('RLA_MMCV_CACHE') or osp.join(
            os.environ.get('XDG_CACHE_HOME')
            or osp.expanduser('~/.cache'), 'rla_mmdet', 'mmcv'),
        help='folder of the source archives and built wheels')
    parser.add_argument('--jobs', type=int,
                        default=int(os.environ.get('MAX_JOBS') or 0)
                        or os.cpu_count(), help='parallel compile jobs')
    args = parser.parse_args(argv)
    os.makedirs(args.cache, exist_ok=True)
    wheel = build(args.version, args.cache, args.jobs)
    if args.install:
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                        '--disable-pip-version-check', '--no-deps', wheel],
                       check=True)
    print(wheel)


if __name__ == '__main__':
    main()
