"""Per-pixel model selection: the right number of components, criteria, outputs, refusals."""

import numpy as np
import pytest
from scipy.optimize import least_squares

import parfit
from parfit.datasets import components_cube
from parfit.errors import InputError, InputTypeError, OutputExistsError
from parfit.models import Gaussian1D
from parfit.selection import (
    SelectionResult,
    choose,
    criterion_map,
    is_selection_folder,
    read_selection,
)
from parfit.status import Status


def candidates():
    g = Gaussian1D(1.5, 0.0, 3.0)
    return [g, g + Gaussian1D(1.5, 0.0, 3.0), g + Gaussian1D(1.5, 0.0, 3.0) + Gaussian1D()]


@pytest.fixture(scope="module")
def cube():
    return components_cube((100, 16, 36), seed=2)


@pytest.fixture(scope="module")
def selection(cube):
    return parfit.parallel_fit(
        candidates(),
        cube.data,
        world=cube.world,
        initial="guess",
        select="aicc",
        scheduler="synchronous",
    )


def test_aicc_picks_the_number_of_components(cube, selection):
    truth = cube.truth["n_components"]
    chosen = np.asarray(selection.selected) + 1
    assert isinstance(selection, SelectionResult)
    assert (chosen == truth).mean() >= 0.95
    for n in (1, 2, 3):  # no region is sacrificed to the others
        assert (chosen[truth == n] == n).mean() >= 0.9
    # Every candidate's maps are complete: every pixel fitted, none left NOT_RUN.
    for result in selection.candidates:
        assert result.shape == truth.shape
        assert not np.any(np.asarray(result.status) == Status.NOT_RUN)
        assert np.asarray(result.success).mean() > 0.9
    assert selection.criteria.shape == (3,) + truth.shape
    assert np.all(selection.delta[np.isfinite(selection.delta)] >= 0)
    assert selection.n_free == (3, 6, 9)


def test_components_are_ordered_by_position_and_match_the_truth(cube, selection):
    right = (np.asarray(selection.selected) + 1) == cube.truth["n_components"]
    three = right & (cube.truth["n_components"] == 3)
    means = np.stack([selection.parameters[f"mean_{k}"][three] for k in range(3)])
    assert np.all(np.diff(means, axis=0) > 0)
    for k in range(3):
        error = selection.parameters[f"mean_{k}"][three] - cube.truth[f"mean_{k}"][three]
        assert np.median(np.abs(error)) < 0.3
    # The chosen maps hold the chosen candidate's values, NaN for parameters it lacks.
    one = np.asarray(selection.selected) == 0
    assert np.all(np.isnan(selection.parameters["mean_0"][one]))
    assert np.array_equal(
        selection.parameters["mean"][one],
        np.asarray(selection.candidates[0].parameters["mean"])[one],
    )
    assert np.array_equal(
        selection.statistic[one], np.asarray(selection.candidates[0].statistic)[one]
    )


def test_threshold_keeps_simpler_models(cube, selection):
    strict = SelectionResult(
        selection.candidates,
        criterion="aicc",
        threshold=1e9,
        n_free=selection.n_free,
        n_valid=selection.n_valid,
    )
    assert set(np.unique(strict.selected)) <= {-1, 0}
    # Where the lowest criterion belonged to a more complex model, the margin
    # to the runner-up is negative: the simpler model was kept by the threshold.
    complex_won = (np.asarray(selection.selected) > 0) & (strict.selected == 0)
    assert complex_won.sum() > 100
    assert np.all(strict.delta[complex_won] < 0)


def test_summary_repr_and_xarray(selection):
    text = selection.summary()
    assert text.startswith("model selection by AICC over 3 candidates, 576 pixels")
    assert "candidate 2:" in text and "--- candidate 0 ---" in text
    assert repr(selection).startswith("<SelectionResult 576 pixels of shape (16, 36), 3 cand")
    ds = selection.to_xarray()
    assert ds["criteria"].dims == ("candidate", "dim_1", "dim_2")
    assert ds.attrs["n_free"] == [3, 6, 9]
    np.testing.assert_array_equal(ds["selected"].values, selection.selected)


