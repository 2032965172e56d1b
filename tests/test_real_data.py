"""The vendored real cubes in tests/data are small, load, and are sane."""

import numpy as np
import pytest
from _real_cubes import REAL_CUBES, load_real_cube  # tests/ is on sys.path


@pytest.mark.parametrize("name", REAL_CUBES)
def test_real_cube_is_small_and_loads(name):
    cube = load_real_cube(name)
    assert cube["path"].stat().st_size <= 1_000_000
    data, x = cube["data"], cube["x"]
    assert data.dtype == np.float64 and data.ndim == 3
    assert x.dtype == np.float64 and x.shape == (data.shape[0],)
    assert np.isfinite(data).mean() > 0.95
    assert np.all(np.isfinite(x))
    step = np.diff(x)
    assert np.all(step > 0) or np.all(step < 0)
    assert isinstance(cube["x_unit"], str) and isinstance(cube["unit"], str)
    assert set(cube["start"]) == {"amplitude", "mean", "stddev"}
    assert x.min() < cube["start"]["mean"] < x.max()
