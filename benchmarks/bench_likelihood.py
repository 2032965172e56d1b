"""Poisson-likelihood (Cash) fits of a counts cube: cost against chi-square, scipy and iminuit.

On one counts cube, ``parfit.datasets.counts_cube(--shape, seed=--seed)``
(a Gaussian line on a flat background, 2-8 counts at the peak inside a disk,
no line outside it, background 0.3-1 count per channel), with the threads
scheduler and parfit's default (batched) fitter, it times

1. ``statistic="cash"`` against ``statistic="chi2"`` on the same cube and
   model, for two models: the **free line** (``cube.model``, every parameter
   free, ``initial="guess"``) and the **fixed shape** (``mean_0`` and
   ``stddev_0`` fixed at the model's 6.4 and 0.12 keV, ``initial="guess"``:
   the model of a TS map);
2. parfit's Cash fit against a per-fit **scipy** loop,
   ``scipy.optimize.minimize(method="L-BFGS-B")`` on ``2 sum(mu - n ln mu)``
   with its analytic gradient from the model's ``jacobian``, on
   ``--scipy-pixels`` pixels drawn at random.  Both start from the same
   values: the script calls ``cube.model.guess`` itself and gives the guesses
   to parfit as per-pixel starting maps (``initial`` left at the model's
   values) and to scipy as ``x0``.  scipy minimises Gammapy's truncated Cash
   (the model clipped below at 1e-25); where the Cash is undefined at the
   start (a guessed background of zero under counts) it first goes to the
   least-squares solution, as parfit does.  Both are then scored by the exact
   Cash (infinite where the model is negative, or zero under counts; a
   failed fit's NaN parameters too).  It prints the fraction of pixels where
   parfit's Cash is no worse than scipy's (``parfit <= scipy + 1e-6
   max(|scipy|, 1)``), inside the source disk (``truth["amplitude_0"] > 0``)
   and outside;
3. ``fitter="minuit"`` (iminuit, per fit) from the same starts on the first
   ``--minuit-pixels`` of those pixels, when iminuit is installed;
4. what a TS map (``null={"amplitude_0": 0.0}``) and profile-likelihood
   intervals and upper limits (``profile="amplitude_0"``) add to the plain
   Cash fit of the fixed-shape model.

Cold start: each path of 1. is run once more in a fresh Python process
(``--cold-path``, a subprocess of this script): the time of its first
``parallel_fit`` call, with whatever numba loads or compiles then; the
import of parfit is printed apart.  Steady state: in this process every path
is first run once on a 4 x 4 pixel corner of the cube (not timed), then
``--repeat`` rounds, the paths taking turns; fits/s is reported from the
median (and best) of the rounds, and ratios as the ratio of medians, as the
median over rounds of the ratio within a round (``paired``: the steadiest
figure on a shared machine) and per CPU second (robust to other jobs).

The default cube is 64 x 64 pixels, not 100 x 100, so that a run stays near
2-5 minutes on a shared 2-core machine (the free-line Cash fit runs at about
1,000 fits/s there, and the cold starts compile for 10-15 s each)::

    python benchmarks/bench_likelihood.py                    # 60 x 64 x 64, 3 rounds
    python benchmarks/bench_likelihood.py --shape 60 100 100 --repeat 2
    python benchmarks/bench_likelihood.py --quick            # smoke test
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

# One BLAS thread: the per-fit scipy loop only calls BLAS on 4 x 4 matrices, and on a
# shared 2-core machine OpenBLAS's threads made each L-BFGS-B iteration 20-30 times
# slower; parfit's fits did not change (set OPENBLAS_NUM_THREADS to override).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_seconds, loadavg, machine_info, run_cold  # noqa: E402

#: Gammapy's truncation of the model in the Cash statistic (what scipy minimises).
TRUNCATION = 1e-25
#: parfit's Cash is "no worse" than the other's within this relative tolerance.
RTOL = 1e-6
#: The paths timed against each other; the first four also get a cold start.
COLD_PATHS = ("free-chi2", "free-cash", "fixed-chi2", "fixed-cash")
QUICK = {"shape": (30, 10, 10), "repeat": 1, "scipy_pixels": 20, "minuit_pixels": 10}


# --- the cube, the models and the starts -----------------------------------------------


def make_cube(shape, seed):
    from parfit.datasets import counts_cube

    return counts_cube(tuple(shape), seed=seed)


def fixed_shape(model):
    """The model with the line's centre and width fixed (a TS map's model)."""
    fixed = model.copy()
    fixed.mean_0.fixed = True
    fixed.stddev_0.fixed = True
    return fixed


def spectra(data):
    """``(n_fits, n_channels)`` view of a ``(n_channels, ny, nx)`` cube."""
    return np.moveaxis(data, 0, -1).reshape(-1, data.shape[0])


def with_starts(model, starts, map_shape):
    """``model`` with its free parameters' values replaced by per-pixel maps."""
    free = [n for n, f in zip(model.param_names, model.free_mask) if f]
    index = {n: i for i, n in enumerate(model.param_names)}
    return model.with_values({n: starts[:, index[n]].reshape(map_shape) for n in free})


