import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_module(name):
    """Execute rla_mmdet/<name>.py (standard library only) and return its
    namespace, without importing the package and its dependencies."""
    scope = {'__name__': 'rla_mmdet.' + name}
    with open(osp.join(HERE, 'rla_mmdet', name + '.py')) as f:
        exec(f.read(), scope)
    return scope


setup(
    name='rla_mmdet',
    version=read_module('version')['__version__'],
    description='RLA-Net (Recurrent Layer Aggregation) backbones and '
    'detector configs for MMDetection 3.x',
    packages=find_packages(include=['rla_mmdet', 'rla_mmdet.*']),
    python_requires='>=3.8',
    # Ranges, from rla_mmdet/dependencies.py; the exact versions of the
    # tested environments are in requirements/lock*.txt.
    install_requires=read_module('dependencies')['install_requires'](),
    license='Apache-2.0',
)
