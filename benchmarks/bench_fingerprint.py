"""Cost of the per-block input hash of streamed output (issue 11).

Fits one Gaussian per pixel of a ``(channels, ny, nx)`` cube (default 53 x
200 x 200) into a zarr store, and times, on the same machine:

* the fit into the store (which hashes every block's input as it reads it);
* hashing every block's input alone (what the fit spent on hashing);
* a resume onto the complete store, which re-reads and re-hashes the input
  of every recorded block before dispatching anything (numpy and dask
  input);
* the store verification (:func:`parfit.store.verify_store`).

Run from the repository root::

    python benchmarks/bench_fingerprint.py            # 53 x 200 x 200
    python benchmarks/bench_fingerprint.py --quick    # 53 x 50 x 50
"""

import argparse
import tempfile
import time
from pathlib import Path


def main(argv=None):
    import dask
    import dask.array as da
    import zarr

    import parfit
    from parfit import output
    from parfit.datasets import gaussian_cube

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 53 x 50 x 50 cube")
    parser.add_argument("--scheduler", default="threads")
    args = parser.parse_args(argv)
    shape = (53, 50, 50) if args.quick else (53, 200, 200)
    cube = gaussian_cube(shape, seed=0)
    work = Path(tempfile.mkdtemp())

    def fit(data, store, **kwargs):
        return parfit.parallel_fit(
            cube.model, data, world=cube.world, output=store, scheduler=args.scheduler, **kwargs
        )

    def timed(call):
        t0 = time.perf_counter()
        out = call()
        return out, time.perf_counter() - t0

    res, t_fit = timed(lambda: fit(cube.data, work / "numpy.zarr"))
    chunks = tuple(zarr.open_group(str(work / "numpy.zarr")).attrs["parfit"]["chunks"])
    lazy = da.from_array(cube.data, chunks=(shape[0],) + chunks)
    _, t_fit_lazy = timed(lambda: fit(lazy, work / "dask.zarr"))
    blocks = lazy.to_delayed().ravel()
    _, t_hash = timed(
        lambda: dask.compute(
            *[dask.delayed(output.hash_block)(b) for b in blocks], scheduler=args.scheduler
        )
    )
    again, t_resume = timed(lambda: fit(cube.data, work / "numpy.zarr", resume=True))
    assert again.meta["blocks_fitted"] == 0
    again, t_resume_lazy = timed(lambda: fit(lazy, work / "dask.zarr", resume=True))
    assert again.meta["blocks_fitted"] == 0
    report, t_verify = timed(lambda: output.verify_store(work / "numpy.zarr"))
    assert report.ok
    n = shape[1] * shape[2]
    print(
        f"cube {shape}, {n} fits in {len(blocks)} blocks of {chunks}, scheduler {args.scheduler!r}"
    )
    print(f"fit into the store (numpy):    {t_fit:8.3f} s")
    print(f"fit into the store (dask):     {t_fit_lazy:8.3f} s")
    print(
        f"hash every block's input:      {t_hash:8.3f} s  ({100 * t_hash / t_fit:.2f} % of the fit)"
    )
    print(f"resume, complete (numpy):      {t_resume:8.3f} s  (re-hash + verify + read)")
    print(f"resume, complete (dask):       {t_resume_lazy:8.3f} s")
    print(f"verify_store:                  {t_verify:8.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