def test_selection_agrees_with_an_independent_scipy_oracle(cube, selection):
    """The criteria from per-pixel scipy fits (same starts) choose the same candidate."""
    x = cube.world[0]
    rng = np.random.default_rng(7)
    pixels = [tuple(p) for p in np.argwhere(np.ones(cube.truth["n_components"].shape))]
    pick = [pixels[i] for i in rng.choice(len(pixels), 30, replace=False)]
    agree = 0
    for j, i in pick:
        y = cube.data[:, j, i]
        crit = []
        for k, result in enumerate(selection.candidates):
            n = 3 * (k + 1)
            names = result.param_names
            start = [result.parameters[nm][j, i] for nm in names]
            if not np.all(np.isfinite(start)):
                crit.append(np.nan)
                continue

            def resid(p, n=n, y=y):
                model = np.zeros_like(x)
                for c in range(n // 3):
                    a, m, s = p[3 * c : 3 * c + 3]
                    model += a * np.exp(-0.5 * ((x - m) / s) ** 2)
                return model - y

            fit = least_squares(resid, start, method="trf")
            rss = float(np.sum(fit.fun**2))
            crit.append(criterion_map(np.array([rss]), np.array([len(x)]), n, "aicc")[0])
        crit = np.array(crit)
        ok = np.isfinite(selection.criteria[:, j, i])
        crit[~ok] = np.nan  # the same eligibility (success and significant peaks)
        if np.isfinite(crit).any():
            sel, _ = choose(crit[:, None], [3, 6, 9])
            agree += int(sel[0] == selection.selected[j, i])
        else:
            agree += int(selection.selected[j, i] == -1)
    assert agree >= 29


def test_criteria_formulas():
    rss, n, k = np.array([2.0]), np.array([50]), 6
    unknown = 50 * np.log(2.0 / 50)
    assert criterion_map(rss, n, k, "aic")[0] == pytest.approx(unknown + 12)
    assert criterion_map(rss, n, k, "aicc")[0] == pytest.approx(unknown + 12 + 84 / 43)
    assert criterion_map(rss, n, k, "bic")[0] == pytest.approx(unknown + 6 * np.log(50))
    assert criterion_map(rss, n, k, "aic", known_noise=True)[0] == pytest.approx(14.0)
    assert criterion_map(rss, n, k, "aic", statistic_name="cash")[0] == pytest.approx(14.0)
    assert np.isnan(criterion_map(rss, np.array([7]), k, "aicc")[0])  # n - k - 1 = 0


def test_selection_streamed_to_a_folder_reads_back(cube, tmp_path):
    small = cube.data[:, :4, ::4]
    folder = tmp_path / "sel"
    kwargs = dict(world=cube.world, initial="guess", select="bic", scheduler="synchronous")
    memory = parfit.parallel_fit(candidates(), small, **kwargs)
    streamed = parfit.parallel_fit(candidates(), small, output=folder, **kwargs)
    assert is_selection_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "candidate_0.zarr",
        "candidate_1.zarr",
        "candidate_2.zarr",
        "selection.zarr",
    ]
    back = read_selection(folder)
    for result in (streamed, back):
        np.testing.assert_array_equal(result.selected, memory.selected)
        np.testing.assert_array_equal(result.criteria, memory.criteria)
        for name in memory.param_names:
            np.testing.assert_array_equal(result.parameters[name], memory.parameters[name])
        np.testing.assert_array_equal(result.components("mean"), memory.components("mean"))
    with pytest.raises(OutputExistsError, match="already exists"):
        parfit.parallel_fit(candidates(), small, output=folder, **kwargs)
    again = parfit.parallel_fit(candidates(), small, output=folder, resume=True, **kwargs)
    np.testing.assert_array_equal(again.selected, memory.selected)