# --- the paths ---------------------------------------------------------------------------


class Paths:
    """Every path of the benchmark, each a callable without arguments."""

    def __init__(self, cube, models, sample, minuit_pixels):
        import parfit

        self.cube = cube
        self.models = models
        self.world = cube.world
        self.x = cube.world[0]
        self.y = spectra(cube.data)
        self.map_shape = cube.data.shape[1:]
        self.sample = sample
        self.minuit_sample = sample[:minuit_pixels]
        self._fit = parfit.parallel_fit
        self.starts = {k: m.guess(self.x, y=self.y) for k, m in models.items()}
        self.start_models = {
            k: with_starts(m, self.starts[k], self.map_shape) for k, m in models.items()
        }
        self.calls = {}
        for kind in models:
            for stat in ("chi2", "cash"):
                self.calls[f"{kind}-{stat}"] = self._guessed(kind, stat)
            self.calls[f"{kind}-cash-starts"] = self._from_starts(kind)
        self.calls["fixed-null"] = self._guessed("fixed", "cash", null={"amplitude_0": 0.0})
        self.calls["fixed-profile"] = self._guessed("fixed", "cash", profile="amplitude_0")
        for kind in models:
            self.calls[f"scipy-{kind}"] = self._scipy(kind)
        if importlib.util.find_spec("iminuit") is not None:
            for kind in models:
                self.calls[f"minuit-{kind}"] = self._minuit(kind)

    def n_fits(self, name):
        if name.startswith("scipy"):
            return len(self.sample)
        if name.startswith("minuit"):
            return len(self.minuit_sample)
        return self.y.shape[0]

    def _guessed(self, kind, statistic, **kwargs):
        model = self.models[kind]

        def run(data=None):
            data = self.cube.data if data is None else data
            return self._fit(
                model,
                data,
                world=self.world,
                statistic=statistic,
                initial="guess",
                scheduler="threads",
                **kwargs,
            )

        return run

    def _from_starts(self, kind):
        def run():
            return self._fit(
                self.start_models[kind],
                self.cube.data,
                world=self.world,
                statistic="cash",
                scheduler="threads",
            )

        return run

    def _scipy(self, kind):
        model = self.models[kind]
        starts = self.starts[kind][self.sample]
        y = self.y[self.sample]

        def run():
            return scipy_cash_fits(model, self.x, y, starts)

        return run

    def _minuit(self, kind):
        model = self.models[kind]
        rows = self.minuit_sample
        start_model = with_starts(model, self.starts[kind][rows], (len(rows),))
        data = self.y[rows].T  # (n_channels, n_pixels): one fit per column

        def run():
            return self._fit(
                start_model,
                data,
                world=self.world,
                statistic="cash",
                fitter="minuit",
                scheduler="threads",
            )

        return run

    def warm_up(self, names):
        """Every path once on a 4 x 4 pixel corner (samples: their first 4 pixels)."""
        corner = self.cube.data[:, :4, :4]
        for name in names:
            t0 = time.perf_counter()
            if name.endswith("-starts"):
                kind = name.split("-")[0]
                starts = self.starts[kind].reshape(self.map_shape + (-1,))[:4, :4].reshape(16, -1)
                self._fit(
                    with_starts(self.models[kind], starts, (4, 4)),
                    corner,
                    world=self.world,
                    statistic="cash",
                    scheduler="threads",
                )
            elif name.startswith("scipy"):
                kind = name.split("-")[1]
                scipy_cash_fits(self.models[kind], self.x, self.y[:4], self.starts[kind][:4])
            elif name.startswith("minuit"):
                self.calls[name]()  # a few hundred fits at most: warm with the real one
            else:
                self.calls[name](corner)
            print(f"  warm-up {name:18s} {time.perf_counter() - t0:7.2f} s", flush=True)


