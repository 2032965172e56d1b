"""The engines of the batched solver, as a pytest parameter list.

The compiled engine needs numba; without it its cases are skipped.
"""

import importlib.util

import pytest

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

ENGINES = [
    "numpy",
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(not HAVE_NUMBA, reason="the compiled engine needs numba"),
    ),
]
