"""Neighbour refits (``refit="neighbours"``): rescue, determinism, stores, resume, refusals."""

import json

import numpy as np
import pytest
import zarr

import parfit
from parfit.datasets import velocity_field_cube
from parfit.engine.refit import RefitOptions, merge, neighbour_starts, refit_candidates
from parfit.errors import InputError, InputTypeError
from parfit.status import Flag, Status
from parfit.store import writer


def line(v, amplitude=1.5, mean=0.0, stddev=2.5):
    """A Gaussian line as a plain function: a model without a guess (no retry from one)."""
    return amplitude * np.exp(-0.5 * ((v - mean) / stddev) ** 2)


@pytest.fixture(scope="module")
def disk():
    return velocity_field_cube((90, 24, 24), seed=3)


def recovered(result, cube):
    close = np.abs(np.asarray(result.parameters["mean"]) - cube.truth["mean"]) < 1.0
    return float((np.asarray(result.success) & close).mean())


def fields(result):
    names = list(result.param_names)
    out = {n: np.asarray(result.parameters[n]) for n in names}
    out.update({f"{n}_error": np.asarray(result.errors[n]) for n in names})
    out.update(
        statistic=np.asarray(result.statistic),
        status=np.asarray(result.status),
        flags=np.asarray(result.flags),
        nfev=np.asarray(result.nfev),
        refits=np.asarray(result.refits),
        origin=np.asarray(result.origin),
    )
    return out