# --- the per-fit references ---------------------------------------------------------------


def cash_exact(model, x, params, y):
    """Per fit, ``2 sum(mu - n ln mu)``; inf where the model is negative or zero under counts."""
    mu = model.evaluate(x, np.asarray(params, dtype=np.float64))
    with np.errstate(all="ignore"):
        terms = np.where(y > 0, mu - y * np.log(mu), mu)
        bad = np.any((mu < 0) | ((mu == 0) & (y > 0)) | ~np.isfinite(mu), axis=1)
    return np.where(bad, np.inf, 2.0 * terms.sum(axis=1))


def scipy_cash_fits(model, x, y, starts):
    """One ``minimize(method="L-BFGS-B")`` per row of ``y`` on the truncated Cash statistic.

    Where the exact Cash is undefined at the start (the model negative, or
    zero under counts: a guessed background of zero), the fit first goes to
    the least-squares solution (``least_squares``, TRF, same bounds), as
    parfit's batched fitter does, then minimises the Cash from there.
    Returns the parameters ``(n, n_params)``, the number of evaluations and
    scipy's ``success`` per fit.
    """
    from scipy.optimize import least_squares, minimize

    free = np.asarray(model.free_mask, dtype=bool)
    limits = [p.bounds for p, f in zip(model.parameters.values(), free) if f]
    bounds = [tuple(None if b is None else float(b) for b in pair) for pair in limits]
    lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds])
    upper = np.array([np.inf if hi is None else hi for _, hi in bounds])
    params = np.array(starts, dtype=np.float64)
    undefined = ~np.isfinite(cash_exact(model, x, params, y))
    nfev = np.zeros(len(y), dtype=int)
    success = np.zeros(len(y), dtype=bool)
    for k, n in enumerate(y):
        row = params[k : k + 1].copy()

        def cash(p, n=n, row=row):
            row[0, free] = p
            mu = model.evaluate(x, row)[0]
            jac = model.jacobian(x, row)[0][:, free]
            clipped = mu > TRUNCATION
            mu = np.where(clipped, mu, TRUNCATION)
            value = 2.0 * np.sum(mu - n * np.log(mu))
            grad = 2.0 * (np.where(clipped, 1.0 - n / mu, 0.0) @ jac)
            return value, grad

        start = params[k, free]
        if undefined[k]:

            def residual(p, n=n, row=row):
                row[0, free] = p
                return model.evaluate(x, row)[0] - n

            def jacobian(p, row=row):
                row[0, free] = p
                return model.jacobian(x, row)[0][:, free]

            squares = least_squares(
                residual, np.clip(start, lower, upper), jac=jacobian, bounds=(lower, upper)
            )
            start, nfev[k] = squares.x, squares.nfev
        fit = minimize(cash, start, jac=True, method="L-BFGS-B", bounds=bounds)
        params[k, free] = fit.x
        nfev[k] += fit.nfev
        success[k] = fit.success
    return params, nfev, success


