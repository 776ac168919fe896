"""Former home of the shapes generator, now
:mod:`rla_mmdet.tools_support.shapes` (it writes a dataset's files for
``tools/misc/make_shapes_dataset.py``; the configs read them with
MMDetection's ``CocoDataset``). ``from rla_mmdet.datasets import
make_shapes_dataset`` keeps working."""
from ..tools_support.shapes import SHAPE_CLASSES, make_shapes_dataset

__all__ = ['SHAPE_CLASSES', 'make_shapes_dataset']