def assert_identical(a, b):
    fa, fb = fields(a), fields(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        assert np.array_equal(fa[name], fb[name], equal_nan=True), name


@pytest.fixture(scope="module")
def first_pass(disk):
    return parfit.parallel_fit(line, disk.data, world=disk.world, scheduler="synchronous")


@pytest.fixture(scope="module")
def refitted(disk):
    return parfit.parallel_fit(
        line, disk.data, world=disk.world, scheduler="synchronous", refit="neighbours"
    )


def test_refit_rescues_a_velocity_field_that_a_common_start_misses(disk, first_pass, refitted):
    assert recovered(first_pass, disk) < 0.9
    assert recovered(refitted, disk) >= 0.99
    # The kept fit is never worse than the first pass's, and every rescued
    # pixel's solution came from a refit pass.
    before = np.asarray(first_pass.statistic)
    after = np.asarray(refitted.statistic)
    both = np.asarray(first_pass.success)
    assert np.all(after[both] <= before[both] * (1 + 1e-12))
    assert np.asarray(refitted.success).all()
    rescued = ~np.asarray(first_pass.success)
    assert np.all(np.asarray(refitted.origin)[rescued] > 0)


def test_refits_and_origin_maps_and_report(first_pass, refitted):
    refits = np.asarray(refitted.refits)
    origin = np.asarray(refitted.origin)
    passes = refitted.run.refit
    assert refits.dtype == np.int16 and origin.dtype == np.int16
    assert [p["pass"] for p in passes] == list(range(1, len(passes) + 1))
    assert sum(p["refitted"] for p in passes) == int(refits.sum())
    assert sum(p["improved"] for p in passes) >= int((origin > 0).sum())
    assert len(passes) <= 20
    # A fit holds a refit's solution only if it was refitted at least that often.
    assert np.all(refits[origin > 0] >= 1)
    assert np.all(origin <= len(passes))
    untouched = refits == 0
    for name in ("mean", "amplitude", "stddev"):
        a = np.asarray(refitted.parameters[name])[untouched]
        b = np.asarray(first_pass.parameters[name])[untouched]
        assert np.array_equal(a, b, equal_nan=True)
    text = refitted.summary()
    assert f"neighbour refits: {len(passes)} passes" in text
    assert "  pass  1:" in text
    ds = refitted.to_xarray()
    assert ds["refits"].dtype == np.int16 and "refitted" in ds["refits"].attrs["long_name"]


def test_refit_maps_identical_for_any_chunking_and_scheduler(disk, refitted):
    for kwargs in (
        dict(chunk_n_max=37, scheduler="synchronous"),
        dict(chunk_n_max=200, scheduler="threads"),
    ):
        other = parfit.parallel_fit(line, disk.data, world=disk.world, refit="neighbours", **kwargs)
        assert_identical(refitted, other)


def test_refit_with_the_batched_solver_and_trf_scipy(disk):
    small = velocity_field_cube((90, 12, 12), seed=4)
    single = parfit.parallel_fit(
        small.model, small.data, world=small.world, fitter="trf", scheduler="synchronous"
    )
    again = parfit.parallel_fit(
        small.model,
        small.data,
        world=small.world,
        fitter="trf",
        scheduler="synchronous",
        refit="neighbours",
    )
    assert recovered(single, small) < 0.9
    assert recovered(again, small) >= 0.99


def test_refit_streamed_equals_memory_and_resume_continues(disk, refitted, tmp_path):
    store = tmp_path / "maps.zarr"
    streamed = parfit.parallel_fit(
        line,
        disk.data,
        world=disk.world,
        scheduler="synchronous",
        refit="neighbours",
        output=store,
        chunk_n_max=100,
    )
    assert streamed.is_lazy
    assert_identical(refitted, streamed)
    assert streamed.run.refit == refitted.run.refit
    back = parfit.read_result(store)
    assert_identical(refitted, back)
    assert back.run.refit == refitted.run.refit
    state = writer.refit_state(store)
    assert state["finished"] and state["journal"] == len(state["passes"])

    # An interruption after pass 2 was journaled but before it reached the
    # maps: undo the maps to pass 1's and forget pass 2 onwards; the resume
    # applies pass 2 again from its journal, then runs the passes after it.
    group = zarr.open_group(str(store), mode="r+")
    attrs = dict(group.attrs["parfit"])
    journal = group["_parfit_refit"]
    first = {}
    for name in list(fields(refitted)) + ["n_warnings"]:
        first[name] = np.asarray(group[name][...])
    # Rebuild the maps as after pass 1: apply the journals of passes 1 and 2 in
    # reverse is not possible; instead rerun a store capped at 1 pass, then
    # splice in the journal of pass 2 from the full run.
    capped = tmp_path / "capped.zarr"
    parfit.parallel_fit(
        line,
        disk.data,
        world=disk.world,
        scheduler="synchronous",
        refit="neighbours",
        refit_options={"max_passes": 1},
        output=capped,
        chunk_n_max=100,
    )
    capped_group = zarr.open_group(str(capped), mode="r+")
    for name in first:
        group[name][...] = capped_group[name][...]
    for key in list(journal.group_keys()):
        if key not in ("pass_1", "pass_2"):
            del journal[key]
    attrs["refit"] = {"passes": attrs["refit"]["passes"][:1], "journal": 2, "finished": False}
    group.attrs["parfit"] = attrs
    resumed = parfit.parallel_fit(
        line,
        disk.data,
        world=disk.world,
        scheduler="synchronous",
        refit="neighbours",
        output=store,
        resume=True,
        chunk_n_max=100,
    )
    assert_identical(refitted, resumed)
    # Pass 2's report came back from its journal.
    assert resumed.run.refit == refitted.run.refit


def test_resume_with_other_refit_options_is_refused(disk, tmp_path):
    store = tmp_path / "maps.zarr"
    small = disk.data[:, :6, :6]
    parfit.parallel_fit(
        line, small, world=disk.world, scheduler="synchronous", refit="neighbours", output=store
    )
    with pytest.raises(Exception, match="options"):
        parfit.parallel_fit(
            line,
            small,
            world=disk.world,
            scheduler="synchronous",
            refit="neighbours",
            refit_options={"max_passes": 2},
            output=store,
            resume=True,
        )


def test_refit_with_cash_refits_failures_only():
    rng = np.random.default_rng(0)
    x = np.arange(40.0)
    mu = 2.0 + 6.0 * np.exp(-0.5 * ((x[:, None, None] - 20) / 2.0) ** 2) * np.ones((1, 5, 5))
    counts = rng.poisson(mu).astype(float)
    from parfit.models import Const1D, Gaussian1D

    model = Gaussian1D(5.0, 20.0, 2.0) + Const1D(2.0)
    result = parfit.parallel_fit(
        model, counts, world=(x,), statistic="cash", scheduler="synchronous", refit="neighbours"
    )
    assert np.asarray(result.success).all()
    assert result.run.refit == [] or all(p["refitted"] >= 0 for p in result.run.refit)


# --- the pieces ---------------------------------------------------------------------


def _maps(status, stat, mean, flags=None):
    status = np.asarray(status, dtype=np.int8)
    return {
        "status": status,
        "statistic": np.asarray(stat, dtype=float),
        "flags": np.zeros(status.shape, np.uint8) if flags is None else np.asarray(flags, np.uint8),
        "mean": np.asarray(mean, dtype=float),
        "nfev": np.ones(status.shape, np.int32),
        "refits": np.zeros(status.shape, np.int16),
        "origin": np.zeros(status.shape, np.int16),
    }


def test_candidates_and_starts_from_the_good_side():
    ok, bad = Status.OK, Status.DEGENERATE
    status = [[ok, ok, ok], [ok, bad, ok], [ok, ok, ok]]
    stat = [[1.0, 1.0, 9.0], [1.1, np.nan, 9.0], [1.2, 1.0, 9.0]]
    mean = [[1.0, 2.0, 50.0], [3.0, np.nan, 50.0], [4.0, 5.0, 50.0]]
    maps = _maps(status, stat, mean)
    options = RefitOptions()
    todo = refit_candidates(maps, options, goodness=True)
    # The failure, and the right column (9 > 1.5 x the best neighbour's 1.0)
    # where a good neighbour exists; the corner (2, 2) and (0, 2) see (1, 1)
    # (failed) and the middle column.
    assert todo.tolist() == [[False, False, True], [False, True, True], [False, False, True]]
    starts = neighbour_starts(maps, ["mean"], todo, [-np.inf], [np.inf], options, goodness=True)
    # (1, 1): the good neighbours are the left and middle columns (statistic
    # <= 1.5), not the right one (9).
    assert starts["mean"][1, 1] == np.median([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.isnan(starts["mean"][0, 0])
    # Without the goodness test (Cash), outliers are not refitted, and every
    # successful neighbour gives the start.
    todo_cash = refit_candidates(maps, options, goodness=False)
    assert todo_cash.tolist() == [[False] * 3, [False, True, False], [False] * 3]
    starts = neighbour_starts(maps, ["mean"], todo_cash, [0.0], [9.0], options, goodness=False)
    assert starts["mean"][1, 1] == 4.5  # the median of all eight
    starts = neighbour_starts(maps, ["mean"], todo_cash, [0.0], [4.0], options, goodness=False)
    assert starts["mean"][1, 1] == 4.0  # clipped into the bounds


def test_at_bound_fits_are_refitted_and_changed_limits_the_next_pass():
    ok = Status.OK
    status = np.full((1, 5), ok)
    maps = _maps(status, np.ones((1, 5)), np.arange(5.0)[None], flags=[[0, 0, 0, 0, Flag.AT_BOUND]])
    todo = refit_candidates(maps, RefitOptions(), goodness=True)
    assert todo.tolist() == [[False, False, False, False, True]]
    changed = np.zeros((1, 5), bool)
    changed[0, 0] = True
    assert not refit_candidates(maps, RefitOptions(), goodness=True, changed=changed).any()


def test_merge_keeps_the_better_fit():
    ok, bad = Status.OK, Status.NOT_CONVERGED
    old = _maps([[ok, ok, bad, ok]], [[5.0, 5.0, np.nan, 5.0]], [[1.0, 1.0, np.nan, 1.0]])
    new = _maps([[ok, ok, ok, bad]], [[4.0, 5.0 - 1e-9, 7.0, np.nan]], [[2.0, 2.0, 2.0, np.nan]])
    new["nfev"][:] = 10
    todo = np.array([[True, True, True, True]])
    replaced, counts = merge(old, new, todo, 3)
    assert replaced.tolist() == [[True, False, True, False]]
    assert counts == {"refitted": 4, "improved": 2, "rescued": 1}
    assert old["mean"].tolist()[0][:2] == [2.0, 1.0]
    assert old["origin"].tolist() == [[3, 0, 3, 0]]
    assert old["refits"].tolist() == [[1, 1, 1, 1]]
    assert old["nfev"].tolist() == [[11, 11, 11, 11]]
    assert old["status"].tolist() == [[ok, ok, ok, ok]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(refit="nearest"), InputError, "refit must be None or 'neighbours'; got 'nearest'"),
        (dict(refit=True), InputError, "refit must be None or 'neighbours'; got True"),
        (
            dict(refit_options={"max_passes": 2}),
            InputError,
            "refit_options needs refit='neighbours'",
        ),
        (
            dict(refit="neighbours", refit_options=[3]),
            InputTypeError,
            "refit_options must be a dict with keys 'max_passes' and 'outlier'; got list",
        ),
        (
            dict(refit="neighbours", refit_options={"passes": 3}),
            InputError,
            "refit_options: unknown key(s) 'passes'; expected 'max_passes' and 'outlier'",
        ),
        (
            dict(refit="neighbours", refit_options={"max_passes": 0}),
            InputError,
            "refit_options['max_passes'] must be a positive integer; got 0",
        ),
        (
            dict(refit="neighbours", refit_options={"outlier": 0.5}),
            InputError,
            "refit_options['outlier'] must be a number above 1 (a ratio of statistics) or None; "
            "got 0.5",
        ),
    ],
)
def test_bad_refit_arguments_are_refused_before_any_fit(kwargs, error, message):
    with pytest.raises(error) as info:
        parfit.parallel_fit(line, np.ones((10, 2, 2)), world=(np.arange(10.0),), **kwargs)
    assert str(info.value) == message


def test_refit_options_round_trip_in_the_store_options(disk, tmp_path):
    store = tmp_path / "maps.zarr"
    parfit.parallel_fit(
        line,
        disk.data[:, :4, :4],
        world=disk.world,
        scheduler="synchronous",
        refit="neighbours",
        refit_options={"outlier": None},
        output=store,
    )
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]["parfit"]
    assert attrs["options"]["refit"] == {"method": "neighbours", "max_passes": 20, "outlier": None}