def _tolerance(theirs):
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(theirs), RTOL * np.maximum(np.abs(theirs), 1.0), 0.0)


def no_worse(ours, theirs):
    """True where ``ours`` is at most ``theirs`` within :data:`RTOL` (NaN counts as worse)."""
    with np.errstate(invalid="ignore"):
        return ours <= theirs + _tolerance(theirs)


def better(ours, theirs):
    """True where ``ours`` is below ``theirs`` by more than :data:`RTOL`."""
    with np.errstate(invalid="ignore"):
        return ours < theirs - _tolerance(theirs)


def fitted_rows(result, names):
    return np.stack([np.asarray(result.parameters[n]).reshape(-1) for n in names], axis=1)


# --- cold start -------------------------------------------------------------------------------


def cold_child(args):
    """In a fresh process: import, build the cube, time the first call of one path."""
    t0 = time.perf_counter()
    import parfit  # noqa: F401

    import_s = time.perf_counter() - t0
    cube = make_cube(args.shape, args.seed)
    models = {"free": cube.model, "fixed": fixed_shape(cube.model)}
    kind, stat = args.cold_path.split("-")
    t0 = time.perf_counter()
    parfit.parallel_fit(
        models[kind],
        cube.data,
        world=cube.world,
        statistic=stat,
        initial="guess",
        scheduler="threads",
    )
    print(json.dumps({"import_s": import_s, "first_call_s": time.perf_counter() - t0}))


def cold_start(name, args):
    """Run :func:`cold_child` for ``name`` in a subprocess (this parfit first on its path)."""
    return run_cold(__file__, name, ["--seed", args.seed, "--shape", *args.shape])


# --- reporting ----------------------------------------------------------------------------------


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("nan")


def _paired(times, num, den):
    """Median over rounds of ``times[num] / times[den]`` within the round."""
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def _region_fraction(mask, inside):
    return {
        "inside": float(mask[inside].mean()) if inside.any() else float("nan"),
        "outside": float(mask[~inside].mean()) if (~inside).any() else float("nan"),
        "all": float(mask.mean()),
        "n_inside": int(inside.sum()),
        "n_outside": int((~inside).sum()),
    }


def _pct(value):
    return f"{100 * value:6.1f}%" if np.isfinite(value) else f"{'-':>7s}"


def compare(paths, outputs, kind, tool):
    """parfit (from the starts) against ``tool`` on the tool's pixels: Cash no worse."""
    from parfit.status import Status

    model = paths.models[kind]
    rows = paths.sample if tool == "scipy" else paths.minuit_sample
    y = paths.y[rows]
    result = outputs[f"{kind}-cash-starts"]
    ours = cash_exact(model, paths.x, fitted_rows(result, model.param_names)[rows], y)
    ours_ok = np.asarray(result.status).reshape(-1)[rows] == Status.OK
    if tool == "scipy":
        params, nfev, success = outputs[f"scipy-{kind}"]
        extra = {"not_success": int((~success).sum()), "mean_nfev": float(nfev.mean())}
    else:
        theirs_result = outputs[f"minuit-{kind}"]
        params = fitted_rows(theirs_result, model.param_names)
        extra = {"not_ok": int((~np.asarray(theirs_result.success)).sum())}
    theirs = cash_exact(model, paths.x, params, y)
    inside = paths.cube.truth["amplitude_0"].reshape(-1)[rows] > 0
    worse = ~no_worse(ours, theirs)
    start = cash_exact(model, paths.x, paths.starts[kind][rows], y)
    return {
        "no_worse": _region_fraction(~worse, inside),
        "parfit_better": _region_fraction(better(ours, theirs), inside),
        "undefined_starts": int((~np.isfinite(start)).sum()),
        "their_cash_undefined": int((~np.isfinite(theirs)).sum()),
        "worse_parfit_not_ok": int((worse & ~ours_ok).sum()),
        "worse_parfit_ok": int((worse & ours_ok).sum()),
        **extra,
    }


