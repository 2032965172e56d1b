"""Steady-state fits/s of ``parallel_fit`` in memory, streamed to a store, and on a LocalCluster.

One Gaussian per pixel of ``gaussian_cube((53, 200, 200))`` (40,000 fits),
every path with **default arguments** (the automatic block size):

* ``memory``: the threads scheduler, maps assembled in memory;
* ``store``: the same with ``output=`` (a zarr store written block by block);
* ``cluster``: a ``distributed.LocalCluster`` on 127.0.0.1 (one worker
  process per core, one thread each), maps in memory;
* ``cluster_store``: the LocalCluster with ``output=``.

The paths take turns: one round to warm up (compilation, the cluster's
imports), then ``--repeat`` rounds.  Printed as JSON: each path's best and
median fits/s, its median's ratio to ``memory``'s, and the median over
rounds of the ratio within a round (``ratio_to_memory_paired``: on a shared
machine whose speed drifts, the steadiest figure).  ``--tree`` fits with the
parfit of another source tree (e.g. a ``git worktree`` of an older commit),
to compare two versions on one machine::

    python benchmarks/bench_streamed.py
    python benchmarks/bench_streamed.py --shape 53 100 100 --repeat 5
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="source tree whose parfit to import")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(53, 200, 200))
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster paths")
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, args.tree)
    import parfit
    from parfit.datasets import gaussian_cube

    cube = gaussian_cube(tuple(args.shape), seed=0, noise=0.1)
    n_fits = cube.data[0].size
    client = cluster = None
    paths = ["memory", "store"]
    if not args.no_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = Client(cluster)
        paths += ["cluster", "cluster_store"]
    times = {label: [] for label in paths}
    try:
        # Round robin, so that the machine's drift touches every path alike; the
        # first round warms every path up and is not counted.
        for _ in range(args.repeat + 1):
            for label in paths:
                folder = tempfile.mkdtemp()
                kwargs = {"scheduler": client if label.startswith("cluster") else "threads"}
                if label.endswith("store"):
                    kwargs["output"] = f"{folder}/maps.zarr"
                start = time.perf_counter()
                result = parfit.parallel_fit(cube.model, cube.data, world=cube.world, **kwargs)
                result.status_counts()  # a streamed result reads its maps when used
                times[label].append(time.perf_counter() - start)
                shutil.rmtree(folder)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    best = {label: round(n_fits / min(t[1:])) for label, t in times.items()}
    median = {label: round(n_fits / statistics.median(t[1:])) for label, t in times.items()}
    ratios = {label: round(value / median["memory"], 3) for label, value in median.items()}
    # Each round's time of ``memory`` over the path's, in the same round: the
    # machine's drift between rounds cancels out.
    paired = {
        label: round(statistics.median(m / x for m, x in zip(times["memory"][1:], t[1:])), 3)
        for label, t in times.items()
    }
    print(
        json.dumps(
            dict(
                parfit=parfit.__file__,
                shape=list(args.shape),
                cores=os.cpu_count(),
                fits_per_s_best=best,
                fits_per_s_median=median,
                ratio_to_memory_median=ratios,
                ratio_to_memory_paired=paired,
            )
        )
    )


if __name__ == "__main__":
    main()