def test_refit_refuses_output_cubes_and_keeps_fit_info(disk, tmp_path):
    with pytest.raises(InputError) as info:
        parfit.parallel_fit(
            line,
            disk.data,
            world=disk.world,
            refit="neighbours",
            output=tmp_path / "m.zarr",
            output_cubes=["model"],
        )
    assert str(info.value) == (
        "output_cubes cannot be combined with refit='neighbours': the cubes are written block "
        "by block in the first pass, before refits replace fits; leave out one of them "
        "(result.model evaluated on the world coordinates gives the model cube)"
    )
    assert not (tmp_path / "m.zarr").exists()
    small = velocity_field_cube((90, 8, 8), seed=4)
    result = parfit.parallel_fit(
        small.model,
        small.data,
        world=small.world,
        fitter="trf",
        scheduler="synchronous",
        refit="neighbours",
        fit_info=True,
    )
    replaced = np.asarray(result.origin) > 0
    assert replaced.any()
    # The fit_info of a replaced fit is that of the refit it holds.
    for j, i in np.argwhere(replaced):
        cost = result.fit_info[j, i]["cost"]
        assert cost == pytest.approx(0.5 * float(result.statistic[j, i]), rel=1e-9)


@pytest.mark.slow
def test_refit_on_a_distributed_cluster_is_identical(tmp_path):
    distributed = pytest.importorskip("distributed")
    small = velocity_field_cube((90, 10, 10), seed=4)
    kwargs = dict(world=small.world, fitter="trf", refit="neighbours")
    reference = parfit.parallel_fit(small.model, small.data, scheduler="synchronous", **kwargs)
    assert reference.run.refit
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_cluster = parfit.parallel_fit(
            small.model, small.data, scheduler=client, chunk_n_max=7, **kwargs
        )
        streamed = parfit.parallel_fit(
            small.model,
            small.data,
            scheduler=client,
            chunk_n_max=30,
            output=tmp_path / "m.zarr",
            **kwargs,
        )
    processes = parfit.parallel_fit(
        small.model, small.data, scheduler="processes", chunk_n_max=13, **kwargs
    )
    for other in (on_cluster, streamed, processes):
        assert_identical(reference, other)


