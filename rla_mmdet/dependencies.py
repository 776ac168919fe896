"""The versions of torch, numpy and OpenMMLab this package works with.

``SUPPORTED`` is the one place the ranges are written: ``setup.py`` reads it
(by executing this file, which imports only the standard library) for
``install_requires``, and :func:`check_installed` compares it with the
installed packages when ``rla_mmdet`` is imported, so a version outside the
range stops the import with one sentence instead of an ``AttributeError``
deep inside a training run. The exact versions of the tested environments
are pinned in ``requirements/lock*.txt``, not here.
"""
import re
from typing import Callable, Dict, Optional, Tuple

__all__ = [
    'SUPPORTED', 'UnsupportedVersionError', 'install_requires',
    'check_version', 'check_installed'
]

#: ``{distribution: (lowest supported, first unsupported)}``. The mmcv and
#: mmengine bounds are those mmdet 3.3 itself accepts.
SUPPORTED: Dict[str, Tuple[str, str]] = {
    'torch': ('2.0', '2.14'),
    'numpy': ('1.22', '3'),
    'mmengine': ('0.7.1', '1.0.0'),
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmdet': ('3.0.0', '3.4.0'),
}

#: Other run-time requirements, any version.
OTHERS = ('pycocotools', )


class UnsupportedVersionError(ImportError, ValueError):
    """An installed package is outside the range this package supports."""


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


def install_requires() -> list:
    """The requirement strings for ``setup.py``."""
    return [f'{name}>={low},<{high}' for name, (low, high) in
            SUPPORTED.items()] + list(OTHERS)


def check_version(name: str, installed: Optional[str]) -> None:
    """Raise :class:`UnsupportedVersionError` unless ``installed`` is in
    the supported range of ``name``; ``None`` means not installed.

    The upper bound excludes its pre-releases too (``2.14.0.dev0`` is
    outside ``<2.14``).
    """
    low, high = SUPPORTED[name]
    wanted = f"'{name}>={low},<{high}'"
    if installed is None:
        raise UnsupportedVersionError(
            f'rla_mmdet needs {name}, which is not installed; install a '
            f'supported version with pip install {wanted}.')
    version = _key(installed)
    if version < _key(low) or version[0] >= _key(high)[0]:
        raise UnsupportedVersionError(
            f'{name} {installed} is installed, but rla_mmdet supports '
            f'{name} >={low}, <{high}; install a version in that range '
            f'(pip install {wanted}).')


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
    """Check every package of :data:`SUPPORTED`; return their versions.

    The versions are read from the installed distributions' metadata, so
    nothing is imported: mmdet's own check of mmcv runs only afterwards, and
    the sentence raised here comes first.
    """
    found = {}
    for name in SUPPORTED:
        installed = get_version(name)
        check_version(name, installed)
        found[name] = installed
    return found
