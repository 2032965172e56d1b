#!/usr/bin/env python
"""Throughput of parfit's default fitter vs astropy ``parallel_fit_dask`` and xarray ``curvefit``.

In ONE process, on the same synthetic cubes with known truth, this times:

1. ``parfit``        ``parfit.parallel_fit(model, data, world=..., fitter=None,
                     scheduler=--parfit-scheduler)`` (the default fitter, its
                     own blocks unless ``--parfit-chunk-n-max``), and
   ``parfit-guess``  the same with ``initial="guess"`` when ``parallel_fit``
                     has an ``initial`` keyword (skipped otherwise), and, with
                     ``--numpy-engine``, ``parfit-numpy``: the batched solver
                     forced onto its numpy engine (``BatchedFitter(engine="numpy")``);
2. ``astropy``       astropy ``parallel_fit_dask`` with ``TRFLSQFitter()``,
                     ``scheduler="processes"``, ``chunk_n_max=500`` (the peer);
3. ``xarray``        ``DataArray.curvefit`` on a dask-backed array, threads
                     scheduler, same model function, p0 and bounds;

and prints, per case, a table: tool, number of fits, wall s, fits/s, the
ratio to astropy and to xarray (fits/s of the tool / fits/s of the peer, so
> 1 is faster), CPU s, and the fraction of pixels recovered.

Cases (``--case``):

* ``single``  one Gaussian per pixel, 200 x 200 pixels x 53 channels
  (:func:`parfit.datasets.gaussian_cube`, noise 0.1 K: the cube of
  ``bench_vs_astropy.py``).  Issue 16's target: parfit >= 200x astropy and
  >= 50x xarray, recovering no fewer pixels than astropy.
* ``multi``   two Gaussians + a linear baseline (``--components``), 60 x 60
  pixels x 200 channels (:func:`parfit.datasets.multi_gaussian_cube`, 8
  parameters).  Issue 16's target: parfit >= 100x astropy.
* ``scaling`` parfit only (``--peers`` adds astropy and xarray): fits/s
  versus samples per fit (20 ... 2000, one Gaussian) and versus parameters
  per fit (3, 6, 9, 12: 1-4 Gaussians on 200 channels), and the peak memory
  of one direct ``fitter.fit_block`` call on a block of 500 fits (tracemalloc),
  as a multiple of the block's data size ``n_fits * n_samples * 8`` bytes.

Peers on a subset: astropy and xarray are far slower than parfit is meant to
be, so they fit only the first rows of the spatial grid, at most
``--peer-max-fits`` fits (default 4000 for ``single``, 1000 otherwise): the
same spectra, a smaller cube.  fits/s is computed on what each tool fitted;
the table says how many fits each tool did.

Recovery (``bench_vs_astropy.py``'s criterion, from ``_common.py``): a pixel
is recovered when every parameter is finite and within 3 Cramer-Rao sigma of
the truth (sigma from the model's Jacobian at the truth and the noise).  The
``recovered`` column compares every tool on the pixels all of them fitted;
``recovered (own)`` is over all the pixels that tool fitted.

Steady state: every tool is first run once on a 4 x 4 pixel cube of the
same case with the same scheduler, so imports and first calls are not timed;
dask's ``processes`` scheduler starts a new process pool in every compute, so
the astropy timings include that (the printed warm-up times estimate it).

Cold start (skip with ``--no-cold``): after the steady-state runs, each
tool fits the same cube once more in a fresh Python process that has loaded
the data with numpy: the table gives the import of the tool (and building
its model), the first call, and the overhead, import + first call - the
steady-state best, which a user pays once per process.

Examples
--------
    python benchmarks/bench_throughput.py --quick                 # every case, < 60 s
    python benchmarks/bench_throughput.py --case single --peer-max-fits 2000
    python benchmarks/bench_throughput.py --case all --repeat 3 --json out.json
    python benchmarks/bench_throughput.py --case scaling --peers
"""

import argparse
import dataclasses
import inspect
import json
import os
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402  (the folder is put on sys.path first)
    cpu_seconds,
    cramer_rao_sigma,
    loadavg,
    machine_info,
    recovered_mask,
)

