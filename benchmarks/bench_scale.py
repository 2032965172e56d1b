#!/usr/bin/env python
"""Scaling and memory: fits/s and peak memory from 1e4 to 1e6 fits, and an out-of-core cube.

Two parts (``--part``):

``scaling``
    One Gaussian per pixel, 53 channels, cubes of 1e4, 1e5 and 1e6 fits held
    in memory, fitted with ``parallel_fit(..., scheduler="threads")``.
    Prints wall time, fits/s (near-constant fits/s means linear scaling) and
    the peak resident memory of the process above its level before the fit,
    as a multiple of the cube's size.

``ooc``
    The out-of-core case of the durability issue: a float64 zarr cube of
    ``channels x size x size`` (default 256 x 1024 x 1024 = 2 GiB) written to
    disk in 64 x 64-pixel chunks, then fitted from its path on a
    ``LocalCluster`` of 2 worker processes (127.0.0.1, no dashboard) with
    ``output=`` a zarr store, so neither the cube nor the maps ever pass
    through the client.  A sampler thread sums the resident memory of the
    client and every process it started (scheduler, nannies, workers) ten
    times a second; the peak is printed against the 1.5 GiB budget.

Examples
--------
    python benchmarks/bench_scale.py                      # both parts, full size
    python benchmarks/bench_scale.py --part ooc --size 256 --channels 128   # quick
    python benchmarks/bench_scale.py --part scaling --max-fits 100000
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info  # noqa: E402

GIB = 2**30


class MemorySampler:
    """Peak summed RSS of this process and all its descendants."""

    def __init__(self, interval=0.1):
        import psutil

        self.root = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self):
        import psutil

        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.baseline = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def part_scaling(args):
    import parfit
    from parfit.datasets import gaussian_cube

    print("\n== scaling: one Gaussian, 53 channels, in memory, threads scheduler")
    print(f"{'fits':>9} {'wall s':>8} {'fits/s':>10} {'cube MiB':>9} {'peak MiB':>9} {'x cube':>7}")
    rows = []
    small = gaussian_cube((53, 4, 4), seed=0)
    parfit.parallel_fit(small.model, small.data, world=small.world, scheduler="threads")
    for n in (10_000, 100_000, 1_000_000):
        if n > args.max_fits:
            continue
        side = int(round(np.sqrt(n)))
        cube = gaussian_cube((53, side, n // side), seed=1)
        with MemorySampler() as mem:
            t0 = time.perf_counter()
            res = parfit.parallel_fit(cube.model, cube.data, world=cube.world, scheduler="threads")
            wall = time.perf_counter() - t0
        fits = res.n_fits
        cube_mib = cube.data.nbytes / 2**20
        extra = (mem.peak - mem.baseline) / 2**20
        rows.append((fits, wall, fits / wall, cube_mib, extra))
        print(
            f"{fits:9d} {wall:8.2f} {fits / wall:10.0f} {cube_mib:9.1f} {extra:9.1f} "
            f"{extra / cube_mib:7.2f}",
            flush=True,
        )
        del cube, res
    return rows


def write_cube(path, channels, size, seed=0, tile=64):
    """A zarr cube of one Gaussian line per pixel (plus noise), written tile by tile."""
    import zarr

    arr = zarr.create_array(
        str(path), shape=(channels, size, size), chunks=(channels, tile, tile), dtype="f8"
    )
    v = np.linspace(-50.0, 50.0, channels)
    rng = np.random.default_rng(seed)
    for y in range(0, size, tile):
        for x in range(0, size, tile):
            ny, nx = min(tile, size - y), min(tile, size - x)
            amp = rng.uniform(1, 3, (ny, nx))
            mean = rng.uniform(-15, 15, (ny, nx))
            sd = rng.uniform(3, 8, (ny, nx))
            block = amp * np.exp(-0.5 * ((v[:, None, None] - mean) / sd) ** 2)
            arr[:, y : y + ny, x : x + nx] = block + rng.normal(0, 0.1, block.shape)
    return v


def part_ooc(args):
    import distributed

    import parfit
    from parfit.models import Gaussian1D

    work = tempfile.mkdtemp(prefix="parfit-scale-", dir=args.workdir)
    cube_path = os.path.join(work, "cube.zarr")
    out_path = os.path.join(work, "maps.zarr")
    nbytes = args.channels * args.size * args.size * 8
    print(
        f"\n== out of core: {args.channels} x {args.size} x {args.size} float64 zarr cube "
        f"({nbytes / GIB:.2f} GiB) in {work}"
    )
    t0 = time.perf_counter()
    v = write_cube(cube_path, args.channels, args.size)
    print(f"  cube written in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=args.worker_memory,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            model = Gaussian1D(2.0, 0.0, 5.0)
            with MemorySampler() as mem:
                t0 = time.perf_counter()
                res = parfit.parallel_fit(
                    model,
                    cube_path,
                    world=(v,),
                    scheduler=client,
                    output=out_path,
                    chunk_n_max=args.chunk_n_max,
                )
                wall = time.perf_counter() - t0
            fits = res.n_fits
            ok = int(res.success.sum())
        print(f"  {fits} fits ({ok} OK) in {wall:.1f} s: {fits / wall:.0f} fits/s")
        print(
            f"  peak resident memory of all processes: {mem.peak / GIB:.2f} GiB "
            f"(before the fit {mem.baseline / GIB:.2f} GiB; budget 1.5 GiB: "
            f"{'met' if mem.peak < 1.5 * GIB else 'NOT met'})"
        )
        return dict(
            fits=fits,
            ok=ok,
            wall=wall,
            peak_gib=mem.peak / GIB,
            baseline_gib=mem.baseline / GIB,
            cube_gib=nbytes / GIB,
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("scaling", "ooc", "all"), default="all")
    ap.add_argument(
        "--max-fits",
        type=int,
        default=1_000_000,
        help="largest in-memory cube of the scaling part (1e6)",
    )
    ap.add_argument("--size", type=int, default=1024, help="pixels per side of the ooc cube")
    ap.add_argument("--channels", type=int, default=256, help="channels of the ooc cube")
    ap.add_argument("--chunk-n-max", type=int, default=500)
    ap.add_argument(
        "--worker-memory", default="1GiB", help="dask memory_limit of each of the 2 workers (1GiB)"
    )
    ap.add_argument("--workdir", default=None, help="where to write the cube (a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the cube and the maps")
    args = ap.parse_args(argv)
    info = machine_info()
    print("parfit scale benchmark")
    for key in ("date", "platform", "cpu_count", "python", "numpy", "dask", "parfit"):
        print(f"  {key:10s} {info.get(key)}")
    if args.part in ("scaling", "all"):
        part_scaling(args)
    if args.part in ("ooc", "all"):
        part_ooc(args)


if __name__ == "__main__":
    main()
