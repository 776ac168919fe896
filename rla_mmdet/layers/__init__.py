"""The operators of an RLA network, each in its literal form and, where a
measurement showed a gain on some device, a faster form beside it.

The backbones call :func:`concat_conv` and :func:`rla_update`; which form
runs is decided by :mod:`rla_mmdet.layers.dispatch` (one table, per device
type, training or inference, autocast or not), and :class:`select_impl`
forces the literal forms, or one device's choice, anywhere.
"""
from .dispatch import IMPL_CHOICES, DISPATCH, current_impl, select_impl
from .rla_ops import FORMS, concat_conv, rla_update

__all__ = [
    'concat_conv', 'rla_update', 'select_impl', 'current_impl',
    'IMPL_CHOICES', 'DISPATCH', 'FORMS'
]
