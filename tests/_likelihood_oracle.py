"""An independent per-fit oracle for the Poisson likelihood: scipy's ``minimize``.

Not parfit's code path: the Cash statistic ``2 sum(mu - n ln mu)`` and its
gradient written out here, minimised by L-BFGS-B (restarted to reset its
memory) and polished by Nelder-Mead, from a given start.
"""

import numpy as np
from scipy.optimize import minimize

#: What the oracle's objective returns where the likelihood is undefined: a wall.
WALL = 1e12


def cash(model, x, y, params):
    """``2 sum(mu - n ln mu)`` of one fit, or inf where the model is not a valid mean."""
    mu = model.evaluate(x, params[None])[0]
    if np.any(mu < 0) or np.any((mu == 0) & (y > 0)) or not np.all(np.isfinite(mu)):
        return np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        logmu = np.where(y > 0, np.log(np.where(mu > 0, mu, 1.0)), 0.0)
    return float(2 * np.sum(mu - y * logmu))


def cash_minimum(model, x, y, p0, lower, upper):
    """``(statistic, parameters)`` of scipy's minimum of Cash from ``p0``; None if undefined there.

    ``lower`` and ``upper`` bound every parameter (``-inf``/``inf`` where
    none); the model's fixed and tied parameters stay as in ``p0``.
    """
    free = np.asarray(model.free_mask, dtype=bool)

    def full(pf):
        p = np.array(p0, dtype=float)
        p[free] = pf
        return p

    def fun(pf):
        p = full(pf)
        value = cash(model, x, y, p)
        if not np.isfinite(value):
            return WALL, np.zeros(int(free.sum()))
        mu = model.evaluate(x, p[None])[0]
        jac = model.jacobian(x, p[None])[0][:, free]
        ratio = np.where(y > 0, y / np.where(mu > 0, mu, 1.0), 0.0)
        return value, 2.0 * ((1.0 - ratio) @ jac)

    if fun(p0[free])[0] >= WALL:
        return None
    bounds = [
        (lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
        for lo, hi in zip(lower[free], upper[free])
    ]
    xk = np.array(p0, dtype=float)[free]
    for _ in range(2):
        best = minimize(
            fun,
            xk,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options=dict(ftol=1e-15, gtol=1e-12, maxiter=20000, maxfun=40000),
        )
        xk = best.x
    value = float(best.fun)
    polish = minimize(
        lambda v: fun(v)[0],
        xk,
        method="Nelder-Mead",
        options=dict(xatol=1e-10, fatol=1e-12, maxfev=1500),
    )
    inside = all(
        (lo is None or v >= lo) and (hi is None or v <= hi) for v, (lo, hi) in zip(polish.x, bounds)
    )
    if polish.fun < value and inside:
        xk, value = polish.x, float(polish.fun)
    return value, full(xk)
