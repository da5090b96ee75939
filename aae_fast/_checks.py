"""Argument checks shared by the fast path, the priors, training and evaluation.

One definition of "a positive int" for every public argument that counts something (widths,
dimensions, batch sizes, components), so that they all accept what torch's own constructors
accept (Python ints, numpy integers, 0-dim integer tensors: anything with ``__index__``) and all
refuse the same things (bools, floats, strings) with the same message. The reference keeps its
own copy (``aae_fast.reference._common.check_int``): it imports nothing from the fast path.
"""

from __future__ import annotations

import operator

__all__ = ["positive_int"]


def positive_int(value: object, name: str) -> int:
    """``value`` as a Python int >= 1, or a ValueError naming ``name`` and the value received.

    ``True`` is refused although it is an int subclass: a flag passed where a count belongs is a
    mistake, not 1.
    """
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= 1:
                return number
    raise ValueError(f"{name} must be a positive int, got {value!r}")
