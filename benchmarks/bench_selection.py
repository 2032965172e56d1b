"""Per-pixel model selection and neighbour refits: what they cost and what they recover.

Two parts, each on a synthetic cube with known truth, threads scheduler:

1. **Selection** on ``parfit.datasets.components_cube(--sel-shape)`` (the
   left third of the map holds one Gaussian line per pixel, the middle two,
   the right three; noise 0.1 K, lines 1.2-2 K).  It times one pass of each
   candidate alone, ``parallel_fit(G_k, initial="guess")`` for ``G_1 =
   cube.model`` and its sums of two and three, and the selection
   ``parallel_fit([G_1, G_2, G_3], select="aicc", initial="guess")``.  The
   selection's time is reported over the sum of the candidates' single runs
   (what selection adds: one pass over the cube counting valid samples, the
   criteria, the components ordered by position) and over the single
   1-Gaussian pass (what selecting the number of lines costs over assuming
   one).  The two extra steps are also timed alone each round: the count of
   valid samples (``parfit.engine.starts.valid_counts``) and the criteria and
   choice (``parfit.selection.SelectionResult`` built from the candidates'
   results).  Accuracy: the fraction of pixels whose selected number of
   components equals ``truth["n_components"]``, per region and overall.
2. **Refits** on ``parfit.datasets.velocity_field_cube(--vf-shape)`` (a
   rotating disk: one narrow line per pixel, centres from -45 to +45 km/s;
   the shared start, the line at 0 km/s, is far from most lines).  For three
   fitters it times a single pass from the shared start, ``refit=
   "neighbours"``, ``initial="mean"`` and both:

   * ``batched``: ``cube.model`` with parfit's default fitter (reference; it
     solves fits that end weak or on a bound again from the model's guess,
     so it rescues most far starts by itself);
   * ``function``: the same Gaussian written as a plain function
     (``parfit.models.model_from_function``, analytic Jacobian), which
     cannot guess, with the default fitter: the batched solver without its
     second start;
   * ``trf``: ``cube.model`` with ``fitter="trf"`` (scipy ``least_squares``
     per fit, no second start), on the first ``--trf-rounds`` rounds only.

   *Recovered*: status OK and ``|mean - truth| < 1 km/s``.  It prints the
   per-pass report of each refit (fits refitted, improved, rescued).

3. **Peers**, measured in the same run: scipy ``least_squares`` (TRF,
   analytic Jacobian, same bounds) per pixel on ``--scipy-pixels`` random
   pixels: for each candidate of part 1 from the same guesses parfit starts
   from (and a selection by the same AICc and peak-significance rule on
   them), and for part 2 from the same shared start.

Steady state: every path is first run once on a small corner of its cube
(not timed), then ``--repeat`` rounds, the paths taking turns; reported are
the median and best time of the rounds, ratios of medians and ``paired``
ratios (the median over rounds of the ratio within a round: the steadiest
figure on a shared machine), and CPU seconds.  Cold start: the paths of
``COLD_PATHS``, each the first ``parallel_fit`` call of a fresh Python
process (a subprocess of this script; import not counted)::

    python benchmarks/bench_selection.py                 # full size, 3 rounds (5-8 min)
    python benchmarks/bench_selection.py --quick         # smoke test (< 20 s)
    python benchmarks/bench_selection.py --part selection --repeat 5
"""

import argparse
import json
import os
import statistics
import sys
import time

# One BLAS thread: the per-fit scipy loops only call BLAS on tiny matrices (see
# bench_likelihood.py); set OPENBLAS_NUM_THREADS to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_seconds, loadavg, machine_info, run_cold  # noqa: E402

#: A fit recovers the velocity field where it is OK and its centre within this of the truth.
RECOVERED_KMS = 1.0
#: The peak-significance rule of parfit.selection, applied to the scipy peer as well.
PEAK_SIGNIFICANCE = 3.0
SELECT = "aicc"
FITTERS = ("batched", "function", "trf")
MODES = ("single", "refit", "mean", "both")
MODE_ARGS = {
    "single": {},
    "refit": {"refit": "neighbours"},
    "mean": {"initial": "mean"},
    "both": {"initial": "mean", "refit": "neighbours"},
}
COLD_PATHS = ("g1", "select", "batched-single", "batched-both", "function-both")
#: Those of ``--quick`` (each cold start imports parfit in a new process, 2-3 s).
QUICK_COLD_PATHS = ("select",)
DEFAULTS = {
    "sel_shape": (100, 60, 60),
    "vf_shape": (90, 60, 60),
    "repeat": 3,
    "trf_rounds": 2,
    "scipy_pixels": 300,
}
QUICK = {
    "sel_shape": (100, 6, 12),
    "vf_shape": (90, 9, 9),
    "repeat": 1,
    "trf_rounds": 1,
    "scipy_pixels": 12,
}