def report(paths, times, cpu, cold, outputs):
    """Print the tables; return every figure as a dict."""
    names = list(times)
    n_fits = paths.y.shape[0]
    median = {k: statistics.median(t) for k, t in times.items()}
    rate = {k: _rate(paths.n_fits(k), median[k]) for k in names}
    cpu_rate = {k: _rate(paths.n_fits(k), statistics.median(cpu[k])) for k in names}
    out = {
        "n_fits": n_fits,
        "fits_per_s_median": rate,
        "fits_per_s_best": {k: _rate(paths.n_fits(k), min(t)) for k, t in times.items()},
        "fits_per_cpu_s_median": cpu_rate,
        "fits_per_s_cold": {k: _rate(n_fits, c["first_call_s"]) for k, c in cold.items()},
        "cold": cold,
    }
    labels = {"free": "free line", "fixed": "fixed shape"}

    print(f"\n== 1. Cash vs chi-square, parfit's default fitter, {n_fits} fits, initial='guess'")
    header = (
        f"{'model':12s} {'statistic':9s} {'cold':>7s} {'best':>7s} {'median':>7s} "
        f"{'per CPU-s':>9s} {'cash/chi2':>9s} {'(paired)':>8s} {'(CPU)':>6s}"
    )
    print(f"{'':22s} {'------------- fits/s -------------':>33s}")
    print(header + "\n" + "-" * len(header))
    out["cash_over_chi2"] = {}
    for kind in paths.models:
        for stat in ("chi2", "cash"):
            name = f"{kind}-{stat}"
            c = out["fits_per_s_cold"].get(name)
            ratios = ""
            if stat == "cash":
                chi2 = f"{kind}-chi2"
                r = {
                    "median": rate[name] / rate[chi2],
                    "paired": _paired(times, chi2, name),
                    "cpu": cpu_rate[name] / cpu_rate[chi2],
                }
                out["cash_over_chi2"][kind] = r
                ratios = f"{r['median']:9.2f} {r['paired']:8.2f} {r['cpu']:6.2f}"
            print(
                f"{labels[kind]:12s} {stat:9s} {_num(c, 7)} {out['fits_per_s_best'][name]:7.0f} "
                f"{rate[name]:7.0f} {cpu_rate[name]:9.0f} {ratios}"
            )
    if cold:
        imports = [c["import_s"] for c in cold.values()]
        print(
            f"cold = a fresh process's first parallel_fit call ({min(imports):.1f}-"
            f"{max(imports):.1f} s of import parfit not counted); median/best of the rounds; "
            f"cash/chi2 = Cash fits/s over chi-square's (median; paired: per round; CPU: per "
            f"CPU second)."
        )

    print(f"\n== 2./3. Per-fit tools, Cash, from the same starts (parfit on all {n_fits} pixels)")
    header = (
        f"{'model':12s} {'tool':17s} {'fits':>5s} {'fits/s':>7s} {'per CPU-s':>9s} "
        f"{'parfit x':>8s} {'(paired)':>8s} {'(CPU)':>6s}"
    )
    print(header + "\n" + "-" * len(header))
    out["parfit_over"] = {}
    for kind in paths.models:
        ours = f"{kind}-cash-starts"
        rows = [(ours, "parfit batched"), (f"scipy-{kind}", "scipy L-BFGS-B")]
        rows.append((f"minuit-{kind}", "fitter='minuit'"))
        for name, label in rows:
            if name not in times:
                continue
            r = {
                "median": rate[ours] / rate[name],
                # the tool's seconds per fit over parfit's, in each round
                "paired": statistics.median(
                    (a / paths.n_fits(name)) / (b / n_fits)
                    for a, b in zip(times[name], times[ours])
                ),
                "cpu": cpu_rate[ours] / cpu_rate[name],
            }
            if name != ours:
                out["parfit_over"][name] = r
            print(
                f"{labels[kind]:12s} {label:17s} {paths.n_fits(name):5d} {rate[name]:7.0f} "
                f"{cpu_rate[name]:9.0f} {r['median']:8.1f} {r['paired']:8.1f} {r['cpu']:6.1f}"
            )
    if not any(n.startswith("minuit") for n in times):
        print("iminuit is not installed: fitter='minuit' skipped.")
    print(
        "parfit x = parfit's fits/s over the tool's (median; paired: per round; CPU: per CPU "
        "second); scipy's pixels drawn at random, iminuit's the first of them."
    )

    print(f"\n   parfit's Cash no worse than the tool's (within {RTOL:g} relative), by region")
    header = (
        f"{'model':12s} {'against':7s} {'inside the disk':>17s} {'outside':>16s} {'all':>7s} "
        f"{'better':>7s}  notes"
    )
    print(header + "\n" + "-" * len(header))
    out["agreement"] = {}
    for kind in paths.models:
        for tool in ("scipy", "minuit"):
            if f"{tool}-{kind}" not in outputs:
                continue
            c = compare(paths, outputs, kind, tool)
            out["agreement"][f"{tool}-{kind}"] = c
            nw = c["no_worse"]
            notes = [f"{k}={v:g}" for k, v in c.items() if k not in ("no_worse", "parfit_better")]
            print(
                f"{labels[kind]:12s} {tool:7s} {_pct(nw['inside'])} of {nw['n_inside']:5d}  "
                f"{_pct(nw['outside'])} of {nw['n_outside']:5d} {_pct(nw['all'])} "
                f"{_pct(c['parfit_better']['all'])}  {', '.join(notes)}"
            )
    print(
        "better = parfit's Cash lower by more than the tolerance; undefined_starts: pixels whose "
        "Cash is undefined at the start (model <= 0 under counts); their_cash_undefined: the "
        "tool's fits ending there or failed; worse_parfit_not_ok / _ok: pixels where parfit is "
        "worse, its fit failed (NaN maps) or converged."
    )

    print(f"\n== 4. TS map and profile likelihood, fixed shape, Cash, {n_fits} fits")
    header = (
        f"{'run':34s} {'median s':>8s} {'fits/s':>7s} {'x plain':>7s} {'(paired)':>8s} "
        f"{'(CPU)':>6s}"
    )
    print(header + "\n" + "-" * len(header))
    out["cost_over_plain"] = {}
    for name, label in (
        ("fixed-cash", "plain Cash fit"),
        ("fixed-null", "+ null={'amplitude_0': 0.0} (TS)"),
        ("fixed-profile", "+ profile='amplitude_0'"),
    ):
        r = {
            "median": median[name] / median["fixed-cash"],
            "paired": _paired(times, name, "fixed-cash"),
            "cpu": cpu_rate["fixed-cash"] / cpu_rate[name],
        }
        out["cost_over_plain"][name] = r
        print(
            f"{label:34s} {median[name]:8.2f} {rate[name]:7.0f} {r['median']:7.2f} "
            f"{r['paired']:8.2f} {r['cpu']:6.2f}"
        )
    print("x plain = time of the run over the plain Cash fit's (> 1 costs more).")

    print("\nstatus and flags of the last round:")
    out["status"] = {}
    for name in names:
        if name.startswith("scipy"):
            continue
        result = outputs[name]
        status = {s.name: int(n) for s, n in result.status_counts().items()}
        flags = {f.name: int(n) for f, n in result.flag_counts().items()}
        out["status"][name] = {"status": status, "flags": flags}
        print(f"  {name:18s} {status}  flags {flags}  mean nfev {np.mean(result.nfev):.1f}")
    result = outputs["free-cash-starts"]
    model = paths.models["free"]
    own = np.asarray(result.statistic).reshape(-1)
    mine = cash_exact(model, paths.x, fitted_rows(result, model.param_names), paths.y)
    finite = np.isfinite(own) & np.isfinite(mine)
    out["max_rel_diff_statistic"] = float(
        np.max(np.abs(own[finite] - mine[finite]) / np.maximum(np.abs(mine[finite]), 1.0))
    )
    print(
        f"  result.statistic against this script's Cash of parfit's parameters (free line): "
        f"largest relative difference {out['max_rel_diff_statistic']:.1e}"
    )
    return out


