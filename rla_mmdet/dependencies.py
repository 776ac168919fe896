"""The versions of torch, numpy and OpenMMLab this package works with.

``SUPPORTED`` is the one place the ranges are written: ``setup.py`` reads it
(by executing this file, which imports only the standard library until a
version is compared) for ``install_requires``, and :func:`check_installed`
compares it with the installed packages when ``rla_mmdet`` is imported, so a
version outside the range stops the import with one sentence instead of an
``AttributeError`` deep inside a training run. Versions are read and
compared by ``packaging`` (PEP 440), as pip does.

The lower bounds are the versions of the oldest tested stack
(``requirements/lock-oldest.txt``). Upper bounds are set only where a
version is known to break, each with its reason in :data:`UPPER_REASONS`;
torch and numpy have none. A torch newer than :data:`NEWEST_TESTED_TORCH`
imports with one warning naming the tested range. The exact versions of the
three tested stacks are pinned in ``requirements/lock*.txt``, not here.
"""
import importlib
import importlib.metadata
import warnings
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

if TYPE_CHECKING:
    from packaging.version import Version

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

#: Other run-time requirements, not checked at import: filelock (the
#: download cache's per-entry locks) from the oldest stack's version on,
#: pycocotools, and setuptools on Python 3.12 and later: mmengine's Runner
#: collects its environment report with ``distutils``, which Python 3.12
#: removed and setuptools provides again; without it every training or test
#: run stops with ``No module named 'distutils'``.
OTHERS = ('filelock>=3.16.1', 'pycocotools',
          'setuptools; python_version >= "3.12"')

#: What reads and compares the versions here; 20.0 has every part of
#: ``Version`` used (``release``, ``base_version``).
PACKAGING = 'packaging>=20.0'


class UnsupportedVersionError(ImportError, ValueError):
    """An installed package is outside the range this package supports."""


class UntestedVersionWarning(UserWarning):
    """An installed package is newer than any tested stack."""


def _version(text: str) -> 'Version':
    """``text`` as a PEP 440 version; ``'2.1.2+cu121'`` and ``'2.0.0rc4'``
    are read as pip reads them (a final release ranks above its
    pre-releases).

    ``packaging`` is imported here, not at the top, so that ``setup.py``
    can execute this file before anything is installed.
    """
    from packaging.version import InvalidVersion, Version
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(f'cannot read the version {text!r}; expected '
                         'digits such as 2.1.2.') from None


def _range(name: str) -> Tuple[str, Optional[str]]:
    return SUPPORTED[name] if name in SUPPORTED else ON_USE[name]


def _spec(name: str) -> str:
    low, high = _range(name)
    return f'{name}>={low}' + (f',<{high}' if high else '')


def install_requires() -> list:
    """The requirement strings for ``setup.py``."""
    return [_spec(name) for name in list(SUPPORTED) + list(ON_USE)
            ] + [PACKAGING] + list(OTHERS)


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
    version = _version(installed)
    if version < _version(low):
        raise UnsupportedVersionError(
            f'{name} {installed} is installed, but rla_mmdet needs {name} '
            f'>={low}; install a newer one (pip install {wanted}).')
    if high is not None and _version(version.base_version) >= _version(high):
        raise UnsupportedVersionError(
            f'{name} {installed} is installed, but rla_mmdet supports '
            f'{name} <{high} because {UPPER_REASONS[name]}; install a '
            f'version in that range (pip install {wanted}).')
    newest = _version(NEWEST_TESTED_TORCH).release
    if name == 'torch' and version.release[:len(newest)] > newest:
        warnings.warn(
            f'torch {installed} is newer than the torch versions rla_mmdet '
            f'is tested with ({low} to {NEWEST_TESTED_TORCH}); please '
            'report what breaks.', UntestedVersionWarning, stacklevel=3)


def check_yapf(mmengine: Optional[str], yapf: Optional[str]) -> None:
    """Refuse the known-broken pair of an mmengine older than
    :data:`MMENGINE_YAPF_FIX` and a yapf without ``FormatCode(verify=)``."""
    if mmengine is None or yapf is None:
        return
    if (_version(mmengine) < _version(MMENGINE_YAPF_FIX)
            and _version(yapf) >= _version(YAPF_WITHOUT_VERIFY)):
        raise UnsupportedVersionError(
            f'mmengine {mmengine} formats configs with yapf\'s verify= '
            f'argument, which yapf {yapf} no longer has, so every run would '
            f"stop at its config; run pip install 'yapf<"
            f"{YAPF_WITHOUT_VERIFY}' (or upgrade to mmengine>="
            f'{MMENGINE_YAPF_FIX}).')


def _installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        # e.g. a source build put on PYTHONPATH without package metadata
        return _module_version(name)


def _module_version(name: str) -> Optional[str]:
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