# --- the models -----------------------------------------------------------------------


def _gaussian(x, amplitude=1.5, mean=0.0, stddev=2.5):
    return amplitude * np.exp(-0.5 * ((x - mean) / stddev) ** 2)


def _gaussian_jacobian(x, amplitude=1.5, mean=0.0, stddev=2.5):
    d = (x - mean) / stddev
    e = np.exp(-0.5 * d * d)
    return [e, amplitude * e * d / stddev, amplitude * e * d * d / stddev]


def function_model(model):
    """``model`` (a Gaussian1D) as a plain-function model, which cannot guess."""
    from parfit.models import model_from_function

    cls = model_from_function(_gaussian, name="FunctionGaussian", jacobian=_gaussian_jacobian)
    values = {n: float(getattr(model, n).value) for n in model.param_names}
    bounds = {n: getattr(model, n).bounds for n in model.param_names}
    out = cls(**values, bounds={n: b for n, b in bounds.items() if b != (None, None)})
    assert not out.can_guess
    return out


def candidates(cube):
    """1, 2 and 3 Gaussians: ``cube.model`` and its sums."""
    g = cube.model
    return [g.copy(), g.copy() + g.copy(), g.copy() + g.copy() + g.copy()]


def spectra(data):
    """``(n_fits, n_channels)`` view of a ``(n_channels, ny, nx)`` cube."""
    return np.moveaxis(data, 0, -1).reshape(-1, data.shape[0])


def make_cubes(args):
    from parfit.datasets import components_cube, velocity_field_cube

    cubes = {}
    if args.part in ("selection", "all"):
        cubes["sel"] = components_cube(tuple(args.sel_shape), seed=args.seed)
    if args.part in ("refit", "all"):
        cubes["vf"] = velocity_field_cube(tuple(args.vf_shape), seed=args.seed)
    return cubes


# --- the paths ------------------------------------------------------------------------