def test_selection_with_refit_and_min_snr(cube):
    small = cube.data[:, :6, :12]
    result = parfit.parallel_fit(
        candidates()[:2],
        small,
        world=cube.world,
        initial="guess",
        select="aicc",
        refit="neighbours",
        min_snr=3.0,
        scheduler="synchronous",
    )
    for c in result.candidates:
        assert c.run.refit is not None and np.asarray(c.refits).shape == (6, 12)
    assert (np.asarray(result.selected) >= 0).all()


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "message"),
    [
        (
            "list",
            dict(select="chi2"),
            InputError,
            "select must be one of 'aic', 'aicc', 'bic'; got 'chi2'",
        ),
        (
            "list",
            dict(),
            InputError,
            "model is a list of 2 candidate models, which needs select= (one of 'aic', 'aicc', "
            "'bic') to choose between them per pixel",
        ),
        (
            "one",
            dict(select="aic"),
            InputError,
            "select='aic' needs a list of candidate models, model=[m1, m2, ...]; got one model "
            "(Gaussian1D)",
        ),
        (
            "single-list",
            dict(select="aic"),
            InputError,
            "select='aic' needs at least two candidate models; got 1",
        ),
        (
            "list",
            dict(select="aic", select_threshold=-1),
            InputError,
            "select_threshold must be a number >= 0 (the improvement of the criterion a more "
            "complex model needs); got -1",
        ),
        (
            "bad-member",
            dict(select="aic"),
            InputTypeError,
            "model[1]: model must be a parfit model (parfit.models) or an astropy.modeling "
            "model; got str",
        ),
    ],
)
def test_bad_select_arguments_are_refused(model, kwargs, error, message, tmp_path):
    g = Gaussian1D()
    models = {
        "list": [g, g + Gaussian1D()],
        "one": g,
        "single-list": [g],
        "bad-member": [g, "gaussian"],
    }[model]
    with pytest.raises(error) as info:
        parfit.parallel_fit(
            models, np.ones((10, 2, 2)), world=(np.arange(10.0),), output=tmp_path / "out", **kwargs
        )
    assert str(info.value) == message
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_components_align_peaks_across_candidates(cube, selection):
    means = selection.components("mean")
    assert means.shape == (3,) + cube.truth["n_components"].shape
    n = selection.n_components
    np.testing.assert_array_equal(n, np.asarray(selection.selected) + 1)
    for j in range(3):
        assert np.all(np.isfinite(means[j][n > j]))
        assert np.all(np.isnan(means[j][n <= j]))
    one = n == 1
    np.testing.assert_array_equal(means[0][one], selection.parameters["mean"][one])
    two = n == 2
    np.testing.assert_array_equal(means[1][two], selection.parameters["mean_1"][two])
    errors = selection.components("mean", errors=True)
    np.testing.assert_array_equal(errors[0][one], selection.errors["mean"][one])
    right = n == cube.truth["n_components"]
    for j in range(3):
        here = right & (n > j)
        assert np.median(np.abs(means[j][here] - cube.truth[f"mean_{j}"][here])) < 0.3
    with pytest.raises(KeyError, match="no candidate has a peak with a parameter 'slope'"):
        selection.components("slope")


def test_a_refused_option_of_every_candidate_names_no_candidate():
    g = Gaussian1D()
    with pytest.raises(InputError) as info:
        parfit.parallel_fit(
            [g, g + Gaussian1D()],
            np.ones((10, 2, 2)),
            world=(np.arange(10.0),),
            select="aic",
            chunk_n_max=0,
        )
    assert str(info.value) == "chunk_n_max must be a positive integer (fits per dask task); got 0"
    with pytest.raises(InputError) as info:
        parfit.parallel_fit(
            [g, g + Gaussian1D()],
            np.ones((10, 2, 2)),
            world=(np.arange(10.0),),
            select="aic",
            null={"mean_1": 0.0},
        )
    assert str(info.value).startswith("model[0]: null")
