"""Shape-typed aliases used across the package."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Float64Array1D = Annotated[Float64Array, "shape (n,)"]
Float64Array2D = Annotated[Float64Array, "shape (n, m)"]
Int64Array1D = Annotated[npt.NDArray[np.int64], "shape (n,)"]
BoolArray1D = Annotated[npt.NDArray[np.bool_], "shape (n,)"]