class Paths:
    """Every timed path, each a callable ``run(data=None)`` (``data``: a warm-up corner)."""

    def __init__(self, cubes, args):
        import parfit

        self.fit = parfit.parallel_fit
        self.cubes = cubes
        self.calls = {}
        self.n_fits = {}
        rng = np.random.default_rng(args.seed)
        if "sel" in cubes:
            cube = cubes["sel"]
            self.cands = candidates(cube)
            n = cube.data[0].size
            for k, model in enumerate(self.cands):
                self.calls[f"g{k + 1}"] = self._sel(model)
                self.n_fits[f"g{k + 1}"] = n
            self.calls["select"] = self._sel(self.cands, select=SELECT)
            self.n_fits["select"] = n
            self.calls["n_valid"] = self._n_valid
            self.n_fits["n_valid"] = n
            self.sel_sample = np.sort(rng.choice(n, size=min(args.scipy_pixels, n), replace=False))
            y = spectra(cube.data)[self.sel_sample]
            self.sel_starts = [m.guess(cube.world[0], y=y) for m in self.cands]
            for k in range(len(self.cands)):
                self.calls[f"scipy-g{k + 1}"] = self._scipy_sel(k)
                self.n_fits[f"scipy-g{k + 1}"] = len(self.sel_sample)
        if "vf" in cubes:
            cube = cubes["vf"]
            n = cube.data[0].size
            models = {"batched": cube.model, "function": function_model(cube.model)}
            models["trf"] = cube.model
            for fitter in FITTERS:
                for mode in MODES:
                    kwargs = dict(MODE_ARGS[mode])
                    if fitter == "trf":
                        kwargs["fitter"] = "trf"
                    self.calls[f"{fitter}-{mode}"] = self._vf(models[fitter], kwargs)
                    self.n_fits[f"{fitter}-{mode}"] = n
            self.vf_sample = np.sort(rng.choice(n, size=min(args.scipy_pixels, n), replace=False))
            self.calls["scipy-vf"] = self._scipy_vf
            self.n_fits["scipy-vf"] = len(self.vf_sample)

    def _sel(self, model, **kwargs):
        cube = self.cubes["sel"]

        def run(data=None):
            return self.fit(
                model,
                cube.data if data is None else data,
                world=cube.world,
                initial="guess",
                scheduler="threads",
                **kwargs,
            )

        return run

    def _n_valid(self, data=None):
        """The selection's own steps alone: its pass over the cube, then its criteria.

        The criteria are those of the ``select`` run just before (same data).
        """
        from parfit.engine.starts import valid_counts
        from parfit.fit import fit_request
        from parfit.selection import SelectionResult, peak_amplitudes

        cube = self.cubes["sel"]
        t0 = time.perf_counter()
        request, _ = fit_request(
            self.cands[0], cube.data if data is None else data, world=cube.world, initial="guess"
        )
        n_valid = valid_counts(request)
        t1 = time.perf_counter()
        chosen = self.last_selection
        SelectionResult(
            chosen.candidates,
            criterion=SELECT,
            threshold=0.0,
            n_free=chosen.n_free,
            n_valid=n_valid,
            peaks=[peak_amplitudes(m, m.param_names) for m in self.cands],
        )
        return {"n_valid_s": t1 - t0, "criteria_s": time.perf_counter() - t1}

    def _vf(self, model, kwargs):
        cube = self.cubes["vf"]

        def run(data=None):
            return self.fit(
                model,
                cube.data if data is None else data,
                world=cube.world,
                scheduler="threads",
                **kwargs,
            )

        return run

    def _scipy_sel(self, k):
        cube = self.cubes["sel"]
        model = self.cands[k]

        def run(data=None):
            y = spectra(cube.data)[self.sel_sample]
            starts = self.sel_starts[k]
            if data is not None:
                y, starts = y[:2], starts[:2]
            return scipy_fits(model, cube.world[0], y, starts)

        return run

    def _scipy_vf(self, data=None):
        cube = self.cubes["vf"]
        y = spectra(cube.data)[self.vf_sample]
        if data is not None:
            y = y[:2]
        start = np.array([float(getattr(cube.model, n).value) for n in cube.model.param_names])
        return scipy_fits(cube.model, cube.world[0], y, np.broadcast_to(start, (len(y), 3)))

    def corner(self, name):
        """A small corner of the path's cube (every region of the selection cube)."""
        if name.startswith(("g", "select", "n_valid", "scipy-g")):
            data = self.cubes["sel"].data
            nx = data.shape[2]
            cols = np.r_[0:2, nx // 2 : nx // 2 + 2, nx - 2 : nx]
            return data[:, :2][:, :, cols]
        return self.cubes["vf"].data[:, :4, :4]

    def run(self, name, data=None):
        """Run path ``name`` (on ``data``, a corner, if given); ``n_valid`` after ``select``."""
        out = self.calls[name](data)
        if name == "select":
            self.last_selection = out
        return out

    def warm_up(self, names):
        """Every path once on a corner of its cube (in order: ``select`` before ``n_valid``)."""
        for name in names:
            self.run(name, self.corner(name))


def scipy_fits(model, x, y, starts):
    """Per-pixel ``least_squares`` (TRF, analytic Jacobian, the model's bounds).

    Returns the parameters, the errors (from ``J^T J`` scaled by the residual
    variance, as parfit without weights), the chi-square (sum of squared
    residuals) and whether scipy reports success.
    """
    from scipy.optimize import least_squares

    lower, upper = model.bounds_arrays(())
    n, m = len(y), model.n_params
    params = np.full((n, m), np.nan)
    errors = np.full((n, m), np.nan)
    chi2 = np.full(n, np.nan)
    success = np.zeros(n, dtype=bool)
    inner_lo, inner_hi = lower.copy(), upper.copy()  # a start strictly inside the bounds
    for inner, sign in ((inner_lo, 1.0), (inner_hi, -1.0)):
        finite = np.isfinite(inner)
        inner[finite] += sign * 1e-12 * np.maximum(np.abs(inner[finite]), 1.0)
    for i in range(n):
        yi = y[i]

        def residual(p, yi=yi):
            return model.evaluate(x, p[None, :])[0] - yi

        def jacobian(p):
            return model.jacobian(x, p[None, :])[0]

        x0 = np.clip(starts[i], inner_lo, inner_hi)
        fit = least_squares(residual, x0, jac=jacobian, bounds=(lower, upper), method="trf")
        params[i] = fit.x
        chi2[i] = 2 * fit.cost
        success[i] = fit.success
        dof = max(len(x) - m, 1)
        with np.errstate(all="ignore"):
            try:
                cov = np.linalg.inv(fit.jac.T @ fit.jac) * chi2[i] / dof
                errors[i] = np.sqrt(np.diag(cov))
            except np.linalg.LinAlgError:
                pass
    return {"params": params, "errors": errors, "chi2": chi2, "success": success}


def scipy_selection(paths, outputs):
    """The candidate each sample pixel gets from the scipy fits, by parfit's rule."""
    from parfit.selection import choose, criterion_map

    cube = paths.cubes["sel"]
    n = cube.data.shape[0]
    criteria = []
    for k, model in enumerate(paths.cands):
        fits = outputs[f"scipy-g{k + 1}"]
        ok = fits["success"].copy()
        with np.errstate(invalid="ignore"):
            for i in model.peak_amplitude_indices():
                ok &= np.abs(fits["params"][:, i]) >= PEAK_SIGNIFICANCE * fits["errors"][:, i]
        crit = criterion_map(fits["chi2"], np.full(len(ok), n), model.n_free, SELECT)
        criteria.append(np.where(ok, crit, np.nan))
    selected, _ = choose(np.array(criteria), [m.n_free for m in paths.cands])
    return selected


# --- cold starts ----------------------------------------------------------------------


def cold_child(args):
    """In a fresh process: import, build the cube, time the first call of one path."""
    t0 = time.perf_counter()
    import parfit  # noqa: F401

    import_s = time.perf_counter() - t0
    name = args.cold_path
    args.part = "selection" if name in ("g1", "select") else "refit"
    args.scipy_pixels = 1
    paths = Paths(make_cubes(args), args)
    t0 = time.perf_counter()
    paths.run(name)
    print(json.dumps({"import_s": import_s, "first_call_s": time.perf_counter() - t0}))


def cold_start(name, args):
    """Run :func:`cold_child` for ``name`` in a subprocess (this parfit first on its path)."""
    return run_cold(
        __file__,
        name,
        ["--seed", args.seed, "--sel-shape", *args.sel_shape, "--vf-shape", *args.vf_shape],
    )


# --- reporting ------------------------------------------------------------------------


def _paired(times, num, den):
    """Median over rounds of ``times[num] / times[den]`` within the round (``den``: a name
    or a list of names whose times are summed)."""
    dens = [den] if isinstance(den, str) else den
    rounds = min(len(times[n]) for n in [num, *dens])
    return statistics.median(times[num][r] / sum(times[d][r] for d in dens) for r in range(rounds))


def _mean(mask):
    return float(mask.mean()) if mask.size else float("nan")


def _pct(value):
    return f"{100 * value:6.1f}%" if np.isfinite(value) else f"{'-':>7s}"


def _secs(value):
    return f"{value:8.2f}" if value is not None else f"{'-':>8s}"


def _status(result):
    return {s.name: int(n) for s, n in result.status_counts().items()}


def report_selection(paths, times, cpu, cold, outputs):
    cube = paths.cubes["sel"]
    n_fits = paths.n_fits["select"]
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    names = ["g1", "g2", "g3"]
    out = {"n_fits": n_fits, "shape": list(cube.data.shape)}
    print(
        f"\n== 1. Model selection: components_cube({tuple(cube.data.shape)}), {n_fits} pixels, "
        f'initial="guess", select="{SELECT}"'
    )
    header = (
        f"{'run':24s} {'cold s':>8s} {'best s':>8s} {'median s':>8s} {'fits/s':>7s} "
        f"{'CPU s':>6s} {'/ sum of cands':>15s} {'/ 1 Gaussian':>14s}"
    )
    print(f"{'':64s} {'(median, paired, CPU)':>30s}")
    print(header + "\n" + "-" * len(header))
    labels = {f"g{k}": f"{k} Gaussian{'s' if k > 1 else ''} ({3 * k} free)" for k in (1, 2, 3)}
    labels["select"] = f'select="{SELECT}" over the 3'
    rows = {}
    sums = [sum(x) for x in zip(*(times[n] for n in names), strict=True)]
    for name in names + ["sum", "select"]:
        if name == "sum":
            t = sums
            c = [sum(x) for x in zip(*(cpu[n] for n in names))]
            label, cold_s = "sum of the 3 candidates", None
        else:
            t, c, label = times[name], cpu[name], labels[name]
            cold_s = cold.get(name, {}).get("first_call_s")
        r = {
            "cold_s": cold_s,
            "best_s": min(t),
            "median_s": statistics.median(t),
            "cpu_s": statistics.median(c),
            "fits_per_s": n_fits / statistics.median(t),
        }
        if name in ("sum", "select"):
            r["over_sum"] = {
                "median": r["median_s"] / statistics.median(sums),
                "paired": _paired(times, "select", names) if name == "select" else 1.0,
                "cpu": r["cpu_s"] / sum(med_cpu[n] for n in names),
            }
        r["over_g1"] = {
            "median": r["median_s"] / med["g1"],
            "paired": (
                _paired(times, name, "g1")
                if name != "sum"
                else statistics.median(
                    sum(times[n][k] for n in names) / times["g1"][k] for k in range(len(t))
                )
            ),
            "cpu": r["cpu_s"] / med_cpu["g1"],
        }
        rows[name] = r
        over_sum = r.get("over_sum")
        s1 = (
            f"{over_sum['median']:5.2f} {over_sum['paired']:4.2f} {over_sum['cpu']:4.2f}"
            if over_sum
            else f"{'':15s}"
        )
        g = r["over_g1"]
        print(
            f"{label:24s} {_secs(cold_s)} {r['best_s']:8.2f} {r['median_s']:8.2f} "
            f"{r['fits_per_s']:7.0f} {r['cpu_s']:6.2f} {s1:>15s} "
            f"{g['median']:5.2f} {g['paired']:4.2f} {g['cpu']:4.2f}"
        )
    out["runs"] = rows
    steps = outputs["n_valid_steps"]
    n_valid_s = statistics.median(s["n_valid_s"] for s in steps)
    criteria_s = statistics.median(s["criteria_s"] for s in steps)
    extra = [times["select"][k] - sum(times[n][k] for n in names) for k in range(len(steps))]
    out["steps"] = {
        "n_valid_s": n_valid_s,
        "criteria_s": criteria_s,
        "select_minus_sum_s": extra,
    }
    print(
        f"select's own steps, timed alone (median of the rounds): counting the valid samples "
        f"{n_valid_s:.3f} s, criteria and choice {criteria_s:.3f} s; select minus the sum of the "
        f"candidates, per round: {', '.join(f'{e:+.2f}' for e in extra)} s.\n"
        f"cold = a fresh process's first call (import not counted); / sum of cands = select's "
        f"time over the three candidates' (> 1: what selection adds); / 1 Gaussian = time over "
        f"the single 1-Gaussian pass."
    )

    # accuracy
    result = outputs["select"]
    truth = cube.truth["n_components"]
    chosen = result.selected.astype(int) + 1  # 0: none succeeded
    flat_truth = truth.reshape(-1)[paths.sel_sample]
    peer = scipy_selection(paths, outputs).astype(int) + 1
    ours = chosen.reshape(-1)[paths.sel_sample]
    print(f"\n   selected number of components against the truth ({SELECT})")
    header = (
        f"{'region':8s} {'pixels':>6s} {'correct':>8s} {'chose 1':>8s} {'chose 2':>8s} "
        f"{'chose 3':>8s} {'none':>5s} | {'sample':>6s} {'parfit':>7s} {'scipy':>7s}"
    )
    print(header + "\n" + "-" * len(header))
    acc = {}
    for region in (1, 2, 3, "all"):
        here = np.ones(truth.shape, bool) if region == "all" else truth == region
        s_here = np.ones(len(flat_truth), bool) if region == "all" else flat_truth == region
        counts = [int((chosen[here] == c).sum()) for c in (1, 2, 3, 0)]
        a = {
            "pixels": int(here.sum()),
            "correct": float((chosen == truth)[here].mean()),
            "chosen": dict(zip(("1", "2", "3", "none"), counts, strict=True)),
            "sample": int(s_here.sum()),
            "parfit_on_sample": _mean((ours == flat_truth)[s_here]),
            "scipy_on_sample": _mean((peer == flat_truth)[s_here]),
        }
        acc[str(region)] = a
        label = f"{region} line{'s' if region != 1 else ''}" if region != "all" else "all"
        print(
            f"{label:8s} {a['pixels']:6d} {_pct(a['correct']):>8s} "
            + " ".join(f"{c:8d}" for c in counts[:3])
            + f" {counts[3]:5d} | {a['sample']:6d} {_pct(a['parfit_on_sample'])} "
            f"{_pct(a['scipy_on_sample'])}"
        )
    out["accuracy"] = acc
    print(
        "sample: the scipy peer's random pixels; scipy = its own fits of the three candidates "
        "chosen by the same rule (AICc, unknown noise, each peak >= 3 sigma)."
    )
    out["status"] = {f"g{k + 1}": _status(c) for k, c in enumerate(result.candidates)}
    print(f"candidates' status in the selection run: {out['status']}")

    # where the time goes: evaluations and second starts of each candidate, by region
    from parfit.status import Flag

    print("\n   candidates alone, by region: mean nfev / fraction retried from a second start")
    header = f"{'candidate':22s} " + " ".join(f"{f'{n} line(s)':>15s}" for n in (1, 2, 3))
    print(header + "\n" + "-" * len(header))
    out["by_region"] = {}
    for name in names:
        single = outputs[name]
        nfev = np.asarray(single.nfev)
        retried = (np.asarray(single.flags) & Flag.RETRIED) != 0
        cells = {
            str(n): {
                "mean_nfev": float(nfev[truth == n].mean()),
                "retried": float(retried[truth == n].mean()),
            }
            for n in (1, 2, 3)
        }
        out["by_region"][name] = cells
        print(
            f"{labels[name]:22s} "
            + " ".join(f"{c['mean_nfev']:8.1f} / {c['retried']:4.2f}" for c in cells.values())
        )
    print(
        "nfev counts both starts; a fit is retried (the batched fitter's second start, from "
        "the model's guess) when it ends weak: singular, degenerate, on a bound, at max_nfev "
        "or with a peak below 3 sigma."
    )

    # peers
    print("\n   per-fit scipy least_squares (TRF) from the same guesses, on the sample")
    header = f"{'candidate':22s} {'fits':>5s} {'fits/s':>7s} {'parfit fits/s':>13s} "
    header += f"{'parfit x':>20s}"
    print(f"{'':50s} {'(median, paired, CPU)':>22s}")
    print(header + "\n" + "-" * len(header))
    out["peers"] = {}
    for name in names:
        peer_name = f"scipy-{name}"
        n_peer = paths.n_fits[peer_name]
        peer_rate = n_peer / med[peer_name]
        ours_rate = n_fits / med[name]
        r = {
            "fits": n_peer,
            "scipy_fits_per_s": peer_rate,
            "parfit_fits_per_s": ours_rate,
            "parfit_x": {
                "median": ours_rate / peer_rate,
                "paired": statistics.median(
                    (a / n_peer) / (b / n_fits) for a, b in zip(times[peer_name], times[name])
                ),
                "cpu": (med_cpu[peer_name] / n_peer) / (med_cpu[name] / n_fits),
            },
            "not_success": int((~outputs[peer_name]["success"]).sum()),
        }
        out["peers"][name] = r
        x = r["parfit_x"]
        print(
            f"{labels[name]:22s} {n_peer:5d} {peer_rate:7.0f} {ours_rate:13.0f} "
            f"{x['median']:8.1f} {x['paired']:5.1f} {x['cpu']:5.1f}"
        )
    return out


def _recovered(result, truth):
    from parfit.status import Status

    with np.errstate(invalid="ignore"):
        close = np.abs(np.asarray(result.parameters["mean"]) - truth) < RECOVERED_KMS
    return close & (np.asarray(result.status) == Status.OK)


def report_refit(paths, times, cpu, cold, outputs):
    cube = paths.cubes["vf"]
    truth = cube.truth["mean"]
    n_fits = cube.data[0].size
    out = {"n_fits": n_fits, "shape": list(cube.data.shape), "runs": {}}
    print(
        f"\n== 2. Refits: velocity_field_cube({tuple(cube.data.shape)}), {n_fits} pixels, "
        f"from the shared start (line at 0 km/s); recovered: OK and |mean - truth| < "
        f"{RECOVERED_KMS:g} km/s"
    )
    header = (
        f"{'fitter':9s} {'mode':7s} {'rounds':>6s} {'cold s':>8s} {'best s':>8s} "
        f"{'median s':>8s} {'fits/s':>7s} {'x single':>16s} {'recovered':>9s} {'nfev':>5s} "
        f"{'passes':>6s} {'refits':>6s}"
    )
    print(f"{'':68s} {'(median, paired, CPU)':>22s}")
    print(header + "\n" + "-" * len(header))
    for fitter in FITTERS:
        single = f"{fitter}-single"
        for mode in MODES:
            name = f"{fitter}-{mode}"
            t, c = times[name], cpu[name]
            result = outputs[name]
            passes = result.run.refit or []
            r = {
                "rounds": len(t),
                "cold_s": cold.get(name, {}).get("first_call_s"),
                "best_s": min(t),
                "median_s": statistics.median(t),
                "cpu_s": statistics.median(c),
                "fits_per_s": n_fits / statistics.median(t),
                "x_single": {
                    "median": statistics.median(t) / statistics.median(times[single]),
                    "paired": _paired(times, name, single),
                    "cpu": statistics.median(c) / statistics.median(cpu[single]),
                },
                "recovered": float(_recovered(result, truth).mean()),
                "status": _status(result),
                "mean_nfev": float(np.mean(result.nfev)),
                "passes": passes,
                "refits": int(sum(p["refitted"] for p in passes)),
                "mean_start": result.run.mean_start,
            }
            out["runs"][name] = r
            x = r["x_single"]
            print(
                f"{fitter:9s} {mode:7s} {r['rounds']:6d} {_secs(r['cold_s'])} {r['best_s']:8.2f} "
                f"{r['median_s']:8.2f} {r['fits_per_s']:7.0f} {x['median']:5.2f} "
                f"{x['paired']:5.2f} {x['cpu']:4.2f} {_pct(r['recovered']):>9s} "
                f"{r['mean_nfev']:5.1f} {len(passes):6d} {r['refits']:6d}"
            )
    print(
        "single: one pass from the model's values; refit: refit='neighbours'; mean: "
        "initial='mean'; both: the two.  x single = time over the single pass's; nfev: mean "
        "model evaluations per pixel (refits included); passes/refits: refit passes and fits "
        "refitted in all."
    )
    print("\n   refit passes (last round): pass: refitted / improved / rescued")
    for fitter in FITTERS:
        for mode in ("refit", "both"):
            r = out["runs"][f"{fitter}-{mode}"]
            steps = ", ".join(
                f"{p['pass']}: {p['refitted']}/{p['improved']}/{p['rescued']}" for p in r["passes"]
            )
            print(f"  {fitter:9s} {mode:5s} {steps}")
    print("   status (last round):")
    for name, r in out["runs"].items():
        if r["status"] != {"OK": n_fits}:
            print(f"  {name:16s} {r['status']}")

    # peer
    fits = outputs["scipy-vf"]
    sample = paths.vf_sample
    n_peer = len(sample)
    with np.errstate(invalid="ignore"):
        peer_rec = (
            np.abs(fits["params"][:, 1] - truth.reshape(-1)[sample]) < RECOVERED_KMS
        ) & fits["success"]
    med_peer = statistics.median(times["scipy-vf"])
    peer_rate = n_peer / med_peer
    out["peer"] = {
        "fits": n_peer,
        "scipy_fits_per_s": peer_rate,
        "scipy_recovered": float(peer_rec.mean()),
        "parfit_over_scipy": {},
    }
    print(
        f"\n   per-fit scipy least_squares (TRF, analytic Jacobian) from the shared start, "
        f"{n_peer} random pixels: {peer_rate:.0f} fits/s, recovered {_pct(peer_rec.mean()).strip()}"
    )
    header = f"{'parfit run':16s} {'fits/s':>7s} {'x scipy':>16s} {'recovered (sample)':>18s}"
    print(f"{'':25s} {'(median, paired, CPU)':>22s}")
    print(header + "\n" + "-" * len(header))
    for name in ("batched-single", "function-single", "trf-single", "batched-both", "trf-both"):
        rounds = min(len(times[name]), len(times["scipy-vf"]))
        rate = n_fits / statistics.median(times[name])
        x = {
            "median": rate / peer_rate,
            "paired": statistics.median(
                (times["scipy-vf"][k] / n_peer) / (times[name][k] / n_fits) for k in range(rounds)
            ),
            "cpu": (statistics.median(cpu["scipy-vf"]) / n_peer)
            / (statistics.median(cpu[name]) / n_fits),
        }
        rec = float(_recovered(outputs[name], truth).reshape(-1)[sample].mean())
        out["peer"]["parfit_over_scipy"][name] = {**x, "recovered_sample": rec}
        print(
            f"{name:16s} {rate:7.0f} {x['median']:7.1f} {x['paired']:4.1f} {x['cpu']:4.1f} "
            f"{_pct(rec):>18s}"
        )
    return out


# --- main -----------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=("selection", "refit", "all"), default="all")
    ap.add_argument(
        "--sel-shape", type=int, nargs=3, default=None, help="channels ny nx (100 60 60)"
    )
    ap.add_argument("--vf-shape", type=int, nargs=3, default=None, help="channels ny nx (90 60 60)")
    ap.add_argument("--repeat", type=int, default=None, help="timed rounds after the warm-up (3)")
    ap.add_argument(
        "--trf-rounds", type=int, default=None, help="rounds that include fitter='trf' (2)"
    )
    ap.add_argument(
        "--scipy-pixels", type=int, default=None, help="pixels of the scipy peers (300)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the cubes and samples (0)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold starts (subprocesses)")
    ap.add_argument("--quick", action="store_true", help="small cubes, 1 round (smoke test)")
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    ap.add_argument("--cold-path", choices=COLD_PATHS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeat < 1 or args.trf_rounds < 1:
        ap.error("--repeat and --trf-rounds must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.cold_path:
        return cold_child(args)
    info = machine_info()
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    info["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS")
    print("parfit selection and refit benchmark: select=, refit='neighbours', initial='mean'")
    for k, v in info.items():
        print(f"  {k:10s} {v}")
    print(
        f"  part {args.part}; components_cube({tuple(args.sel_shape)}), velocity_field_cube("
        f"{tuple(args.vf_shape)}), seed {args.seed}; threads scheduler; {args.repeat} round(s), "
        f"fitter='trf' in the first {min(args.trf_rounds, args.repeat)}; scipy "
        f"{args.scipy_pixels} pixels",
        flush=True,
    )
    load_before = loadavg()
    t_start = time.perf_counter()

    cold = {}
    if not args.no_cold:
        for name in QUICK_COLD_PATHS if args.quick else COLD_PATHS:
            if args.part != "all" and (name in ("g1", "select")) != (args.part == "selection"):
                continue
            cold[name] = cold_start(name, args)
            print(
                f"  cold {name:15s} import {cold[name]['import_s']:.2f} s, first call "
                f"{cold[name]['first_call_s']:.2f} s",
                flush=True,
            )

    paths = Paths(make_cubes(args), args)
    names = list(paths.calls)
    t0 = time.perf_counter()
    paths.warm_up(names)
    print(f"  warm-up on corners: {time.perf_counter() - t0:.1f} s", flush=True)

    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    outputs = {"n_valid_steps": []}
    for r in range(args.repeat):
        for name in names:
            if name.startswith("trf-") and r >= args.trf_rounds:
                continue
            c0, t0 = cpu_seconds(), time.perf_counter()
            out = paths.run(name)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
            if name == "n_valid":
                outputs["n_valid_steps"].append(out)
            else:
                outputs[name] = out
            print(
                f"  round {r + 1}/{args.repeat} {name:16s} {paths.n_fits[name]:6d} fits "
                f"{times[name][-1]:8.2f} s wall {cpu[name][-1]:8.2f} s cpu (load {loadavg()})",
                flush=True,
            )

    report = {}
    if "sel" in paths.cubes:
        report["selection"] = report_selection(paths, times, cpu, cold, outputs)
    if "vf" in paths.cubes:
        report["refit"] = report_refit(paths, times, cpu, cold, outputs)
    info["loadavg_before"], info["loadavg_after"] = load_before, loadavg()
    info["total_s"] = time.perf_counter() - t_start
    print(
        f"\nload average before {info['loadavg_before']}, after {info['loadavg_after']}; "
        f"total {info['total_s']:.1f} s"
    )
    if args.json:
        payload = {
            "machine": info,
            "args": vars(args),
            "times": times,
            "cpu": cpu,
            "cold": cold,
            **report,
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1, default=_json_default)
        print(f"results written to {args.json}")
    return report


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    main()
