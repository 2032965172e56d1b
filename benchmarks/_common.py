"""Helpers shared by the benchmark scripts in this folder.

* :func:`machine_info`, :func:`loadavg`, :func:`cpu_seconds` - what ran where,
  and how much CPU it took;
* :func:`cramer_rao_sigma`, :func:`recovered_mask`, :func:`recovered_fraction`
  - the one recovery criterion every benchmark applies to every tool: a pixel
  is *recovered* when every free parameter is finite and within ``nsig``
  (3) Cramer-Rao sigma of the truth.

The scripts are run as ``python benchmarks/<script>.py``, so this folder is
first on ``sys.path`` and they ``import _common``.
"""

import datetime
import os
import platform
import resource
import sys

import numpy as np

__all__ = [
    "cpu_seconds",
    "cramer_rao_sigma",
    "loadavg",
    "machine_info",
    "recovered_fraction",
    "recovered_mask",
]


# --- machine and process ----------------------------------------------------------


def cpu_seconds():
    """CPU seconds (user + system) of this process and of its reaped children.

    dask's ``processes`` scheduler joins its worker processes at the end of
    every compute, so their CPU time shows up in ``RUSAGE_CHILDREN``; thread
    workers are in ``RUSAGE_SELF``.  CPU time is far less sensitive than wall
    time to other programs competing for the cores.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def loadavg():
    """The 1, 5 and 15 minute load averages as text, or None where unknown."""
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return None


def machine_info():
    """Platform, CPUs, memory, library versions and the UTC date, as a dict."""
    import astropy
    import dask
    import scipy

    import parfit

    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "astropy": astropy.__version__,
        "dask": dask.__version__,
        "parfit": getattr(parfit, "__version__", "?"),
    }
    try:
        import xarray

        info["xarray"] = xarray.__version__
    except ImportError:
        info["xarray"] = None
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        info["memory_gb"] = round(kb / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


# --- recovery of the known truth ----------------------------------------------------


def cramer_rao_sigma(model, world, truth, noise, *, batch=2048):
    """Expected 1-sigma error of each free parameter per pixel (Fisher matrix at truth).

    ``sigma_CR = sqrt(diag(inv(J^T J)) * noise)`` where ``J`` is
    ``model.jacobian`` at the true parameters on the cube's world
    coordinates (free parameters only).

    Parameters
    ----------
    model : parfit model
        The model the cube was made from; only its structure is used.
    world : tuple of ndarray
        World coordinates of the fitting axes, 1-D each (several axes are
        combined on an ``ij`` grid).
    truth : dict of str to ndarray
        True maps, one per name in ``model.param_names``.
    noise : float
        Standard deviation of the noise.
    batch : int
        Pixels per Jacobian evaluation (bounds the memory used).

    Returns
    -------
    dict of str to ndarray
        One map per free parameter, of the shape of the truth maps; NaN where
        the Fisher matrix is singular.
    """
    if len(world) == 1:
        xs = (np.asarray(world[0], dtype=np.float64).reshape(-1),)
    else:
        grids = np.meshgrid(*[np.asarray(w, dtype=np.float64) for w in world], indexing="ij")
        xs = tuple(g.reshape(-1) for g in grids)
    names = list(model.param_names)
    free = np.asarray(model.free_mask, dtype=bool)
    shape = np.shape(truth[names[0]])
    params = np.stack([np.broadcast_to(truth[n], shape).reshape(-1) for n in names], axis=1)
    n_free = int(free.sum())
    sig = np.full((params.shape[0], n_free), np.nan)
    for start in range(0, params.shape[0], batch):
        rows = params[start : start + batch]
        jac = model.jacobian(*xs, rows)[:, :, free]  # (n, samples, n_free)
        fisher = np.einsum("nci,ncj->nij", jac, jac) / noise**2
        with np.errstate(invalid="ignore"):
            try:
                cov = np.linalg.inv(fisher)
            except np.linalg.LinAlgError:
                cov = np.linalg.pinv(fisher)
            sig[start : start + batch] = np.sqrt(np.einsum("nii->ni", cov))
    free_names = [n for n, f in zip(names, free) if f]
    return {p: sig[:, k].reshape(shape) for k, p in enumerate(free_names)}


def recovered_mask(maps, truth, sigma, nsig=3.0):
    """True where every parameter of ``sigma`` is finite and within ``nsig`` sigma of truth."""
    ok = None
    for p, s in sigma.items():
        fitted = np.asarray(maps[p], dtype=float)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(fitted) & (np.abs(fitted - truth[p]) <= nsig * s)
        ok = good if ok is None else ok & good
    return ok


def recovered_fraction(maps, truth, sigma, region=None, nsig=3.0):
    """Fraction of the pixels (of ``region``, an index, if given) that are recovered."""
    ok = recovered_mask(maps, truth, sigma, nsig)
    if region is not None:
        ok = ok[region]
    return float(ok.mean()) if ok.size else float("nan")


def run_cold(script, name, args):
    """Run ``script --cold-path name args...`` in a fresh process; the JSON of its last line.

    The subprocess finds this tree's parfit first on its path, so that a cold
    start measures the code being benchmarked.  Raises RuntimeError with the
    child's output if it fails.
    """
    import json
    import os
    import subprocess
    import sys

    import parfit

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(parfit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, os.path.abspath(script), "--cold-path", name, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(f"cold start of {name} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
