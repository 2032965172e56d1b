"""Steady-state fits/s of ``parallel_fit`` in memory and streamed to a zarr store.

One Gaussian per pixel of ``gaussian_cube((53, 100, 100))`` (10,000 fits),
threads scheduler; each path is run ``--repeat`` times after one warm-up and
the best is printed as JSON.  ``--tree`` fits with the parfit of another source
tree (e.g. a ``git worktree`` of an older commit), to compare two versions
alternately on one machine::

    git worktree add /tmp/before <commit>
    python benchmarks/bench_streamed.py --tree /tmp/before
    python benchmarks/bench_streamed.py
"""

import argparse
import json
import shutil
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="source tree whose parfit to import")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, args.tree)
    import parfit
    from parfit.datasets import gaussian_cube

    cube = gaussian_cube((53, 100, 100), seed=0, noise=0.1)
    best = {}
    for label in ("memory", "store"):
        times = []
        for _ in range(args.repeat + 1):
            folder = tempfile.mkdtemp()
            kwargs = {"output": f"{folder}/maps.zarr"} if label == "store" else {}
            start = time.perf_counter()
            parfit.parallel_fit(
                cube.model, cube.data, world=cube.world, scheduler="threads", **kwargs
            )
            times.append(time.perf_counter() - start)
            shutil.rmtree(folder)
        best[label] = round(cube.data[0].size / min(times[1:]))
    print(json.dumps(dict(parfit=parfit.__file__, fits_per_s=best)))


if __name__ == "__main__":
    main()
