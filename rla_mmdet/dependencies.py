"""The versions of torch, numpy and OpenMMLab this package works with.

``SUPPORTED`` is the one place the ranges are written: ``setup.py`` reads it
(by executing this file, which imports only the standard library) for
``install_requires``, and :func:`check_installed` compares it with the
installed packages when ``rla_mmdet`` is imported, so a version outside the
range stops the import with one sentence instead of an ``AttributeError``
deep inside a training run.

The lower bounds are the versions of the oldest tested stack
(``requirements/lock-oldest.txt``). Upper bounds are set only where a
version is known to break, each with its reason in :data:`UPPER_REASONS`;
torch and numpy have none. A torch newer than :data:`NEWEST_TESTED_TORCH`
imports with one warning naming the tested range. The exact versions of the
three tested stacks are pinned in ``requirements/lock*.txt``, not here.
"""
import re
import warnings
from typing import Callable, Dict, Optional, Tuple

__all__ = [
    'SUPPORTED', 'ON_USE', 'UPPER_REASONS', 'NEWEST_TESTED_TORCH',
    'UnsupportedVersionError', 'UntestedVersionWarning', 'install_requires',
    'check_version', 'check_installed', 'check_yapf'
]

#: ``{distribution: (lowest supported, first unsupported or None)}``.
SUPPORTED: Dict[str, Tuple[str, Optional[str]]] = {
    'torch': ('2.0.1', None),
    'numpy': ('1.22.4', None),
    'mmengine': ('0.7.1', '1.0.0'),
    'mmcv': ('2.0.1', '2.2.0'),
    'mmdet': ('3.0.0', '4.0.0'),
}

#: Packages needed only by one feature, in the same form as
#: :data:`SUPPORTED`: declared in ``install_requires`` and pinned in the lock
#: files, but imported (and their version checked with
#: :func:`check_version`) only when the feature is used, so ``import
#: rla_mmdet`` runs without them. safetensors: reading and writing
#: ``.safetensors`` checkpoints (:mod:`rla_mmdet.checkpoint.safetensors_io`).
ON_USE: Dict[str, Tuple[str, Optional[str]]] = {
    'safetensors': ('0.5.3', None),
}

#: Why each upper bound of :data:`SUPPORTED` is there.
UPPER_REASONS: Dict[str, str] = {
    'mmengine': 'mmdet 3.x requires mmengine < 1.0',
    'mmcv': 'mmdet 3.x refuses mmcv 2.2 and later at import',
    'mmdet': 'this package is written against the mmdet 3.x API',
}

#: The newest torch release a tested stack runs (requirements/lock.txt); a
#: newer one gets :class:`UntestedVersionWarning`, not an error.
NEWEST_TESTED_TORCH = '2.15'

#: mmengine releases before this one call yapf's ``FormatCode(verify=...)``,
#: which yapf 0.40.2 removed: every Runner dies formatting its config.
MMENGINE_YAPF_FIX = '0.8.5'
YAPF_WITHOUT_VERIFY = '0.40.2'

#: Other run-time requirements, any version. setuptools on Python 3.12
#: and later: mmengine's Runner collects its environment report with
#: ``distutils``, which Python 3.12 removed and setuptools provides again;
#: without it every training or test run stops with ``No module named
#: 'distutils'``.
OTHERS = ('pycocotools', 'setuptools; python_version >= "3.12"')


class UnsupportedVersionError(ImportError, ValueError):
    """An installed package is outside the range this package supports."""


class UntestedVersionWarning(UserWarning):
    """An installed package is newer than any tested stack."""


_PRE = {'dev': 0, 'a': 1, 'alpha': 1, 'b': 2, 'beta': 2, 'c': 3, 'rc': 3}


def _key(version: str) -> Tuple[Tuple[int, ...], Tuple[int, int]]:
    """``((release...), (pre-release rank, number))`` of a version string.

    ``'2.1.2+cu121'`` gives ``((2, 1, 2), (4, 0))`` and ``'2.0.0rc4'``
    ``((2, 0, 0), (3, 4))``: a final release ranks above its pre-releases.
    """
    match = re.match(r'\s*v?(\d+(?:\.\d+)*)(?:[.-]?(dev|alpha|beta|a|b|c|rc)'
                     r'\.?(\d*))?', str(version))
    if match is None:
        raise ValueError(f'cannot read the version {version!r}; expected '
                         'digits such as 2.1.2.')
    release = tuple(int(p) for p in match.group(1).split('.'))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = (4, 0)
    if match.group(2):
        pre = (_PRE[match.group(2)], int(match.group(3) or 0))
    return release, pre


