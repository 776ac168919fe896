import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'rla_mmdet', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='rla_mmdet',
    version=read_version(),
    description='RLA-Net (Recurrent Layer Aggregation) backbones and '
    'detector configs for MMDetection 3.x',
    packages=find_packages(include=['rla_mmdet', 'rla_mmdet.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=2.0', 'mmengine==0.10.7', 'mmcv==2.1.0', 'mmdet==3.3.0',
        'pycocotools'
    ],
    license='Apache-2.0',
)
