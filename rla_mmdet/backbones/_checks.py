"""Argument checks shared by the RLA backbones.

Every check raises ``TypeError`` or ``ValueError`` with one sentence that names
the argument, the value it got and what is allowed, so that a mistake in a
config file is reported where it was made and never survives ``python -O``.
"""
from numbers import Integral
from typing import Any, Sequence, Tuple


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``."""
    if not is_int(value):
        raise TypeError(f'{name} must be an int, got {value!r} '
                        f'({type(value).__name__}).')
    if value < low or (high is not None and value > high):
        allowed = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{name} must be {allowed}, got {value}.')
    return int(value)


def check_int_tuple(name: str,
                    value: Any,
                    length: int,
                    low: int = 1,
                    odd: bool = False) -> Tuple[int, ...]:
    """Return ``value`` as a tuple of ``length`` ints, each ``>= low``.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check (a list or tuple).
        length: The required number of items.
        low: The smallest allowed item.
        odd: Whether every item must be odd.
    """
    what = f'a sequence of {length} {"odd " if odd else ""}ints >= {low}'
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f'{name} must be {what}, got {value!r}.')
    if len(value) != length:
        raise ValueError(f'{name} must be {what}, got {len(value)} items: '
                         f'{tuple(value)!r}.')
    for item in value:
        if not is_int(item):
            raise TypeError(f'{name} must be {what}, got {tuple(value)!r} '
                            f'with the non-int item {item!r}.')
        if item < low or (odd and item % 2 == 0):
            raise ValueError(f'{name} must be {what}, got {tuple(value)!r}.')
    return tuple(int(item) for item in value)


def check_indices(name: str, value: Any, high: int,
                  note: str = '') -> Tuple[int, ...]:
    """Return ``value`` as a tuple of ints, non-empty and strictly
    increasing, each in ``[0, high]``; ``note`` is added to the error
    message after the range (e.g. what each index means)."""
    what = (f'a non-empty, increasing sequence of ints in [0, {high}]'
            f'{note}')
    if isinstance(value, (str, bytes)) or not isinstance(
            value, Sequence) or not value:
        raise TypeError(f'{name} must be {what}, got {value!r}.')
    for item in value:
        if not is_int(item):
            raise TypeError(f'{name} must be {what}, got {tuple(value)!r} '
                            f'with the non-int item {item!r}.')
        if not 0 <= item <= high:
            raise ValueError(f'{name} must be {what}, got {tuple(value)!r}.')
    value = tuple(int(item) for item in value)
    if list(value) != sorted(set(value)):
        raise ValueError(f'{name} must be {what}, got {value!r}.')
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}.')
    return value


def check_choice(name: str, value: Any, choices: Sequence) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)!r}, '
                         f'got {value!r}.')
    return value