CASES = ("single", "multi", "scaling")
PEERS = ("astropy", "xarray")
NOISE = 0.1  # K, as bench_vs_astropy.py (lines of 1-3 K)
SCALING_SAMPLES = (20, 50, 200, 500, 2000)
SCALING_COMPONENTS = (1, 2, 3, 4)  # Gaussians: 3, 6, 9, 12 parameters
SCALING_PARAM_CHANNELS = 200
BLOCK_FITS = 500  # fits in the block whose memory is measured
#: The targets of issue 16 (steady state, 2 cores), per case: fits/s ratio to each peer.
TARGETS = {"single": {"astropy": 200.0, "xarray": 50.0}, "multi": {"astropy": 100.0}}


# --- cubes ------------------------------------------------------------------------


def single_cube(shape, seed):
    from parfit.datasets import gaussian_cube

    return gaussian_cube(shape, noise=NOISE, seed=seed)


def multi_cube(shape, seed, n_components=3, baseline=True):
    from parfit.datasets import multi_gaussian_cube

    return multi_gaussian_cube(
        shape, n_components=n_components, baseline=baseline, noise=NOISE, seed=seed
    )


def first_rows(cube, rows):
    """The same cube restricted to its first ``rows`` rows (axis 1)."""
    return dataclasses.replace(
        cube,
        data=cube.data[:, :rows],
        truth={k: v[:rows] for k, v in cube.truth.items()},
    )


