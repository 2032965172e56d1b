#!/usr/bin/env python
"""``parfit run`` from a config: time of a whole analysis by block size.

A config-driven run streams its maps to ``maps.zarr`` block by block, and
every block task opens the store and writes its part, so the number of
blocks matters more than for an in-memory fit.  This script writes the demo
cube (one Gaussian per pixel, ``channels x size x size``, FITS with a
velocity WCS) and runs the same analysis (``initial: guess``, threads,
diagnostics on errors) through :class:`parfit.analysis.Analysis` with
``run.chunk_n_max`` set to each value given, printing wall time, fits/s and
the ratio to the first setting.  ``auto`` is the config's default.

No peer tool appears here: astropy and xarray have no config-driven run;
``bench_throughput.py`` compares the fitting itself with them.

Examples
--------
    python benchmarks/bench_config_run.py                    # 256 x 256 x 60, 3 repeats
    python benchmarks/bench_config_run.py --quick            # a small smoke run
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _common


def run_once(folder, chunk_n_max):
    from parfit.analysis import Analysis

    out = folder / f"results-{chunk_n_max}"
    shutil.rmtree(out, ignore_errors=True)
    analysis = Analysis(
        {
            "input": {"path": "cube.fits", "fitting_axes": "spectral"},
            "model": {
                "components": [
                    {
                        "type": "Gaussian1D",
                        "amplitude": {"value": 2.0, "bounds": [0, None]},
                        "mean": {"value": "0 km/s", "bounds": ["-50 km/s", "50 km/s"]},
                        "stddev": {"value": "5 km/s", "bounds": ["0.1 km/s", "30 km/s"]},
                    }
                ],
                "initial": "guess",
            },
            "run": {"scheduler": "threads", "progress": False, "chunk_n_max": chunk_n_max},
            "output": {"path": out.name},
        },
        base_dir=folder,
    )
    start = time.perf_counter()
    analysis.run()
    wall = time.perf_counter() - start
    return wall, analysis.record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, default=60)
    parser.add_argument(
        "--chunk-n-max",
        nargs="+",
        default=["500", "2000", "auto"],
        help="settings to compare (the first is the reference)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per setting")
    parser.add_argument("--quick", action="store_true", help="64 x 64 pixels, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeat = 64, 1
    settings = [s if s == "auto" else int(s) for s in args.chunk_n_max]

    from parfit.datasets import gaussian_cube

    print(_common.machine_info())
    print(f"load average: {_common.loadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="parfit-bench-config-"))
    try:
        gaussian_cube((args.channels, args.size, args.size), seed=0, n_blank=8).to_fits(
            folder / "cube.fits"
        )
        run_once(folder, settings[-1])  # warm up: numba cache, imports
        rows = []
        for setting in settings:
            best, record = min(
                (run_once(folder, setting) for _ in range(args.repeat)), key=lambda r: r[0]
            )
            rows.append(
                (
                    setting,
                    record["chunk_n_max"],
                    record["blocks_fitted"],
                    best,
                    record["n_fits"],
                    record["status_counts"].get("OK", 0),
                )
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ref = rows[0][3]
    print(
        f"\n== parfit run, {args.size}x{args.size} pixels x {args.channels} channels, "
        f"best of {args.repeat}"
    )
    print(
        f"{'chunk_n_max':>12} {'block':>7} {'blocks':>7} {'wall s':>8} {'fits/s':>9} "
        f"{'x first':>8} {'OK':>7}"
    )
    for setting, size, blocks, wall, n_fits, ok in rows:
        print(
            f"{str(setting):>12} {size:>7} {blocks:>7} {wall:>8.2f} {n_fits / wall:>9.0f} "
            f"{ref / wall:>8.2f} {ok:>7}"
        )


if __name__ == "__main__":
    main()
