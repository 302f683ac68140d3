"""Tensor exchange with Triton's Python-backend stub, shared by branch_model.py and tracker_model.py.

Copied beside each generated ``model.py`` by siamtrt.serving.repository (the branch model needs no siamtrt in the
server's Python, so it imports this file from its own folder). Stubs built with an older pybind11 misread numpy 2
dtypes (``as_numpy()`` returns wrong values, ``Tensor(name, array)`` a byte size of 0), so under numpy 2 every tensor
goes through DLPack.
"""

import sys

import numpy as np
import triton_python_backend_utils as pb_utils

NUMPY2 = int(np.__version__.split(".")[0]) >= 2


def input_array(t):
    """numpy view of a pb_utils.Tensor (through DLPack under numpy 2)."""
    return np.from_dlpack(t) if NUMPY2 else t.as_numpy()


def pb_tensor(name, array):
    """A pb_utils.Tensor from a numpy array (through DLPack under numpy 2)."""
    array = np.ascontiguousarray(array)
    if NUMPY2:
        return pb_utils.Tensor.from_dlpack(name, array)
    return pb_utils.Tensor(name, array)


def quiet_dlpack_capsules(hook=sys.unraisablehook):
    """Install an unraisable hook that ignores numpy 2's report of a renamed DLPack capsule after the stub took
    ownership of it (harmless), passing everything else to ``hook``."""

    def quiet(unraisable):
        if isinstance(unraisable.exc_value, ValueError) and "PyCapsule_GetPointer" in str(unraisable.exc_value):
            return
        hook(unraisable)

    if NUMPY2:
        sys.unraisablehook = quiet