def test_refitted_fits_are_no_worse_than_scipy_from_a_neighbour_start(disk, refitted):
    """Oracle: per-pixel scipy least_squares from the median of the final neighbours."""
    from scipy.optimize import least_squares

    x = disk.world[0]
    origin = np.asarray(refitted.origin)
    params = np.stack(
        [np.asarray(refitted.parameters[n]) for n in ("amplitude", "mean", "stddev")], axis=-1
    )
    rng = np.random.default_rng(0)
    pixels = np.argwhere(origin > 0)
    pixels = pixels[rng.choice(len(pixels), min(40, len(pixels)), replace=False)]
    worse = 0
    for j, i in pixels:
        near = [
            params[j + dj, i + di]
            for dj in (-1, 0, 1)
            for di in (-1, 0, 1)
            if (dj or di) and 0 <= j + dj < params.shape[0] and 0 <= i + di < params.shape[1]
        ]
        start = np.nanmedian(near, axis=0)
        y = disk.data[:, j, i]
        fit = least_squares(lambda p, y=y: line(x, *p) - y, start, method="trf")
        worse += float(refitted.statistic[j, i]) > float(np.sum(fit.fun**2)) * (1 + 1e-6) + 1e-12
    assert worse == 0


def test_refit_on_a_real_cube_rescues_failures_and_never_loses_a_fit():
    """The MUSE [NII] crop (tests/data): refits rescue failed fits; no fit gets worse."""
    from _real_cubes import load_real_cube

    from parfit.models import Const1D, Gaussian1D

    cube = load_real_cube("muse_a478_nii")
    start = cube["start"]
    line = Gaussian1D(start["amplitude"], start["mean"], start["stddev"])
    line.stddev.bounds = (0.0, None)
    model = line + Const1D(cube["baseline"])
    kwargs = dict(world=(cube["x"],), initial="guess", scheduler="threads")
    first = parfit.parallel_fit(model, cube["data"], **kwargs)
    again = parfit.parallel_fit(model, cube["data"], refit="neighbours", **kwargs)
    ok_before = np.asarray(first.success)
    ok_after = np.asarray(again.success)
    assert np.all(ok_after[ok_before])
    assert ok_after.sum() > ok_before.sum()
    before = np.asarray(first.statistic)[ok_before]
    after = np.asarray(again.statistic)[ok_before]
    assert np.all(after <= before * (1 + 1e-12))
    assert sum(p["rescued"] for p in again.run.refit) == ok_after.sum() - ok_before.sum()