def _num(value, width):
    return f"{value:{width}.0f}" if value is not None else f"{'-':>{width}s}"


# --- main --------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--shape", type=int, nargs=3, default=None, help="channels ny nx of the cube (60 64 64)"
    )
    ap.add_argument("--repeat", type=int, default=None, help="timed rounds after the warm-up (3)")
    ap.add_argument("--scipy-pixels", type=int, default=None, help="pixels scipy fits (300)")
    ap.add_argument(
        "--minuit-pixels", type=int, default=None, help="pixels iminuit fits (200, <= scipy's)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the cube and the sample (0)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold starts (subprocesses)")
    ap.add_argument(
        "--quick", action="store_true", help="a 30 x 10 x 10 cube, 1 round (smoke test)"
    )
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    ap.add_argument("--cold-path", choices=COLD_PATHS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    defaults = {"shape": (60, 64, 64), "repeat": 3, "scipy_pixels": 300, "minuit_pixels": 200}
    for key, value in (QUICK if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.cold_path:
        return cold_child(args)
    info = machine_info()
    info["iminuit"] = _version("iminuit")
    info["numba"] = _version("numba")
    info["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS")
    print("parfit likelihood benchmark: Cash vs chi-square, vs per-fit scipy and iminuit")
    for k, v in info.items():
        print(f"  {k:10s} {v}")
    print(
        f"  cube counts_cube({tuple(args.shape)}, seed={args.seed}); threads scheduler; "
        f"{args.repeat} round(s); scipy {args.scipy_pixels}, iminuit {args.minuit_pixels} pixels",
        flush=True,
    )
    load_before = loadavg()
    t_start = time.perf_counter()

    cold = {}
    if not args.no_cold:
        for name in COLD_PATHS:
            cold[name] = cold_start(name, args)
            print(
                f"  cold {name:12s} import {cold[name]['import_s']:.2f} s, first call "
                f"{cold[name]['first_call_s']:.2f} s",
                flush=True,
            )

    cube = make_cube(args.shape, args.seed)
    models = {"free": cube.model, "fixed": fixed_shape(cube.model)}
    n_fits = cube.data[0].size
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(n_fits, size=min(args.scipy_pixels, n_fits), replace=False)
    paths = Paths(cube, models, sample, min(args.minuit_pixels, len(sample)))
    names = list(paths.calls)
    paths.warm_up(names)

    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    outputs = {}
    for r in range(args.repeat):
        for name in names:
            c0, t0 = cpu_seconds(), time.perf_counter()
            outputs[name] = paths.calls[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
            print(
                f"  round {r + 1}/{args.repeat} {name:18s} {paths.n_fits(name):6d} fits "
                f"{times[name][-1]:8.2f} s wall {cpu[name][-1]:8.2f} s cpu (load {loadavg()})",
                flush=True,
            )

    out = report(paths, times, cpu, cold, outputs)
    info["loadavg_before"], info["loadavg_after"] = load_before, loadavg()
    info["total_s"] = time.perf_counter() - t_start
    print(
        f"\nload average before {info['loadavg_before']}, after {info['loadavg_after']}; "
        f"total {info['total_s']:.1f} s"
    )
    if args.json:
        payload = {"machine": info, "args": vars(args), "times": times, "cpu": cpu, **out}
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1, default=float)
        print(f"results written to {args.json}")
    return out


def _version(name):
    try:
        return __import__(name).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    main()
