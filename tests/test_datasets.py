"""The synthetic cubes of ``parfit.datasets``: shapes, truth, model and noise."""

import numpy as np
import pytest

from parfit.datasets import SyntheticCube, multi_gaussian_cube


def _model_at_truth(cube):
    """The cube's model evaluated at the truth, in the cube's layout."""
    names = cube.model.param_names
    params = np.stack([np.reshape(cube.truth[n], -1) for n in names], axis=1)
    flat = cube.model.evaluate(cube.world[0], params)  # (n_fits, n_channels)
    return np.moveaxis(flat, -1, 0).reshape(cube.data.shape)


def test_multi_gaussian_cube_shapes_and_names():
    cube = multi_gaussian_cube((64, 6, 7), seed=3)
    assert isinstance(cube, SyntheticCube)
    assert cube.data.shape == (64, 6, 7) and cube.data.dtype == np.float64
    assert len(cube.world) == 1 and cube.world[0].shape == (64,)
    names = cube.model.param_names
    assert names == (
        "amplitude_0",
        "mean_0",
        "stddev_0",
        "amplitude_1",
        "mean_1",
        "stddev_1",
        "amplitude_2",
        "mean_2",
        "stddev_2",
        "slope_3",
        "intercept_3",
    )
    assert list(cube.truth) == list(names)
    for value in cube.truth.values():
        assert value.shape == (6, 7)
    # Lines near three distinct centres, which the shared start sits on.
    for k, centre in enumerate((-50.0, 0.0, 50.0)):
        assert np.all(np.abs(cube.truth[f"mean_{k}"] - centre) <= 5.0)
        assert getattr(cube.model, f"mean_{k}").value == centre
        assert getattr(cube.model, f"stddev_{k}").bounds == (0.0, None)
    assert cube.world[0][0] == -100.0 and cube.world[0][-1] == 100.0


def test_multi_gaussian_cube_is_model_at_truth_plus_noise():
    cube = multi_gaussian_cube((256, 30, 40), noise=0.2, seed=5)
    residual = cube.data - _model_at_truth(cube)
    assert cube.noise == 0.2
    assert abs(residual.std() - 0.2) < 0.005
    assert abs(residual.mean()) < 0.005


def test_multi_gaussian_cube_is_seeded():
    a = multi_gaussian_cube((32, 3, 3), seed=7)
    b = multi_gaussian_cube((32, 3, 3), seed=7)
    c = multi_gaussian_cube((32, 3, 3), seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


@pytest.mark.parametrize(
    "n_components, baseline, n_params", [(1, False, 3), (2, True, 8), (4, False, 12)]
)
def test_multi_gaussian_cube_components(n_components, baseline, n_params):
    cube = multi_gaussian_cube(
        (100, 2, 3), n_components=n_components, baseline=baseline, noise=0.0, seed=0
    )
    assert len(cube.model.param_names) == n_params
    assert list(cube.truth) == list(cube.model.param_names)
    np.testing.assert_allclose(cube.data, _model_at_truth(cube), rtol=0, atol=1e-12)
    if n_components == 1 and not baseline:
        assert cube.model.param_names == ("amplitude", "mean", "stddev")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_multi_gaussian_cube_rejects_bad_n_components(bad):
    with pytest.raises(ValueError, match="n_components"):
        multi_gaussian_cube((10, 2, 2), n_components=bad)
