"""Joint fits of two cubes against fitting each cube alone, and against per-fit scipy.

On ``parfit.datasets.joint_line_cubes((size, size))`` (two line cubes of the
same pixels: ``co10``, 60 channels, spectral axis first; ``co21``, 45
channels on another grid, spectral axis last, with a baseline; centre and
width shared per pixel), it times

* ``joint``: ``parallel_fit`` with the mappings of both cubes, the centre and
  width of ``co21`` tied to those of ``co10`` (5 free parameters per pixel);
* ``singles``: ``parallel_fit`` of ``co10`` alone, then of ``co21`` alone (3 + 4
  free parameters per pixel): what fitting the cubes one by one costs;
* ``scipy``: ``scipy.optimize.least_squares`` (TRF) on the stacked residuals of
  both cubes, pixel by pixel, on the first ``--scipy-pixels`` pixels, from the
  same guesses parfit starts from (the hand-written loop a joint fit replaces).

Every path starts from ``initial="guess"`` and uses the threads scheduler.
The first round of each path is its cold start (the first call in this
process: imports, the compiled kernel loaded from its cache); then
``--repeat`` rounds, the paths taking turns, give the steady state.
Printed as JSON: fits/s of each path (cold, best and median of the steady
rounds), the ratio of the joint fit's median time to the singles' (the
target is at most 1: a joint fit costs no more than its cubes fitted one by
one), to scipy's, and how well the joint fit recovers the truth (standard
deviation of the pulls of every free parameter) against the singles::

    python benchmarks/bench_joint.py
    python benchmarks/bench_joint.py --size 60 --repeat 3
"""

import argparse
import json
import statistics
import time

import numpy as np
from _common import machine_info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=150, help="pixels along each map axis")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scipy-pixels", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import parfit
    from parfit.datasets import joint_line_cubes
    from parfit.models import Const1D, Gaussian1D

    import_s = time.perf_counter() - t0
    cubes = joint_line_cubes((args.size, args.size), seed=args.seed)
    n_fits = args.size**2
    weights = {name: 1.0 / sigma for name, sigma in cubes.noise.items()}

    def joint():
        return parfit.parallel_fit(
            cubes.models,
            cubes.data,
            initial="guess",
            scheduler="threads",
            **cubes.fit_arguments(),
        )

    def singles():
        co10 = parfit.parallel_fit(
            Gaussian1D(1.0, 0.0, 1.0, bounds={"stddev": (0.0, None)}),
            cubes.data["co10"],
            world=cubes.world["co10"],
            weights=weights["co10"],
            initial="guess",
            scheduler="threads",
        )
        co21 = parfit.parallel_fit(
            Gaussian1D(1.0, 0.0, 1.0) + Const1D(0.0),
            cubes.data["co21"],
            world=cubes.world["co21"],
            fitting_axes=2,
            weights=weights["co21"],
            initial="guess",
            scheduler="threads",
        )
        return co10, co21

    scipy_starts = _scipy_starts(cubes, args.scipy_pixels)

    def scipy_loop():
        return _scipy_fit(cubes, weights, scipy_starts)

    paths = {"joint": joint, "singles": singles, "scipy": scipy_loop}
    sizes = {"joint": n_fits, "singles": n_fits, "scipy": len(scipy_starts)}
    times = {name: [] for name in paths}
    outputs = {}
    for _ in range(args.repeat + 1):  # the first round is the cold start
        for name, run in paths.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)

    def rate(name, seconds):
        return round(sizes[name] / seconds)

    steady = {name: t[1:] for name, t in times.items()}
    per_fit = {name: statistics.median(t) / sizes[name] for name, t in steady.items()}
    result = outputs["joint"]
    co10, co21 = outputs["singles"]
    single_maps = {
        "co10.amplitude": (co10.parameters["amplitude"], co10.errors["amplitude"]),
        "co10.mean": (co10.parameters["mean"], co10.errors["mean"]),
        "co10.stddev": (co10.parameters["stddev"], co10.errors["stddev"]),
        "co21.amplitude_0": (co21.parameters["amplitude_0"], co21.errors["amplitude_0"]),
        "co21.amplitude_1": (co21.parameters["amplitude_1"], co21.errors["amplitude_1"]),
    }
    pulls = {}
    for name, truth in cubes.truth.items():
        joint_pull = (result.parameters[name] - truth) / result.errors[name]
        value, error = single_maps[name]
        pulls[name] = {
            "joint": round(float(np.nanstd(joint_pull)), 3),
            "single": round(float(np.nanstd((value - truth) / error)), 3),
            "median error joint / single": round(
                float(np.nanmedian(result.errors[name] / error)), 3
            ),
        }
    scipy_params, scipy_cost = outputs["scipy"]
    names = list(cubes.truth)
    joint_flat = np.stack([result.parameters[n].reshape(-1) for n in names], axis=1)
    joint_stat = result.statistic.reshape(-1)[: len(scipy_starts)]
    report = {
        "machine": machine_info(),
        "size": [args.size, args.size],
        "n_fits": n_fits,
        "import_s": round(import_s, 3),
        "fits_per_s_cold": {name: rate(name, t[0]) for name, t in times.items()},
        "fits_per_s_best": {name: rate(name, min(t)) for name, t in steady.items()},
        "fits_per_s_median": {name: rate(name, statistics.median(t)) for name, t in steady.items()},
        "joint_time_over_singles": round(per_fit["joint"] / per_fit["singles"], 3),
        "joint_speedup_over_scipy": round(per_fit["scipy"] / per_fit["joint"], 1),
        "joint_no_worse_than_scipy": round(
            float(np.mean(joint_stat <= 2 * scipy_cost * (1 + 1e-7) + 1e-9)), 4
        ),
        "max_abs_diff_vs_scipy": round(
            float(np.nanmax(np.abs(joint_flat[: len(scipy_starts)] - scipy_params))), 9
        ),
        "pull_std": pulls,
        "status": {s.name: n for s, n in result.status_counts().items()},
    }
    print(json.dumps(report, indent=1))


