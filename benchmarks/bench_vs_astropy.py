#!/usr/bin/env python
"""parfit vs astropy ``parallel_fit_dask`` (and xarray ``curvefit``) on one cube.

In ONE process, on the same synthetic Gaussian-line cube with known truth
(:func:`parfit.datasets.gaussian_cube`), this times:

1. ``astropy``      astropy ``parallel_fit_dask`` + ``TRFLSQFitter()`` (the peer)
2. ``parfit-trf``   ``parfit.parallel_fit`` with a parfit model and ``fitter="trf"``
                    (parfit's per-fit scipy path)
3. ``parfit-astropy`` ``parfit.parallel_fit`` with the astropy model and an astropy
                    ``TRFLSQFitter()`` (the drop-in path)
4. ``xarray``       ``xarray.DataArray.curvefit`` on a dask-backed array (threads
                    scheduler), same Gaussian function and p0 (second peer)

and reports wall time, fits/s, the ratio to astropy (fits/s of the tool
divided by fits/s of astropy, so > 1 means faster than astropy), the same in
CPU time, the fraction of pixels recovered within tolerance of the known
truth, and the largest difference of the parameter maps from astropy's.

Recovery criterion (one definition, applied to every tool): a pixel is
*recovered* when all three fitted parameters are finite and each lies within
``3 * sigma_CR`` of the truth, where ``sigma_CR`` is that parameter's
Cramer-Rao (noise-based) expected error, ``sqrt(diag(inv(J^T J)) * noise)``
with ``J`` the model Jacobian at the true parameters on the cube's channels.
An ideal unbiased fitter would recover about 99 % of pixels.

Start-up costs: every path is run once on a tiny cube (same scheduler)
before anything is timed, so imports, numba/cython first calls and the like
in the parent process are not timed.  dask's ``processes`` scheduler builds
a *new* process pool (spawn context) for every ``compute``, so process-pool
start-up and the worker-side imports are inside every timed run of paths
1-3 equally; the tiny-cube warm-up time of each path is printed as an
estimate of that fixed overhead.

Examples
--------
    python benchmarks/bench_vs_astropy.py                       # 100x100x53, processes
    python benchmarks/bench_vs_astropy.py --quick               # 20x20 smoke test
    python benchmarks/bench_vs_astropy.py --repeat 3 --json out.json
    python benchmarks/bench_vs_astropy.py --paths astropy parfit-trf
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402  (the folder is put on sys.path first)
    cpu_seconds,
    cramer_rao_sigma,
    loadavg,
    machine_info,
    recovered_fraction,
)

PATHS = ("astropy", "parfit-trf", "parfit-astropy", "xarray")
PARAMS = ("amplitude", "mean", "stddev")


# --- the cube and its truth -------------------------------------------------------


def make_cube(size, channels, seed, noise):
    from parfit.datasets import gaussian_cube

    return gaussian_cube((channels, size, size), noise=noise, seed=seed)


# --- the paths ----------------------------------------------------------------


def astropy_start():
    from astropy.modeling.models import Gaussian1D

    # Same start and bounds as parfit.datasets.gaussian_cube(...).model.
    return Gaussian1D(amplitude=2.0, mean=0.0, stddev=5.0, bounds={"stddev": (0.0, None)})


def run_astropy(cube, args):
    from astropy.modeling.fitting import TRFLSQFitter, parallel_fit_dask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = parallel_fit_dask(
            model=astropy_start(),
            fitter=TRFLSQFitter(),
            data=cube.data,
            world=cube.world,
            fitting_axes=0,
            chunk_n_max=args.chunk_n_max,
            scheduler=args.scheduler,
        )
    return {p: np.asarray(getattr(fitted, p).value, dtype=float) for p in PARAMS}


def run_parfit_trf(cube, args):
    import parfit

    kwargs = {}
    if args.match_astropy_tolerances:
        kwargs["fitter_kwargs"] = dict(xtol=1e-7, ftol=1e-8, gtol=1e-8, max_nfev=100)
    result = parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        fitting_axes=0,
        fitter="trf",
        chunk_n_max=args.chunk_n_max,
        scheduler=args.scheduler,
        **kwargs,
    )
    return {p: np.asarray(result.parameters[p], dtype=float) for p in PARAMS}


def run_parfit_astropy(cube, args):
    from astropy.modeling.fitting import TRFLSQFitter

    import parfit

    result = parfit.parallel_fit(
        astropy_start(),
        cube.data,
        world=cube.world,
        fitting_axes=0,
        fitter=TRFLSQFitter(),
        chunk_n_max=args.chunk_n_max,
        scheduler=args.scheduler,
    )
    return {p: np.asarray(result.parameters[p], dtype=float) for p in PARAMS}


def _gauss(v, amplitude, mean, stddev):
    return amplitude * np.exp(-0.5 * ((v - mean) / stddev) ** 2)


def _gauss_jac(v, amplitude, mean, stddev):
    dx = v - mean
    e = np.exp(-0.5 * (dx / stddev) ** 2)
    d_mean = amplitude * e * dx / stddev**2
    return np.stack([e, d_mean, d_mean * dx / stddev], axis=1)


def run_xarray(cube, args, rows=None):
    """xarray curvefit on rows ``[0:rows]`` of the cube (all rows if None)."""
    import xarray as xr

    from parfit.engine.plan import plan_chunks

    data = cube.data if rows is None else cube.data[:, :rows, :]
    ny, nx = data.shape[1:]
    cy, cx = plan_chunks((ny, nx), args.chunk_n_max)  # same blocks as parfit plans
    da_ = xr.DataArray(data, dims=("v", "y", "x"), coords={"v": cube.world[0]})
    da_ = da_.chunk({"v": -1, "y": cy, "x": cx})
    kwargs = {"jac": _gauss_jac} if args.xarray_analytic_jac else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = da_.curvefit(
            "v",
            _gauss,
            p0={"amplitude": 2.0, "mean": 0.0, "stddev": 5.0},
            bounds={"stddev": (0.0, np.inf)},
            errors="ignore",
            **kwargs,
        )
        coeffs = fit["curvefit_coefficients"].compute(scheduler=args.xarray_scheduler)
    out = {}
    for p in PARAMS:
        m = np.full(cube.data.shape[1:], np.nan)
        m[: data.shape[1]] = coeffs.sel(param=p).transpose("y", "x").values
        out[p] = m
    return out


RUNNERS = {
    "astropy": run_astropy,
    "parfit-trf": run_parfit_trf,
    "parfit-astropy": run_parfit_astropy,
    "xarray": run_xarray,
}


# --- reporting ----------------------------------------------------------------


def max_abs_diff(a, b, region=None):
    out = {}
    for p in PARAMS:
        x, y = a[p], b[p]
        if region is not None:
            x, y = x[region], y[region]
        both = np.isfinite(x) & np.isfinite(y)
        out[p] = float(np.max(np.abs(x[both] - y[both]))) if both.any() else float("nan")
    return out


def nan_mismatch(a, b, region=None):
    n = 0
    for p in PARAMS:
        x, y = a[p], b[p]
        if region is not None:
            x, y = x[region], y[region]
        n = max(n, int(np.sum(np.isfinite(x) != np.isfinite(y))))
    return n


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=100, help="cube is SIZE x SIZE pixels (100)")
    ap.add_argument("--channels", type=int, default=53, help="spectral channels (53)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the cube (0)")
    ap.add_argument("--noise", type=float, default=0.1, help="noise sigma in K (0.1)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per path; best is reported")
    ap.add_argument(
        "--scheduler", default="processes", help="dask scheduler for paths 1-3 (processes)"
    )
    ap.add_argument(
        "--xarray-scheduler", default="threads", help="dask scheduler for xarray curvefit (threads)"
    )
    ap.add_argument("--chunk-n-max", type=int, default=500, help="fits per dask task (500)")
    ap.add_argument(
        "--paths", nargs="+", choices=PATHS, default=list(PATHS), help="which paths to run (all)"
    )
    ap.add_argument(
        "--xarray-max-seconds",
        type=float,
        default=300.0,
        help="if curvefit is projected to take longer than this at full size, "
        "run it on a subset of rows that fits the budget (300)",
    )
    ap.add_argument(
        "--xarray-analytic-jac",
        action="store_true",
        help="give curve_fit the analytic Jacobian (default: finite differences, "
        "what curvefit users get)",
    )
    ap.add_argument(
        "--match-astropy-tolerances",
        action="store_true",
        help="run parfit-trf with astropy TRFLSQFitter's defaults (xtol=1e-7, "
        "max_nfev=100) instead of parfit's (all tolerances 1e-8, no nfev cap)",
    )
    ap.add_argument("--quick", action="store_true", help="20x20 cube, for a smoke test")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.size = min(args.size, 20)
    return args


def main(argv=None):
    args = parse_args(argv)
    info = machine_info()
    cube = make_cube(args.size, args.channels, args.seed, args.noise)
    n_fits = args.size * args.size
    sigma = cramer_rao_sigma(cube.model, cube.world, cube.truth, cube.noise)
    tiny = make_cube(4, args.channels, args.seed + 1, args.noise)

    print("parfit benchmark: parfit.parallel_fit vs astropy parallel_fit_dask (+ xarray curvefit)")
    for k, v in info.items():
        print(f"  {k:10s} {v}")
    print(
        f"  cube       {args.channels} channels x {args.size} x {args.size} "
        f"= {n_fits} fits, noise {args.noise}, seed {args.seed}"
    )
    print(
        f"  scheduler  {args.scheduler} (xarray: {args.xarray_scheduler}), "
        f"chunk_n_max {args.chunk_n_max}, repeat {args.repeat} (best reported)"
    )
    print(flush=True)

    # --- warm-up: every path once on a tiny cube, same scheduler -------------
    warm = {}
    for name in args.paths:
        t0 = time.perf_counter()
        RUNNERS[name](tiny, args)
        warm[name] = time.perf_counter() - t0
        print(f"  warm-up {name:15s} {warm[name]:7.2f} s on 16 fits", flush=True)

    # --- xarray: decide full size or a subset --------------------------------
    xr_rows = None
    if "xarray" in args.paths:
        probe_rows = max(1, min(args.size, 400 // max(args.size, 1)))
        t0 = time.perf_counter()
        run_xarray(cube, args, rows=probe_rows)
        t_probe = time.perf_counter() - t0
        projected = t_probe * args.size / probe_rows
        print(
            f"  xarray probe: {probe_rows} rows in {t_probe:.2f} s, projected full size "
            f"{projected:.1f} s",
            flush=True,
        )
        if projected > args.xarray_max_seconds:
            xr_rows = max(1, int(args.size * args.xarray_max_seconds / projected))
            print(
                f"  xarray will run on the first {xr_rows} of {args.size} rows "
                f"(budget {args.xarray_max_seconds:.0f} s)",
                flush=True,
            )
    print(flush=True)

    # --- timed runs (paths interleaved within each repeat) -------------------
    times = {name: [] for name in args.paths}
    cpu = {name: [] for name in args.paths}
    maps = {}
    load_before = loadavg()
    for r in range(args.repeat):
        for name in args.paths:
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            if name == "xarray":
                out = run_xarray(cube, args, rows=xr_rows)
            else:
                out = RUNNERS[name](cube, args)
            dt = time.perf_counter() - t0
            dc = cpu_seconds() - c0
            times[name].append(dt)
            cpu[name].append(dc)
            maps[name] = out
            print(
                f"  run {r + 1}/{args.repeat} {name:15s} {dt:8.2f} s wall {dc:8.2f} s cpu "
                f"(load {loadavg()})",
                flush=True,
            )
    load_after = loadavg()
    info["loadavg_before"], info["loadavg_after"] = load_before, load_after
    print(f"  load average before timed runs {load_before}, after {load_after}")
    print(flush=True)

    # --- results --------------------------------------------------------------
    results = {}
    astropy_rate = astropy_cpu_rate = None
    for name in args.paths:
        rows_used = xr_rows if name == "xarray" and xr_rows is not None else args.size
        region = (slice(0, rows_used), slice(None))
        n = rows_used * args.size
        best = min(times[name])
        rate = n / best
        if name == "astropy":
            astropy_rate = rate
            astropy_cpu_rate = n / min(cpu[name])
        results[name] = {
            "n_fits": n,
            "subset": name == "xarray" and xr_rows is not None,
            "wall_s_best": best,
            "wall_s_all": times[name],
            "wall_s_median": statistics.median(times[name]),
            "fits_per_s": rate,
            "cpu_s_best": min(cpu[name]),
            "cpu_s_all": cpu[name],
            "fits_per_cpu_s": n / min(cpu[name]),
            "warmup_s_16_fits": warm[name],
            "recovered_fraction": recovered_fraction(maps[name], cube.truth, sigma, region),
            "finite_fraction": float(np.mean(np.isfinite(maps[name]["mean"][region]))),
        }
        if "astropy" in maps and name != "astropy":
            results[name]["max_abs_diff_vs_astropy"] = max_abs_diff(
                maps[name], maps["astropy"], region
            )
            results[name]["nan_mismatch_vs_astropy"] = nan_mismatch(
                maps[name], maps["astropy"], region
            )
    for name in results:
        results[name]["ratio_vs_astropy"] = (
            results[name]["fits_per_s"] / astropy_rate if astropy_rate else None
        )
        results[name]["cpu_ratio_vs_astropy"] = (
            results[name]["fits_per_cpu_s"] / astropy_cpu_rate if astropy_cpu_rate else None
        )

    header = (
        f"{'path':16s} {'fits':>6s} {'wall s':>8s} {'fits/s':>9s} {'x astropy':>9s} "
        f"{'cpu s':>8s} {'fits/cpu-s':>10s} {'x astropy':>9s} "
        f"{'recovered':>9s} {'max|d| vs astropy (amp, mean, std)':>36s}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        ratio = f"{r['ratio_vs_astropy']:9.2f}" if r["ratio_vs_astropy"] else f"{'-':>9s}"
        d = r.get("max_abs_diff_vs_astropy")
        dtxt = "-" if d is None else ", ".join(f"{d[p]:.1e}" for p in PARAMS)
        star = "*" if r["subset"] else " "
        cratio = f"{r['cpu_ratio_vs_astropy']:9.2f}" if r["cpu_ratio_vs_astropy"] else f"{'-':>9s}"
        print(
            f"{name:16s} {r['n_fits']:6d}{star}{r['wall_s_best']:8.2f} {r['fits_per_s']:9.1f} "
            f"{ratio} {r['cpu_s_best']:8.2f} {r['fits_per_cpu_s']:10.1f} {cratio} "
            f"{100 * r['recovered_fraction']:8.2f}% {dtxt:>36s}"
        )
    print()
    print("x astropy = fits/s of the path / fits/s of astropy parallel_fit_dask (>1 is faster);")
    print("cpu s = CPU seconds of this process and its dask worker processes during the run;")
    print("fits/cpu-s and its 'x astropy' are the same comparison in CPU time, which is robust")
    print("to other programs sharing the cores (check the load average above).")
    print("recovered = all 3 parameters finite and within 3 x Cramer-Rao sigma of the truth.")
    if xr_rows is not None:
        print(
            f"* xarray ran on a subset: the first {xr_rows} of {args.size} rows "
            f"({xr_rows * args.size} fits); its fits/s is from that subset."
        )
    print(
        "Each timed run of paths 1-3 includes starting a fresh process pool (dask "
        "'processes' spawns one per compute); warm-up times above estimate that overhead."
    )

    if args.json:
        payload = {"machine": info, "args": vars(args), "results": results}
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