def _range(name: str) -> Tuple[str, Optional[str]]:
    return SUPPORTED[name] if name in SUPPORTED else ON_USE[name]


def _spec(name: str) -> str:
    low, high = _range(name)
    return f'{name}>={low}' + (f',<{high}' if high else '')


def install_requires() -> list:
    """The requirement strings for ``setup.py``."""
    return [_spec(name) for name in list(SUPPORTED) + list(ON_USE)
            ] + list(OTHERS)


def check_version(name: str, installed: Optional[str]) -> None:
    """Raise :class:`UnsupportedVersionError` unless ``installed`` is in
    the supported range of ``name`` (a package of :data:`SUPPORTED` or
    :data:`ON_USE`); ``None`` means not installed. A torch
    newer than :data:`NEWEST_TESTED_TORCH` gets a warning.

    The upper bound excludes its pre-releases too (``2.2.0rc1`` is outside
    ``mmcv<2.2.0``).
    """
    low, high = _range(name)
    wanted = f"'{_spec(name)}'"
    if installed is None:
        raise UnsupportedVersionError(
            f'rla_mmdet needs {name}, which is not installed; install a '
            f'supported version with pip install {wanted}.')
    version = _key(installed)
    if version < _key(low):
        raise UnsupportedVersionError(
            f'{name} {installed} is installed, but rla_mmdet needs {name} '
            f'>={low}; install a newer one (pip install {wanted}).')
    if high is not None and version[0] >= _key(high)[0]:
        raise UnsupportedVersionError(
            f'{name} {installed} is installed, but rla_mmdet supports '
            f'{name} <{high} because {UPPER_REASONS[name]}; install a '
            f'version in that range (pip install {wanted}).')
    newest = _key(NEWEST_TESTED_TORCH)[0]
    if name == 'torch' and version[0][:len(newest)] > newest:
        warnings.warn(
            f'torch {installed} is newer than the torch versions rla_mmdet '
            f'is tested with ({low} to {NEWEST_TESTED_TORCH}); please '
            'report what breaks.', UntestedVersionWarning, stacklevel=3)


def check_yapf(mmengine: Optional[str], yapf: Optional[str]) -> None:
    """Refuse the known-broken pair of an mmengine older than
    :data:`MMENGINE_YAPF_FIX` and a yapf without ``FormatCode(verify=)``."""
    if mmengine is None or yapf is None:
        return
    if (_key(mmengine) < _key(MMENGINE_YAPF_FIX)
            and _key(yapf) >= _key(YAPF_WITHOUT_VERIFY)):
        raise UnsupportedVersionError(
            f'mmengine {mmengine} formats configs with yapf\'s verify= '
            f'argument, which yapf {yapf} no longer has, so every run would '
            f"stop at its config; run pip install 'yapf<"
            f"{YAPF_WITHOUT_VERIFY}' (or upgrade to mmengine>="
            f'{MMENGINE_YAPF_FIX}).')


def _installed_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return _module_version(name)
    try:
        return version(name)
    except PackageNotFoundError:
        # e.g. a source build put on PYTHONPATH without package metadata
        return _module_version(name)


def _module_version(name: str) -> Optional[str]:
    import importlib
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return getattr(module, '__version__', None)


def check_installed(
        get_version: Callable[[str], Optional[str]] = _installed_version
) -> Dict[str, str]:
    """Check every package of :data:`SUPPORTED` (and yapf against an old
    mmengine); return their versions.

    The versions are read from the installed distributions' metadata, so
    nothing is imported: mmdet's own check of mmcv runs only afterwards, and
    the sentence raised here comes first.
    """
    found = {}
    for name in SUPPORTED:
        installed = get_version(name)
        check_version(name, installed)
        found[name] = installed
    check_yapf(found['mmengine'], get_version('yapf'))
    return found