def _scipy_starts(cubes, n):
    """The starts parfit's guesses give the first ``n`` pixels (free parameters, joint order)."""
    from parfit.models import JointModel

    y10 = cubes.data["co10"].reshape(cubes.data["co10"].shape[0], -1)[:, :n].T
    y21 = cubes.data["co21"].reshape(-1, cubes.data["co21"].shape[-1])[:n]
    joint = JointModel(cubes.models, {"co10": y10.shape[1], "co21": y21.shape[1]})
    x = np.concatenate([cubes.world["co10"][0], cubes.world["co21"][0]])
    guessed = joint.guess(x, y=np.concatenate([y10, y21], axis=1))
    return guessed[:, joint.free_mask]


def _scipy_fit(cubes, weights, starts):
    """Per-pixel ``least_squares`` (TRF) on both cubes' stacked residuals."""
    from scipy.optimize import least_squares

    n = len(starts)
    y10 = cubes.data["co10"].reshape(cubes.data["co10"].shape[0], -1)[:, :n].T
    y21 = cubes.data["co21"].reshape(-1, cubes.data["co21"].shape[-1])[:n]
    x10, x21 = cubes.world["co10"][0], cubes.world["co21"][0]
    w10, w21 = weights["co10"], weights["co21"]
    params = np.empty_like(starts)
    cost = np.empty(n)
    for k in range(n):

        def residual(p, k=k):
            a1, mean, sd, a2, base = p
            g1 = a1 * np.exp(-0.5 * ((x10 - mean) / sd) ** 2)
            g2 = a2 * np.exp(-0.5 * ((x21 - mean) / sd) ** 2) + base
            return np.concatenate([(g1 - y10[k]) * w10, (g2 - y21[k]) * w21])

        lower = np.array([-np.inf, -np.inf, 0.0, -np.inf, -np.inf])
        fit = least_squares(
            residual, np.clip(starts[k], lower + 1e-12, None), method="trf", bounds=(lower, np.inf)
        )
        params[k] = fit.x
        cost[k] = fit.cost
    return params, cost


if __name__ == "__main__":
    main()