def peer_rows(cube, max_fits):
    """How many leading rows the peers fit: at most ``max_fits`` fits, at least one row."""
    ny, nx = cube.data.shape[1:]
    return max(1, min(ny, max_fits // nx))


# --- the same model for every tool --------------------------------------------------


def _leaves(model):
    from parfit.models import CompoundModel

    return model.leaves if isinstance(model, CompoundModel) else [model]


class SumFunction:
    """``f(x, *params)``: the sum of the model's leaves in plain numpy (for curvefit).

    Parameters come in the parfit model's ``param_names`` order.
    """

    FORMULAS = {
        "Gaussian1D": (3, lambda x, a, m, s: a * np.exp(-0.5 * ((x - m) / s) ** 2)),
        "Linear1D": (2, lambda x, slope, intercept: slope * x + intercept),
        "Const1D": (1, lambda x, a: np.full_like(x, a, dtype=float)),
    }

    def __init__(self, model=None, kinds=None):
        self.kinds = (
            list(kinds) if model is None else [type(leaf).__name__ for leaf in _leaves(model)]
        )
        unknown = [k for k in self.kinds if k not in self.FORMULAS]
        if unknown:
            raise ValueError(f"no numpy formula for {unknown} in the benchmark")

    def __call__(self, x, *params):
        out = np.zeros(np.shape(x))
        i = 0
        for kind in self.kinds:
            n, formula = self.FORMULAS[kind]
            out = out + formula(x, *params[i : i + n])
            i += n
        return out


def astropy_equivalent(model):
    """The astropy model (sum of the same leaves, same values and bounds)."""
    from astropy.modeling import models as am

    out = None
    for leaf in _leaves(model):
        names = leaf.param_names
        cls = getattr(am, type(leaf).__name__)
        part = cls(
            **{n: float(getattr(leaf, n).value) for n in names},
            bounds={n: tuple(getattr(leaf, n).bounds) for n in names},
        )
        out = part if out is None else out + part
    return out


def check_equivalent(cube):
    """Raise unless the three tools start from the same function and parameters."""
    model = cube.model
    x = np.asarray(cube.world[0], dtype=float)
    start = [float(getattr(model, n).value) for n in model.param_names]
    ref = model.evaluate(x, np.array([start]))[0]
    am = astropy_equivalent(model)
    if tuple(am.param_names) != tuple(model.param_names):
        raise RuntimeError(f"astropy names {am.param_names} != parfit {model.param_names}")
    for name, other in (("astropy", am(x)), ("numpy", SumFunction(model)(x, *start))):
        if not np.allclose(other, ref, rtol=1e-12, atol=1e-12):
            raise RuntimeError(f"the {name} model differs from the parfit model")


# --- the tools ------------------------------------------------------------------------


def parfit_has_initial():
    import parfit

    return "initial" in inspect.signature(parfit.parallel_fit).parameters


def default_fitter():
    """What ``fitter=None`` selects, as text (it changes as parfit develops)."""
    from parfit.fitters import get_fitter

    return get_fitter(None).describe()


def run_parfit(cube, args, initial=None, fitter=None):
    import parfit

    kwargs = {} if initial is None else {"initial": initial}
    result = parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        fitting_axes=0,
        fitter=fitter,
        chunk_n_max=args.parfit_chunk_n_max,
        scheduler=args.parfit_scheduler,
        **kwargs,
    )
    return {p: np.asarray(result.parameters[p], dtype=float) for p in cube.model.param_names}


def run_parfit_guess(cube, args):
    return run_parfit(cube, args, initial="guess")


def run_parfit_numpy(cube, args):
    from parfit.fitters import BatchedFitter

    return run_parfit(cube, args, fitter=BatchedFitter(engine="numpy"))


def run_astropy(cube, args):
    shape = cube.data.shape[1:]
    fitted = fit_astropy(astropy_equivalent(cube.model), cube.data, cube.world, args)
    return {
        p: np.broadcast_to(np.asarray(getattr(fitted, p).value, dtype=float), shape)
        for p in cube.model.param_names
    }


def fit_astropy(model, data, world, args):
    """astropy ``parallel_fit_dask`` of the astropy ``model`` (the peer's call)."""
    from astropy.modeling.fitting import TRFLSQFitter, parallel_fit_dask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parallel_fit_dask(
            model=model,
            fitter=TRFLSQFitter(),
            data=data,
            world=world,
            fitting_axes=0,
            chunk_n_max=args.chunk_n_max,
            scheduler=args.astropy_scheduler,
        )


def run_xarray(cube, args):
    model = cube.model
    names = list(model.param_names)
    p0 = {n: float(getattr(model, n).value) for n in names}
    bounds = {n: getattr(model, n).bounds for n in names}
    coeffs = fit_xarray(SumFunction(model), names, p0, bounds, cube.data, cube.world, args)
    return {p: coeffs.sel(param=p).transpose("y", "x").values.astype(float) for p in names}


def fit_xarray(func, names, p0, bounds, data, world, args):
    """xarray ``curvefit`` of ``func`` on a dask-backed DataArray (the peer's call)."""
    import xarray as xr

    ny, nx = data.shape[1:]
    cy, cx = _blocks((ny, nx), args.chunk_n_max)
    arr = xr.DataArray(data, dims=("v", "y", "x"), coords={"v": world[0]})
    arr = arr.chunk({"v": -1, "y": cy, "x": cx})
    box = {}
    for n in names:
        lower, upper = bounds[n]
        if lower is not None or upper is not None:
            box[n] = (-np.inf if lower is None else lower, np.inf if upper is None else upper)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = arr.curvefit("v", func, p0=p0, bounds=box, param_names=names, errors="ignore")
        return fit["curvefit_coefficients"].compute(scheduler=args.xarray_scheduler)


def _blocks(shape, chunk_n_max):
    """(rows, columns) of blocks of at most ``chunk_n_max`` fits, as parfit would plan them."""
    ny, nx = shape
    cx = min(nx, chunk_n_max)
    return max(1, min(ny, chunk_n_max // cx)), cx


RUNNERS = {
    "parfit": run_parfit,
    "parfit-guess": run_parfit_guess,
    "parfit-numpy": run_parfit_numpy,
    "astropy": run_astropy,
    "xarray": run_xarray,
}


def tools_for(case, args):
    tools = ["parfit"]
    if parfit_has_initial():
        tools.append("parfit-guess")
    if args.numpy_engine:
        tools.append("parfit-numpy")
    if case != "scaling" or args.peers:
        tools += [p for p in PEERS if p not in args.skip]
    return tools


# --- timing one cube ----------------------------------------------------------------


def warm_up(tools, tiny, args):
    """Run every tool once on ``tiny``; return the seconds each took."""
    out = {}
    for name in tools:
        t0 = time.perf_counter()
        RUNNERS[name](tiny, args)
        out[name] = time.perf_counter() - t0
        print(f"  warm-up {name:13s} {out[name]:7.2f} s on {tiny.data[0].size} fits", flush=True)
    return out


def time_cube(cube, tools, args, max_peer_fits, warm):
    """Time ``tools`` on ``cube`` (peers on its first rows); return the per-tool results."""
    ny, nx = cube.data.shape[1:]
    rows = {
        name: ny if name.startswith("parfit") else peer_rows(cube, max_peer_fits) for name in tools
    }
    cubes = {name: cube if rows[name] == ny else first_rows(cube, rows[name]) for name in tools}
    times = {name: [] for name in tools}
    cpu = {name: [] for name in tools}
    maps = {}
    for r in range(args.repeat):
        for name in tools:
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            maps[name] = RUNNERS[name](cubes[name], args)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            cpu[name].append(cpu_seconds() - c0)
            print(
                f"  run {r + 1}/{args.repeat} {name:13s} {rows[name] * nx:7d} fits "
                f"{dt:8.2f} s wall {cpu[name][-1]:8.2f} s cpu (load {loadavg()})",
                flush=True,
            )

    sigma = cramer_rao_sigma(cube.model, cube.world, cube.truth, cube.noise)
    common = min(rows.values())
    results = {}
    for name in tools:
        ok = recovered_mask(
            maps[name],
            {k: v[: rows[name]] for k, v in cube.truth.items()},
            {k: v[: rows[name]] for k, v in sigma.items()},
        )
        n = rows[name] * nx
        best = min(times[name])
        results[name] = {
            "n_fits": n,
            "rows": rows[name],
            "wall_s_best": best,
            "wall_s_all": times[name],
            "wall_s_median": statistics.median(times[name]),
            "fits_per_s": n / best,
            "cpu_s_best": min(cpu[name]),
            "cpu_s_all": cpu[name],
            "warmup_s": warm.get(name),
            "recovered_common": float(ok[:common].mean()),
            "recovered_common_n_fits": common * nx,
            "recovered_own": float(ok.mean()),
            "finite_fraction": float(
                np.mean(np.all([np.isfinite(m) for m in maps[name].values()], axis=0))
            ),
        }
    for r in results.values():
        for peer in PEERS:
            r[f"ratio_vs_{peer}"] = (
                r["fits_per_s"] / results[peer]["fits_per_s"] if peer in results else None
            )
    return results


# --- cold start: the first call in a fresh process ---------------------------------------


def model_spec(model):
    """The model's leaves as plain data (kind, start values, bounds), for a fresh process."""
    return [
        {
            "kind": type(leaf).__name__,
            "values": {n: float(getattr(leaf, n).value) for n in leaf.param_names},
            "bounds": {n: list(getattr(leaf, n).bounds) for n in leaf.param_names},
        }
        for leaf in _leaves(model)
    ]


def cold_starts(case, cube, tools, results, args):
    """Each tool's first call in a fresh process, on the cube it fitted in steady state.

    A subprocess loads the data with numpy (not timed), then times the
    import of the tool and the building of its model, and its first call.
    overhead = import + first call - the steady-state best (what a user pays
    once per process).
    """
    import subprocess
    import tempfile

    print(f"-- cold start ({case}): each tool's first call in a fresh process", flush=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tools:
            rows = results[name]["rows"]
            path = os.path.join(tmp, name)
            np.savez(path + ".npz", data=cube.data[:, :rows], world=cube.world[0])
            spec = {"tool": name, "model": model_spec(cube.model), "args": vars(args)}
            with open(path + ".json", "w") as fh:
                json.dump(spec, fh, default=_json_default)
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--cold-worker", path],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"  {name}: the cold-start process failed:\n{done.stderr[-2000:]}")
                continue
            got = json.loads(done.stdout.strip().splitlines()[-1])
            got["total_s"] = got["import_s"] + got["first_call_s"]
            got["overhead_s"] = got["total_s"] - results[name]["wall_s_best"]
            out[name] = got
    print(
        f"{'tool':13s} {'fits':>7s} {'import s':>9s} {'first call s':>13s} {'total s':>8s} "
        f"{'steady s':>9s} {'overhead s':>11s}"
    )
    for name, got in out.items():
        print(
            f"{name:13s} {results[name]['n_fits']:7d} {got['import_s']:9.2f} "
            f"{got['first_call_s']:13.2f} {got['total_s']:8.2f} "
            f"{results[name]['wall_s_best']:9.2f} {got['overhead_s']:11.2f}"
        )
    print(
        "import s = importing the tool and building its model; overhead = import + first "
        "call - steady-state best (paid once per process).",
        flush=True,
    )
    return out


def _cold_worker(path):
    """Body of the fresh process of :func:`cold_starts`; prints one line of JSON."""
    arrays = np.load(path + ".npz")
    data, world = arrays["data"], (arrays["world"],)
    with open(path + ".json") as fh:
        spec = json.load(fh)
    args = argparse.Namespace(**spec["args"])
    tool, leaves = spec["tool"], spec["model"]
    t0 = time.perf_counter()
    if tool.startswith("parfit"):
        import parfit
        from parfit import models as pm

        model = _sum_of(pm, leaves)
        t1 = time.perf_counter()
        fitter = None
        if tool == "parfit-numpy":
            from parfit.fitters import BatchedFitter

            fitter = BatchedFitter(engine="numpy")
        extra = {"initial": "guess"} if tool == "parfit-guess" else {}
        parfit.parallel_fit(
            model,
            data,
            world=world,
            fitting_axes=0,
            fitter=fitter,
            chunk_n_max=args.parfit_chunk_n_max,
            scheduler=args.parfit_scheduler,
            **extra,
        )
    elif tool == "astropy":
        from astropy.modeling import models as am

        model = _sum_of(am, leaves)
        t1 = time.perf_counter()
        fit_astropy(model, data, world, args)
    else:
        import dask.array  # noqa: F401  (what a curvefit user imports)
        import xarray  # noqa: F401

        names, p0, bounds = [], {}, {}
        for k, leaf in enumerate(leaves):
            for n, value in leaf["values"].items():
                full = n if len(leaves) == 1 else f"{n}_{k}"  # a compound model's names
                names.append(full)
                p0[full] = value
                bounds[full] = tuple(leaf["bounds"][n])
        func = SumFunction(kinds=[leaf["kind"] for leaf in leaves])
        t1 = time.perf_counter()
        fit_xarray(func, names, p0, bounds, data, world, args)
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1}))


def _sum_of(module, leaves):
    """The sum of ``leaves`` (see :func:`model_spec`) built from ``module``'s classes."""
    out = None
    for leaf in leaves:
        bounds = {n: tuple(b) for n, b in leaf["bounds"].items()}
        part = getattr(module, leaf["kind"])(**leaf["values"], bounds=bounds)
        out = part if out is None else out + part
    return out


# --- peak memory of one block ----------------------------------------------------------


def block_memory(cube, n_fits=BLOCK_FITS):
    """Peak memory of one direct ``fit_block`` call of the default fitter on ``n_fits`` fits.

    Returns None when ``parfit.fitters`` does not expose what is needed.
    """
    try:
        from parfit.fitters import get_fitter
        from parfit.fitters.base import FitBlock
    except ImportError:
        return None
    model = cube.model
    n_samples = cube.data.shape[0]
    y = np.ascontiguousarray(cube.data.reshape(n_samples, -1)[:, :n_fits].T, dtype=np.float64)
    n = y.shape[0]
    fitter = get_fitter(None)
    fitter.check(model, None)
    columns = list(zip(*[(v, lo, hi) for _, v, lo, hi in fitter.parameter_arrays(model)]))
    p0, lower, upper = (np.tile(np.asarray(c, dtype=np.float64), (n, 1)) for c in columns)
    block = FitBlock(
        x=(np.asarray(cube.world[0], dtype=np.float64),),
        y=y,
        weights=None,
        valid=np.isfinite(y),
        p0=p0,
        lower=lower,
        upper=upper,
        sample_shape=(n_samples,),
    )
    data_bytes = n * n_samples * 8
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        fitter.fit_block(model, block)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {
        "fitter": fitter.describe(),
        "n_fits": n,
        "n_samples": n_samples,
        "data_bytes": data_bytes,
        "peak_bytes": int(peak),
        "peak_over_data": peak / data_bytes,
        "traced_wall_s": dt,
    }


# --- reporting ---------------------------------------------------------------------------


def _fmt_ratio(value):
    return f"{value:10.2f}" if value else f"{'-':>10s}"


TABLE_HEADER = (
    f"{'tool':13s} {'fits':>7s} {'wall s':>8s} {'fits/s':>10s} {'x astropy':>10s} "
    f"{'x xarray':>10s} {'cpu s':>8s} {'recovered':>10s} {'rec. (own)':>10s}"
)


def print_table(results):
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for name, r in results.items():
        print(
            f"{name:13s} {r['n_fits']:7d} {r['wall_s_best']:8.2f} {r['fits_per_s']:10.1f} "
            f"{_fmt_ratio(r['ratio_vs_astropy'])} {_fmt_ratio(r['ratio_vs_xarray'])} "
            f"{r['cpu_s_best']:8.2f} {100 * r['recovered_common']:9.2f}% "
            f"{100 * r['recovered_own']:9.2f}%"
        )
    common = min(r["recovered_common_n_fits"] for r in results.values())
    print(
        "x astropy / x xarray = fits/s of the tool / fits/s of the peer (> 1 is faster); "
        "wall s = best of the runs."
    )
    print(
        f"recovered = every parameter finite and within 3 Cramer-Rao sigma of the truth, on "
        f"the {common} pixels every tool fitted; rec. (own) = on all the pixels of that tool."
    )


def check_targets(case, results):
    """The issue's targets for ``case``, per parfit variant."""
    out = {}
    for name, r in results.items():
        if not name.startswith("parfit"):
            continue
        checks = {}
        for peer, need in TARGETS.get(case, {}).items():
            if peer in results:
                checks[f"x_{peer}>={need:g}"] = bool(r[f"ratio_vs_{peer}"] >= need)
        if "astropy" in results:
            checks["recovered>=astropy"] = bool(
                r["recovered_common"] >= results["astropy"]["recovered_common"]
            )
        out[name] = checks
        text = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in checks.items())
        print(f"target ({name}): {text}")
    return out


