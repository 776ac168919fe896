"""Which form of each RLA operator runs: one table and one switch.

Every operator of :mod:`rla_mmdet.layers.rla_ops` has a literal form (the
operations of the paper) and may have faster forms for one device. The form
is chosen per call from :data:`DISPATCH` by the key ``(device type,
training, autocast)``:

- *device type*: of the tensors (``'cpu'``, ``'cuda'``...);
- *training*: autograd records the call (grad mode on and an input or a
  weight requires grad);
- *autocast*: autocast is enabled for that device type.

A key missing from the table, or an operator missing from a row, runs the
literal form. Each row is backed by a measurement on its device, recorded in
``docs/performance.md``.

:class:`select_impl` overrides the device: ``'literal'`` runs the literal
forms everywhere, ``'cpu'`` / ``'cuda'`` run that device's row whatever the
tensors' device (so the CUDA choice is tested on a CPU), ``'auto'`` (the
default) follows the tensors.
"""
from typing import Dict, Optional, Tuple

import torch

__all__ = [
    'IMPL_CHOICES', 'DISPATCH', 'LITERAL', 'select_impl', 'current_impl',
    'choose'
]

#: The values :class:`select_impl` accepts.
IMPL_CHOICES = ('auto', 'literal', 'cpu', 'cuda')

#: Every operator in its literal form.
LITERAL: Dict[str, str] = dict(concat_conv='literal', rla_update='literal')

#: ``(device type, training, autocast) -> {operator: form}``.
DISPATCH: Dict[Tuple[str, bool, bool], Dict[str, str]] = {
    # CPU, fp32 (2 cores, torch 2.13), `benchmark.py --tasks forms`.
    # Training: building cat([x, h]) copies x and keeps the copy for
    # backward; convolving x and h apart does not (RLA-R50 step 1.13x
    # ResNet-50's against 1.20x literal). The folded update did not pay
    # there (1.16x).
    ('cpu', True, False): dict(concat_conv='split', rla_update='literal'),
    # Inference: also the update with its eval-mode norm folded into one
    # matmul (eval forward 1.16x against 1.25x literal).
    ('cpu', False, False): dict(concat_conv='split', rla_update='folded'),
    # CPU under bf16 autocast: the literal forms (not measured faster).
    ('cpu', True, True): LITERAL,
    ('cpu', False, True): LITERAL,
    # CUDA (H100 and H200, torch 2.11): the split forms cost the GPU extra
    # kernel launches at the batch sizes of detection, where it waits for the
    # CPU; the literal forms were faster in every measured case.
    ('cuda', True, False): LITERAL,
    ('cuda', False, False): LITERAL,
    ('cuda', True, True): LITERAL,
    ('cuda', False, True): LITERAL,
}

_forced = 'auto'


def _autocast_checker():
    """``enabled(device_type)`` for this torch (the device argument of
    ``torch.is_autocast_enabled`` arrived in torch 2.4)."""
    try:
        torch.is_autocast_enabled('cpu')
    except TypeError:

        def enabled(device_type: str) -> bool:
            if device_type == 'cpu':
                return torch.is_autocast_cpu_enabled()
            if device_type == 'cuda':
                return torch.is_autocast_enabled()
            return False

        return enabled
    return torch.is_autocast_enabled


_autocast_enabled = _autocast_checker()


class select_impl:
    """Force the forms of the RLA operators: a function or a context manager.

    Args:
        choice: ``'literal'`` (the literal forms everywhere), ``'cpu'`` or
            ``'cuda'`` (that device's row of :data:`DISPATCH`, on any
            device), or ``'auto'`` (each call follows its tensors' device).

    Example:
        >>> from rla_mmdet.layers import select_impl, current_impl
        >>> with select_impl('literal'):
        ...     current_impl()
        'literal'
        >>> current_impl()
        'auto'
        >>> _ = select_impl('cuda')   # from now on, until changed
        >>> _ = select_impl('auto')
    """

    def __init__(self, choice: str) -> None:
        global _forced
        if choice not in IMPL_CHOICES:
            raise ValueError(f'select_impl takes one of {IMPL_CHOICES}, got '
                             f'{choice!r}.')
        self.previous = _forced
        self.choice = choice
        _forced = choice

    def __enter__(self) -> 'select_impl':
        return self

    def __exit__(self, *exc_info) -> None:
        global _forced
        _forced = self.previous


def current_impl() -> str:
    """The choice in force (see :class:`select_impl`)."""
    return _forced


def choose(op: str, device_type: str, training: bool,
           device: Optional[str] = None) -> str:
    """The form of ``op`` for tensors on ``device_type``.

    Args:
        op: An operator of :data:`LITERAL`.
        device_type: The device type of the call's tensors.
        training: Whether autograd records the call.
        device: The row to read instead of the choice in force (for tools
            that print the table).
    """
    row = device or _forced
    if row == 'literal':
        return 'literal'
    if row == 'auto':
        row = device_type
    key = (row, training, bool(_autocast_enabled(device_type)))
    return DISPATCH.get(key, LITERAL).get(op, 'literal')
