#!/usr/bin/env python
"""Accuracy of parfit's default fitter against per-fit scipy TRF, on hard and real spectra.

For every kind of :func:`parfit.corpus.hard_corpus` (noise only, weak lines,
starts 10x off in amplitude or 3 widths off in position, narrow and wide
lines, baselines, blends of two and three lines, masked gaps, the same
spectra in units of 1e-26 ... 1e150) and for the three real crops of
``tests/data`` (Mopra HCN, MUSE [NII], Hinode/EIS Fe XII), this fits every
spectrum

1. with parfit's batched solver (``BatchedFitter()``, the default of
   ``parallel_fit``), all spectra of a kind as one block, and
2. with the oracle, :func:`parfit.corpus.trf_oracle`: one
   ``scipy.optimize.least_squares(method="trf")`` per spectrum, from the same
   start, with the same bounds and the model's analytic Jacobian,

and prints per kind: the number of fits, the fraction whose chi-square is no
worse than TRF's (within 1e-6 relative; the target is >= 99.5 %), the
fraction strictly better, the fractions OK for parfit and successful for
TRF, the OK fits with a non-finite error (must be 0), the number of fits
carrying each quality flag, and fits/s of both.  Fits/s are steady state:
each tool is first run once on the first ten spectra of the kind (cold
start: the first parfit call of the process compiles or loads the numba
kernel, shown separately).

Examples
--------
    python benchmarks/bench_accuracy.py                 # every kind, 300 spectra each
    python benchmarks/bench_accuracy.py --n 100 --kinds noise_only blend2
    python benchmarks/bench_accuracy.py --json accuracy.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import _common
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from parfit.corpus import KINDS, compare, fit_case, hard_corpus, trf_oracle  # noqa: E402


def _real_cases():
    from _real_cubes import REAL_CUBES, real_case

    return [real_case(name) for name in REAL_CUBES]


def _subset(case, n):
    """The first ``n`` spectra of ``case`` (for warming up)."""
    import dataclasses

    return dataclasses.replace(
        case,
        y=case.y[:n],
        p0=case.p0[:n],
        lower=case.lower[:n],
        upper=case.upper[:n],
        truth=case.truth[:n],
    )


def run_case(case):
    with np.errstate(all="ignore"):
        fit_case(_subset(case, 10))
        trf_oracle(_subset(case, 10))
        t0 = time.perf_counter()
        result = fit_case(case)
        t_parfit = time.perf_counter() - t0
        t0 = time.perf_counter()
        oracle = trf_oracle(case)
        t_trf = time.perf_counter() - t0
    figures = compare(case, result, oracle)
    figures["kind"] = case.kind
    figures["fits_per_s_parfit"] = case.n / t_parfit
    figures["fits_per_s_trf"] = case.n / t_trf
    return figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="spectra per corpus kind (300)")
    ap.add_argument(
        "--kinds",
        nargs="+",
        default=list(KINDS) + ["real"],
        help="corpus kinds, and 'real' for the three real crops (all)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = ap.parse_args(argv)

    info = _common.machine_info()
    print("parfit accuracy benchmark: batched solver vs per-fit scipy least_squares(trf)")
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        fit_case(hard_corpus("moderate", n=2))
    print(
        f"cold start (first batched fit of the process, numba kernel loaded or compiled): "
        f"{time.perf_counter() - t0:.2f} s"
    )

    cases = [hard_corpus(k, n=args.n, seed=args.seed) for k in args.kinds if k != "real"]
    if "real" in args.kinds:
        cases += _real_cases()
    rows = []
    header = (
        f"{'kind':15s} {'fits':>5s} {'no worse':>9s} {'better':>7s} {'OK':>6s} "
        f"{'TRF ok':>7s} {'OK+NaN err':>10s} {'AT_BOUND':>8s} {'SINGULAR':>8s} "
        f"{'DEGEN.':>6s} {'RETRIED':>7s} {'parfit/s':>9s} {'TRF/s':>7s} {'x TRF':>6s}"
    )
    print()
    print(header)
    print("-" * len(header))
    for case in cases:
        f = run_case(case)
        rows.append(f)
        fl = f["flags"]
        print(
            f"{f['kind']:15s} {f['n']:5d} {f['no_worse']:9.2%} {f['better']:7.2%} "
            f"{f['ok']:6.1%} {f['oracle_success']:7.1%} {f['ok_nonfinite_errors']:10d} "
            f"{fl['AT_BOUND']:8d} {fl['SINGULAR']:8d} {fl['DEGENERATE']:6d} "
            f"{fl['RETRIED']:7d} {f['fits_per_s_parfit']:9.0f} {f['fits_per_s_trf']:7.0f} "
            f"{f['fits_per_s_parfit'] / f['fits_per_s_trf']:6.0f}"
        )
    worst = min(rows, key=lambda r: r["no_worse"])
    print()
    print(
        f"worst kind: {worst['kind']} at {worst['no_worse']:.2%} no worse than TRF "
        f"(target >= 99.50%); OK fits with a non-finite error: "
        f"{sum(r['ok_nonfinite_errors'] for r in rows)} (target 0)"
    )
    print(f"total {time.perf_counter() - t0:.1f} s; load average {_common.loadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 0 if worst["no_worse"] >= 0.995 else 1


if __name__ == "__main__":
    sys.exit(main())
