"""Start-up cost of parfit: the first fit in a fresh process (issue 16).

Runs ``--runs`` fresh Python processes (``sys.executable -c ...``), each timing

* ``import numpy`` (not counted in the overhead),
* ``import parfit``,
* the first :func:`parfit.parallel_fit` of a small cube in memory
  (``parfit.datasets.gaussian_cube((53, 8, 8))``, ``world=cube.world``,
  default arguments),
* the same call again (warm),

and reports the median and minimum of each and of the *overhead*:
``import parfit + first call - second call``.  It does so with numba's
on-disk cache warm (the usual case), with it cold (``NUMBA_CACHE_DIR`` an
empty temporary folder: the first call after installing parfit compiles the
kernels), and for each with ``PARFIT_WARMUP=1`` (the default: numba and the
kernels load in a background thread started by ``import parfit``) and
``PARFIT_WARMUP=0``.  ``--gap S`` adds S seconds of other work (a busy
loop, as reading a file would be) between the import and the first fit, the
case the background warm-up is for.

Run from the repository root::

    python benchmarks/bench_coldstart.py                 # 7 runs per case (~1-2 min)
    python benchmarks/bench_coldstart.py --quick         # 2 runs per case
    python benchmarks/bench_coldstart.py --gap 0.3 --runs 9
    python benchmarks/bench_coldstart.py --json coldstart.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import parfit
t2 = time.perf_counter()
from parfit.datasets import gaussian_cube
cube = gaussian_cube((53, 8, 8), seed=0)
gap = float(sys.argv[1])
end = time.perf_counter() + gap
while time.perf_counter() < end:
    sum(range(1000))
t3 = time.perf_counter()
r = parfit.parallel_fit(cube.model, cube.data, world=cube.world)
t4 = time.perf_counter()
parfit.parallel_fit(cube.model, cube.data, world=cube.world)
t5 = time.perf_counter()
assert r.success.mean() > 0.9
print(json.dumps({"numpy": t1 - t0, "import": t2 - t1, "first": t4 - t3, "second": t5 - t4}))
"""

FIELDS = ("numpy", "import", "first", "second", "overhead")


def run_once(*, cold, warmup, gap):
    """One fresh process; a dict of seconds per field."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PARFIT_WARMUP"] = "1" if warmup else "0"
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(gap)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode:
        raise RuntimeError(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["overhead"] = out["import"] + out["first"] - out["second"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per case")
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="cold-cache runs per case (0: none)"
    )
    parser.add_argument("--quick", action="store_true", help="2 runs per case, 1 cold")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of work before the fit")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.cold_runs = 2, 1

    info = _common.machine_info()
    import numba

    info["numba"] = numba.__version__
    for key, value in info.items():
        print(f"{key:>10}: {value}")
    print(f"{'load':>10}: {_common.loadavg()}")
    print(f"cube (53, 8, 8), default arguments, gap {args.gap} s; seconds, median (min)\n")

    cases = [
        ("warm cache, warm-up on", False, True, args.runs),
        ("warm cache, warm-up off", False, False, args.runs),
        ("cold cache, warm-up on", True, True, args.cold_runs),
        ("cold cache, warm-up off", True, False, args.cold_runs),
    ]
    # A first run fills numba's own cache, so that "warm cache" is warm.
    run_once(cold=False, warmup=False, gap=0.0)
    results = {}
    header = f"{'case':<26}" + "".join(f"{f:>17}" for f in FIELDS)
    print(header)
    print("-" * len(header))
    for name, cold, warmup, n in cases:
        if n < 1:
            continue
        # Interleave nothing: each case's runs back to back, so a cold case
        # does not disturb a warm one's page cache.
        runs = [run_once(cold=cold, warmup=warmup, gap=args.gap) for _ in range(n)]
        row = {
            f: {
                "median": statistics.median(r[f] for r in runs),
                "min": min(r[f] for r in runs),
            }
            for f in FIELDS
        }
        results[name] = {"runs": runs, "summary": row}
        cells = "".join(f"{row[f]['median']:>9.3f} ({row[f]['min']:.3f})" for f in FIELDS)
        print(f"{name:<26}{cells}")
    print(f"\n{'load':>10}: {_common.loadavg()}")
    if args.json:
        payload = {"machine": info, "gap": args.gap, "cases": results}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
