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

    python benchmarks/bench_coldstart.py                 # 7 warm, 2 cold runs per case (~2 min)
    python benchmarks/bench_coldstart.py --quick         # 2 warm, 1 cold run per case
    python benchmarks/bench_coldstart.py --cold-runs 0   # the warm cache only (~20 s)
    python benchmarks/bench_coldstart.py --gap 0.5 --gap-kind sleep   # a script reading a file
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
c1 = time.process_time()
import parfit
t2 = time.perf_counter()
from parfit.datasets import gaussian_cube
cube = gaussian_cube((53, 8, 8), seed=0)
work, kind = int(sys.argv[1]), sys.argv[2]
if kind == "sleep":  # waiting for a disk or the network: the GIL is free
    time.sleep(work / 1e6)
else:  # a fixed amount of Python work (parsing a header, building a model)
    for _ in range(work):
        sum(range(100))
t3 = time.perf_counter()
r = parfit.parallel_fit(cube.model, cube.data, world=cube.world)
t4 = time.perf_counter()
c4 = time.process_time()
parfit.parallel_fit(cube.model, cube.data, world=cube.world)
t5 = time.perf_counter()
assert r.success.mean() > 0.9
print(json.dumps({"numpy": t1 - t0, "import": t2 - t1, "first": t4 - t3, "second": t5 - t4,
                  "between": t3 - t2,
                  "cpu": c4 - c1}))
"""

FIELDS = ("numpy", "import", "between", "first", "second", "overhead", "cpu")


def calibrate(gap):
    """Iterations of the child's busy loop that take ``gap`` seconds here."""
    import time

    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        sum(range(100))
    return max(1, round(n * gap / (time.perf_counter() - t0)))


def run_once(*, cold, warmup, work, kind, alone):
    """One fresh process; a dict of seconds per field."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PARFIT_WARMUP"] = "1" if warmup else "0"
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(work), kind],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode:
        raise RuntimeError(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # What the script waited for parfit: everything but the fit itself and
    # the work between import and fit, as long as that work takes alone.
    out["overhead"] = out["import"] + out["between"] - alone + out["first"] - out["second"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per case")
    parser.add_argument(
        "--cold-runs", type=int, default=2, help="cold-cache runs per case (0: none)"
    )
    parser.add_argument("--quick", action="store_true", help="2 runs per case, 1 cold")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds of work before the fit")
    parser.add_argument(
        "--gap-kind",
        choices=("busy", "sleep"),
        default="busy",
        help="the work: Python code (holds the GIL) or a wait (a file, the network)",
    )
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.cold_runs = 2, min(args.cold_runs, 1)

    info = _common.machine_info()
    import numba

    info["numba"] = numba.__version__
    for key, value in info.items():
        print(f"{key:>10}: {value}")
    print(f"{'load':>10}: {_common.loadavg()}")
    kind = args.gap_kind
    work = (round(args.gap * 1e6) if kind == "sleep" else calibrate(args.gap)) if args.gap else 0
    # The work between import and fit, alone: the cube's construction and the gap.
    alone = statistics.median(
        run_once(cold=False, warmup=False, work=work, kind=kind, alone=0.0)["between"]
        for _ in range(3)
    )
    print(
        f"cube (53, 8, 8), default arguments, {args.gap} s of {kind} work between import "
        f"and fit ({alone:.3f} s with the cube, in a process without warm-up, not counted)"
    )
    print("seconds, median (min)\n")

    cases = [
        ("warm cache, warm-up on", False, True, args.runs),
        ("warm cache, warm-up off", False, False, args.runs),
        ("cold cache, warm-up on", True, True, args.cold_runs),
        ("cold cache, warm-up off", True, False, args.cold_runs),
    ]
    # A first run fills numba's own cache, so that "warm cache" is warm.
    run_once(cold=False, warmup=False, work=0, kind="busy", alone=0.0)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in cases}
    # Interleaved, so that a change in the machine's load hits every case alike.
    for k in range(max(n for *_, n in cases)):
        for name, cold, warmup, n in cases:
            if k < n:
                runs[name].append(
                    run_once(cold=cold, warmup=warmup, work=work, kind=kind, alone=alone)
                )
    results = {}
    header = f"{'case':<26}" + "".join(f"{f:>16}" for f in FIELDS)
    print(header)
    print("-" * len(header))
    for name, *_ in cases:
        if not runs[name]:
            continue
        row = {
            f: {
                "median": statistics.median(r[f] for r in runs[name]),
                "min": min(r[f] for r in runs[name]),
            }
            for f in FIELDS
        }
        results[name] = {"runs": runs[name], "summary": row}
        cells = "".join(f"{row[f]['median']:>8.3f} ({row[f]['min']:.3f})" for f in FIELDS)
        print(f"{name:<26}{cells}")
    print(f"\n{'load':>10}: {_common.loadavg()}")
    if args.json:
        payload = {"machine": info, "gap": args.gap, "gap_kind": kind, "cases": results}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
