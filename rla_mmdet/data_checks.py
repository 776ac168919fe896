"""Former home of the dataset checks, now
:mod:`rla_mmdet.tools_support.data_checks`; its public names stay
importable from here for scripts written against this path."""
from .tools_support.data_checks import (DatasetWarning, check_coco_split,
                                        check_datasets, dataset_classes,
                                        iter_datasets, load_coco_json)

__all__ = [
    'DatasetWarning', 'check_coco_split', 'check_datasets', 'dataset_classes',
    'iter_datasets', 'load_coco_json'
]
