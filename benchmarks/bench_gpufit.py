#!/usr/bin/env python
"""Gpufit's reference problem: 100,000 fits of a 2-D Gaussian spot on 5 x 5 pixels, S/N 10.

The problem of Gpufit's own speed test
(``examples/c++/gpu_vs_cpu_profiling/Gpufit_Cpufit_Performance_Comparison.cpp``
in https://github.com/gpufit/Gpufit), generated here with a seeded numpy
generator:

* model: Gpufit's ``GAUSS_2D``, ``A exp(-((x - x0)**2 + (y - y0)**2) / (2 w**2)) + b``,
  in parfit ``CircularGaussian2D() + Const2D()`` (5 parameters);
* samples: a 5 x 5 pixel grid, x and y = 0 ... 4;
* truth: amplitude 500, centre (2, 2), width 1, offset 10, each multiplied
  by U(0.9, 1.1) per fit;
* noise: Gaussian, sigma = the mean signal over the spot / 10 (Gpufit's
  ``add_gauss_noise`` with ``snr = 10``: ``2 pi A w**2 / (4.292 w)**2 / 10``
  = 17.05 for A = 500, w = 1);
* starts: each fit's truth multiplied by U(0.9, 1.1) per parameter
  (Gpufit's ``generate_initial_parameters``).

Timed (best of ``--repeat``, after a warm-up run on 1,000 fits that loads
the compiled kernel):

* ``parallel_fit``   ``parfit.parallel_fit(model, cube, world=(g, g),
  fitting_axes=(1, 2), scheduler=--scheduler)`` on a cube of shape
  ``(n_fits, 5, 5)``, the starts as per-fit parameter maps;
* ``fit_block``      ``BatchedFitter().fit_block`` on the whole block, in
  this thread (one core, the compiled engine);
* ``numpy engine``   ``BatchedFitter(engine="numpy").fit_block`` on the
  first ``--numpy-max-fits`` fits (one thread; numpy may use more cores
  for large arrays, the table says one).

For each it prints fits/s, fits/s per core (``parallel_fit``: divided by the
threads of the scheduler, ``os.cpu_count()``), the fraction of fits that
converged (``Status.OK``) and the median |fitted - true| of each parameter,
next to Cpufit's published single-thread speed on this problem.  ``/cpu-s``
is fits per CPU second of this process (all its threads): per core, and far
less sensitive than wall time to other programs competing for the cores.

Published Cpufit figures (Gpufit's CPU twin, one thread, float32, at most 10
iterations, stopping at a relative change of chi-square below 1e-4):
59,916 fits/s at 1e5 fits and 60,957 at 1e7 in
``examples/c++/gpu_vs_cpu_profiling/Gpufit_Cpufit_Performance_Comparison_readme.txt``,
97,087 fits/s at 1e5 and 96,322 at 1e7 in the performance-test screenshot of
Gpufit's documentation (``docs/installation.rst``, "Running the performance
test", ``docs/images/GPUFIT_CPUFIT_Performance_Comparison.png``).  parfit
fits in float64 to its default tolerances (``ftol = xtol = gtol = 1e-8``);
``--ftol 1e-4`` stops it earlier, nearer to Gpufit's rule.

Examples
--------
    python benchmarks/bench_gpufit.py --quick              # a few seconds
    python benchmarks/bench_gpufit.py                       # 100,000 fits, best of 3
    python benchmarks/bench_gpufit.py --repeat 5 --json out.json
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_seconds, loadavg, machine_info  # noqa: E402  (folder put on sys.path)

SIZE = 5
TRUTH = {"amplitude": 500.0, "centre": (SIZE - 1) / 2, "width": 1.0, "offset": 10.0}
SNR = 10.0
#: Cpufit's published single-thread speed on this problem, fits/s (see the docstring).
CPUFIT_PUBLISHED = (59_916, 97_087)
NAMES = ("amplitude_0", "x_mean_0", "y_mean_0", "stddev_0", "amplitude_1")


def noise_sigma():
    """Gpufit's noise for S/N 10: the mean signal over the spot's full width at tenth maximum."""
    a, w = TRUTH["amplitude"], TRUTH["width"]
    fit_area = (4.292 * w) ** 2
    return 2 * np.pi * a * w * w / fit_area / SNR


def problem(n_fits, seed):
    """``(truth, start, cube)``: ``(n_fits, 5)`` arrays (parfit's order), a ``(n_fits, 5, 5)`` cube.

    The cube's axis 1 is the model's x, axis 2 its y.
    """
    rng = np.random.default_rng(seed)
    t = TRUTH
    base = np.array([t["amplitude"], t["centre"], t["centre"], t["width"], t["offset"]])
    truth = base * rng.uniform(0.9, 1.1, (n_fits, 5))
    g = np.arange(SIZE, dtype=float)
    a, x0, y0, w, b = (truth[:, k, None, None] for k in range(5))
    ex = np.exp(-0.5 * ((g[None, :, None] - x0) / w) ** 2)
    ey = np.exp(-0.5 * ((g[None, None, :] - y0) / w) ** 2)
    cube = a * ex * ey + b + rng.normal(0.0, noise_sigma(), (n_fits, SIZE, SIZE))
    start = truth * rng.uniform(0.9, 1.1, (n_fits, 5))
    return truth, start, cube


def model_from(start):
    """``CircularGaussian2D() + Const2D()`` starting at ``start`` (per-fit maps, or one row)."""
    from parfit.models import CircularGaussian2D, Const2D

    a, x0, y0, w, b = (start[..., k] for k in range(5))
    return CircularGaussian2D(amplitude=a, x_mean=x0, y_mean=y0, stddev=w) + Const2D(amplitude=b)


def block_from(start, cube):
    """The fits as one :class:`parfit.fitters.FitBlock` (inputs shared by every fit)."""
    from parfit.fitters import BatchedFitter, FitBlock

    n = len(cube)
    g = np.arange(SIZE, dtype=float)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    y = cube.reshape(n, -1)
    bounds = BatchedFitter().parameter_arrays(model_from(start[0]))
    return FitBlock(
        x=(xx.ravel(), yy.ravel()),
        y=y,
        weights=None,
        valid=np.isfinite(y),
        p0=np.ascontiguousarray(start),
        lower=np.tile([entry[2] for entry in bounds], (n, 1)),
        upper=np.tile([entry[3] for entry in bounds], (n, 1)),
        sample_shape=(SIZE, SIZE),
    )


def fitter(args, engine="auto"):
    from parfit.fitters import BatchedFitter

    tol = {} if args.ftol is None else {"ftol": args.ftol, "xtol": args.ftol}
    return BatchedFitter(engine=engine, **tol)


def run_parallel_fit(start, cube, args):
    import parfit

    g = np.arange(SIZE, dtype=float)
    result = parfit.parallel_fit(
        model_from(start),
        cube,
        world=(g, g),
        fitting_axes=(1, 2),
        fitter=fitter(args),
        scheduler=args.scheduler,
        chunk_n_max=args.chunk_n_max,
    )
    params = np.stack([np.asarray(result.parameters[name]) for name in NAMES], axis=1)
    return params, np.asarray(result.status)


def run_block(start, cube, args, engine):
    result = fitter(args, engine).fit_block(model_from(start[0]), block_from(start, cube))
    return result.params, np.asarray(result.status)


def timed(run, repeat):
    """Best wall time of ``repeat`` runs, its CPU seconds, and the last output."""
    best, best_cpu, out = np.inf, 0.0, None
    for _ in range(repeat):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        out = run()
        wall = time.perf_counter() - t0
        if wall < best:
            best, best_cpu = wall, cpu_seconds() - cpu0
    return best, best_cpu, out


def summarise(name, n_fits, cores, wall, cpu, params, status, truth):
    from parfit import Status

    ok = status == Status.OK
    err = np.abs(params - truth[: len(params)])
    return {
        "path": name,
        "n_fits": n_fits,
        "cores": cores,
        "wall_s": wall,
        "cpu_s": cpu,
        "fits_per_s": n_fits / wall,
        "fits_per_s_per_core": n_fits / wall / cores,
        "fits_per_cpu_s": n_fits / cpu if cpu > 0 else float("nan"),
        "converged": float(ok.mean()),
        "median_abs_error": {
            name: float(np.median(err[ok, k])) if ok.any() else float("nan")
            for k, name in enumerate(NAMES)
        },
    }


def print_table(rows):
    head = (
        f"{'path':14s} {'fits':>7s} {'cores':>5s} {'wall s':>7s} {'fits/s':>9s} "
        f"{'/core':>8s} {'/cpu-s':>8s} {'conv.':>6s}  median |error|: "
        + " ".join(f"{label:>9s}" for label in ("amplitude", "x0", "y0", "width", "offset"))
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        e = r["median_abs_error"]
        print(
            f"{r['path']:14s} {r['n_fits']:7d} {r['cores']:5d} {r['wall_s']:7.2f} "
            f"{r['fits_per_s']:9.0f} {r['fits_per_s_per_core']:8.0f} {r['fits_per_cpu_s']:8.0f} "
            f"{r['converged']:6.3f}  "
            f"{'':16s}" + " ".join(f"{e[n]:9.4f}" for n in NAMES)
        )
    lo, hi = CPUFIT_PUBLISHED
    print(f"{'Cpufit (pub.)':14s} {'1e5':>7s} {1:5d} {'':7s} {lo:>9,d}-{hi:,d} fits/s (one thread)")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-fits", type=int, default=100_000, help="fits (100,000, as Gpufit's)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per path, best kept (3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generator (0)")
    ap.add_argument("--scheduler", default="threads", help="scheduler of parallel_fit (threads)")
    ap.add_argument(
        "--chunk-n-max", type=int, default=None, help="fits per block of parallel_fit (auto)"
    )
    ap.add_argument(
        "--numpy-max-fits",
        type=int,
        default=20_000,
        help="the numpy engine fits only the first this many fits (20,000)",
    )
    ap.add_argument(
        "--ftol",
        type=float,
        default=None,
        help="ftol and xtol of the solver (parfit's defaults, 1e-8; Gpufit stops at 1e-4)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="2,000 fits, one run per path (smoke test)"
    )
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_fits, args.repeat, args.numpy_max_fits = 2000, 1, 1000
    return args


def main(argv=None):
    args = parse_args(argv)
    info = machine_info()
    cores = os.cpu_count() or 1
    print("parfit on Gpufit's reference problem: 2-D Gaussian + offset, 5 x 5 pixels, S/N 10")
    for k, v in info.items():
        print(f"  {k:10s} {v}")
    print(
        f"  {args.n_fits} fits, seed {args.seed}, noise sigma {noise_sigma():.3f}, best of "
        f"{args.repeat}; parallel_fit scheduler {args.scheduler} ({cores} threads), "
        f"chunk_n_max {args.chunk_n_max or 'auto'}; solver ftol "
        f"{args.ftol if args.ftol is not None else 'default'}{' (quick)' if args.quick else ''}"
    )
    print(flush=True)
    truth, start, cube = problem(args.n_fits, args.seed)
    n_np = min(args.numpy_max_fits, args.n_fits)

    load_before = loadavg()
    t0 = time.perf_counter()
    warm = min(1000, args.n_fits)
    for path in ("parallel_fit", "fit_block", "numpy engine"):
        tw = time.perf_counter()
        if path == "parallel_fit":
            run_parallel_fit(start[:warm], cube[:warm], args)
        else:
            run_block(
                start[:warm], cube[:warm], args, "numpy" if path == "numpy engine" else "auto"
            )
        print(f"  warm-up {path:13s} {time.perf_counter() - tw:7.2f} s on {warm} fits", flush=True)

    runs = {
        "parallel_fit": (lambda: run_parallel_fit(start, cube, args), args.n_fits, cores),
        "fit_block": (lambda: run_block(start, cube, args, "auto"), args.n_fits, 1),
        "numpy engine": (
            lambda: run_block(start[:n_np], cube[:n_np], args, "numpy"),
            n_np,
            1,
        ),
    }
    rows = []
    for path, (run, n, used) in runs.items():
        wall, cpu, (params, status) = timed(run, args.repeat)
        rows.append(summarise(path, n, used, wall, cpu, params, status, truth))
    print()
    print_table(rows)
    info["loadavg_before"], info["loadavg_after"] = load_before, loadavg()
    info["total_s"] = time.perf_counter() - t0
    print(
        f"\nload average before {info['loadavg_before']}, after {info['loadavg_after']}; "
        f"total {info['total_s']:.1f} s"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "args": vars(args), "results": rows}, fh, indent=2)
        print(f"results written to {args.json}")
    return rows


if __name__ == "__main__":
    main()