# --- the cases ---------------------------------------------------------------------------


def case_single(args):
    size = args.size or (20 if args.quick else 200)
    channels = args.channels or 53
    cube = single_cube((channels, size, size), args.seed)
    return _case_peers("single", cube, args, default_peer_fits=400 if args.quick else 4000)


def case_multi(args):
    size = args.size or (10 if args.quick else 60)
    channels = args.channels or 200
    cube = multi_cube(
        (channels, size, size), args.seed, n_components=args.components, baseline=True
    )
    return _case_peers("multi", cube, args, default_peer_fits=50 if args.quick else 1000)


def _describe(cube):
    n_chan, ny, nx = cube.data.shape
    return (
        f"{n_chan} channels x {ny} x {nx} = {ny * nx} fits, {len(cube.model.param_names)} "
        f"parameters ({' + '.join(type(m).__name__ for m in _leaves(cube.model))}), "
        f"noise {cube.noise}, seed"
    )


def _case_peers(case, cube, args, default_peer_fits):
    tools = tools_for(case, args)
    max_peer = args.peer_max_fits or default_peer_fits
    check_equivalent(cube)
    print(
        f"== case {case}: {_describe(cube)} {args.seed}; peers fit at most {max_peer} "
        f"(the first {peer_rows(cube, max_peer)} rows)",
        flush=True,
    )
    tiny = _tiny(cube, args)
    warm = warm_up(tools, tiny, args)
    results = time_cube(cube, tools, args, max_peer, warm)
    print()
    print_table(results)
    out = {
        "cube_shape": list(cube.data.shape),
        "n_params": len(cube.model.param_names),
        "peer_max_fits": max_peer,
        "results": results,
    }
    if case in TARGETS:
        out["targets"] = check_targets(case, results)
    if args.cold:
        out["cold"] = cold_starts(case, cube, tools, results, args)
    print(flush=True)
    return out


