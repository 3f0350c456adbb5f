"""Tensor-element helpers shared by the readers.

* :func:`widen_bfloat16` turns bfloat16 bit patterns (``uint16``, any byte order) into the
  float32 values they stand for; the widening is exact (bfloat16 is the top half of a
  float32), which is why every reader may do it without losing a bit.
* :func:`check_element_count` refuses a tensor with more elements than ``Limits`` allow,
  before anything is allocated for it.
"""

from __future__ import annotations

import numpy as np

from rnnbridge.errors import LimitExceeded
from rnnbridge.formats.base import Limits


def widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """The float32 array whose values the bfloat16 bit patterns ``bits`` encode.

    Parameters
    ----------
    bits : ndarray of uint16
        The stored bit patterns, in any byte order and with any strides.

    Returns
    -------
    ndarray of float32
        A new native-order array of the same shape.
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


def check_element_count(name: str, count: int, limits: Limits) -> None:
    """Raise ``LimitExceeded`` (naming ``name``) if ``count`` passes the element limit."""
    if count > limits.max_tensor_elements:
        raise LimitExceeded(
            f"tensor {name!r} has {count} elements, more than the limit of {limits.max_tensor_elements}",
            tensor=name,
        )