def _tiny(cube, args):
    """A 4 x 4 pixel cube of the same model and channels, for the warm-up."""
    kinds = [type(m).__name__ for m in _leaves(cube.model)]
    return multi_cube(
        (cube.data.shape[0], 4, 4),
        args.seed + 1,
        n_components=kinds.count("Gaussian1D"),
        baseline="Linear1D" in kinds,
    )


def case_scaling(args):
    n_fits = args.scaling_fits or (200 if args.quick else 5000)
    nx = min(n_fits, 100)
    ny = max(1, n_fits // nx)
    tools = tools_for("scaling", args)
    max_peer = args.peer_max_fits or (50 if args.quick else 1000)
    points = []
    for n_samples in SCALING_SAMPLES:
        points.append(("samples", single_cube((n_samples, ny, nx), args.seed)))
    for k in SCALING_COMPONENTS:
        points.append(
            (
                "params",
                multi_cube(
                    (SCALING_PARAM_CHANNELS, ny, nx), args.seed, n_components=k, baseline=False
                ),
            )
        )
    print(
        f"== case scaling: {ny * nx} fits per point, one Gaussian on "
        f"{', '.join(map(str, SCALING_SAMPLES))} samples; 1-4 Gaussians on "
        f"{SCALING_PARAM_CHANNELS} samples; tools {', '.join(tools)}",
        flush=True,
    )
    rows = []
    for axis, cube in points:
        n_samples = cube.data.shape[0]
        n_params = len(cube.model.param_names)
        print(f"-- {axis}: {n_samples} samples, {n_params} parameters", flush=True)
        check_equivalent(cube)
        tiny = _tiny(cube, args)
        warm = warm_up(tools, tiny, args)
        results = time_cube(cube, tools, args, max_peer, warm)
        memory = block_memory(cube)
        rows.append(
            {
                "axis": axis,
                "n_samples": n_samples,
                "n_params": n_params,
                "results": results,
                "block_memory": memory,
            }
        )
    print()
    header = (
        f"{'axis':8s} {'samples':>7s} {'params':>6s} {'tool':13s} {'fits':>6s} "
        f"{'wall s':>8s} {'fits/s':>10s} {'x astropy':>10s} {'x xarray':>10s} "
        f"{'recovered':>10s} {'block MiB':>10s} {'x data':>7s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        mem = row["block_memory"]
        for name, r in row["results"].items():
            if name == "parfit" and mem is not None:
                mtxt = f"{mem['peak_bytes'] / 2**20:10.2f} {mem['peak_over_data']:7.1f}"
            else:
                mtxt = f"{'-':>10s} {'-':>7s}"
            print(
                f"{row['axis']:8s} {row['n_samples']:7d} {row['n_params']:6d} {name:13s} "
                f"{r['n_fits']:6d} {r['wall_s_best']:8.2f} {r['fits_per_s']:10.1f} "
                f"{_fmt_ratio(r['ratio_vs_astropy'])} {_fmt_ratio(r['ratio_vs_xarray'])} "
                f"{100 * r['recovered_common']:9.2f}% {mtxt}"
            )
    mem = next((row["block_memory"] for row in rows if row["block_memory"]), None)
    if mem is not None:
        print(
            f"block MiB = peak memory (tracemalloc) of one direct fit_block call of the "
            f"default fitter ({mem['fitter']}) on {mem['n_fits']} fits; x data = that / "
            f"(n_fits * n_samples * 8 bytes)."
        )
    print(flush=True)
    return {
        "n_fits_per_point": ny * nx,
        "peer_max_fits": max_peer if len(tools) > 1 else None,
        "points": rows,
    }


CASE_RUNNERS = {"single": case_single, "multi": case_multi, "scaling": case_scaling}


# --- main ----------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--case", choices=CASES + ("all",), default="all", help="which case to run (all)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="shrink every case (smoke test; all cases in < 60 s)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs per tool, interleaved; the best is reported (1)",
    )
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    ap.add_argument(
        "--peer-max-fits",
        type=int,
        default=None,
        help="astropy and xarray fit only the first rows, at most this many fits "
        "(default 4000 single, 1000 multi and scaling; --quick 400/50/50)",
    )
    ap.add_argument(
        "--peers", action="store_true", help="also time astropy and xarray in the scaling case"
    )
    ap.add_argument("--skip", nargs="+", choices=PEERS, default=[], help="leave these peers out")
    ap.add_argument(
        "--numpy-engine",
        action="store_true",
        help="also time parfit's batched solver on its numpy engine "
        "(BatchedFitter(engine='numpy'), the path for models the compiled "
        "kernel does not cover)",
    )
    ap.add_argument(
        "--parfit-scheduler", default="threads", help="dask scheduler for parfit (threads)"
    )
    ap.add_argument(
        "--astropy-scheduler",
        default="processes",
        help="dask scheduler for astropy parallel_fit_dask (processes)",
    )
    ap.add_argument(
        "--xarray-scheduler", default="threads", help="dask scheduler for xarray curvefit (threads)"
    )
    ap.add_argument(
        "--chunk-n-max",
        type=int,
        default=500,
        help="fits per dask task of astropy and xarray (500, astropy's documented example)",
    )
    ap.add_argument(
        "--parfit-chunk-n-max",
        type=int,
        default=None,
        help="parfit's chunk_n_max (default: none, parfit plans its own blocks, as users run "
        "it; 500 gives it the peers' blocks, ~30 %% slower on 2 cores: ~2.5 ms per block)",
    )
    ap.add_argument(
        "--size",
        type=int,
        default=None,
        help="pixels per side of the single/multi cube (100 / 200; --quick 20 / 10)",
    )
    ap.add_argument(
        "--channels", type=int, default=None, help="channels of the single/multi cube (53 / 256)"
    )
    ap.add_argument(
        "--scaling-fits", type=int, default=None, help="fits per scaling point (5000; --quick 200)"
    )
    ap.add_argument(
        "--components", type=int, default=2, help="Gaussians of the multi cube, on a line (2)"
    )
    ap.add_argument(
        "--no-cold",
        dest="cold",
        action="store_false",
        help="skip the cold starts (each tool's first call in a fresh process)",
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed of the cubes (0)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    cases = CASES if args.case == "all" else (args.case,)
    info = machine_info()
    info["parfit_default_fitter"] = default_fitter()
    print(
        "parfit throughput benchmark: parfit.parallel_fit (fitter=None) vs astropy "
        "parallel_fit_dask vs xarray curvefit"
    )
    for k, v in info.items():
        print(f"  {k:10s} {v}" if k != "parfit_default_fitter" else f"  parfit fitter=None: {v}")
    print(
        f"  schedulers parfit {args.parfit_scheduler}, astropy {args.astropy_scheduler}, "
        f"xarray {args.xarray_scheduler}; chunk_n_max {args.chunk_n_max} (parfit "
        f"{args.parfit_chunk_n_max or 'its own plan'}); repeat "
        f"{args.repeat} (best reported); parfit initial= keyword: "
        f"{'yes' if parfit_has_initial() else 'no (parfit-guess skipped)'}"
    )
    print(f"  cases {', '.join(cases)}{' (quick)' if args.quick else ''}")
    print(flush=True)

    load_before = loadavg()
    t0 = time.perf_counter()
    out = {}
    for case in cases:
        out[case] = CASE_RUNNERS[case](args)
    info["loadavg_before"], info["loadavg_after"] = load_before, loadavg()
    info["total_s"] = time.perf_counter() - t0
    print(
        f"load average before {info['loadavg_before']}, after {info['loadavg_after']}; "
        f"total {info['total_s']:.1f} s"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"machine": info, "args": vars(args), "cases": out},
                fh,
                indent=2,
                default=_json_default,
            )
        print(f"results written to {args.json}")
    return out


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cold-worker":
        _cold_worker(sys.argv[2])
    else:
        main()
