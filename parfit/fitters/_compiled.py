"""Compiled kernel of the batched Levenberg-Marquardt solver (numba).

The same algorithm as :mod:`parfit.fitters.lm`, step for step, written as
one fused loop per fit so that no intermediate array of the block is ever
built.  It covers models made of built-in 1-D components (Gaussian1D,
Lorentz1D, Const1D, Linear1D, Polynomial1D, PowerLaw1D) joined with ``+``
and ``-``, with fixed parameters and bounds but no ties; everything else
runs on the numpy solver.  The kernel releases the GIL, so dask's threaded
scheduler runs blocks truly in parallel.

Without numba, :data:`AVAILABLE` is False and :func:`solve` returns None:
parfit then uses the numpy solver, which gives the same answers, only
slower.
"""

import math

import numpy as np

from . import lm

try:  # numba is optional at run time; the numpy solver is the fallback
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["AVAILABLE", "solve", "unsupported_reason", "component_codes"]

#: True when numba is importable and the compiled kernel can run.
AVAILABLE = numba is not None

_GAUSSIAN, _LORENTZ, _CONST, _LINEAR, _POLY, _POWERLAW = range(6)


def component_codes(model):
    """The kernel's description of ``model``, or a reason why there is none.

    Returns
    -------
    tuple
        ``(codes, offsets, signs)`` int64/int64/float64 arrays, one entry per
        component, or ``(None, reason)`` when the model is not supported.

    Examples
    --------
    >>> from parfit.models import Gaussian1D, Linear1D
    >>> codes, offsets, signs = component_codes(Gaussian1D() + Gaussian1D() - Linear1D())
    >>> codes.tolist(), offsets.tolist(), signs.tolist()
    ([0, 0, 3], [0, 3, 6], [1.0, 1.0, -1.0])
    """
    from ..models import (Const1D, Gaussian1D, Linear1D, Lorentz1D, Polynomial1D,
                          PowerLaw1D)
    from ..models.compound import CompoundModel

    kinds = {Gaussian1D: _GAUSSIAN, Lorentz1D: _LORENTZ, Const1D: _CONST, Linear1D: _LINEAR,
             Polynomial1D: _POLY, PowerLaw1D: _POWERLAW}
    if any(getattr(model, n).tied for n in model.param_names):
        return None, "tied parameters are handled by the numpy solver"
    if isinstance(model, CompoundModel):
        leaves, signs = [], []

        def walk(node, sign):
            if isinstance(node, int):
                leaves.append(model._templates[node])
                signs.append(sign)
                return True
            op, left, right = node
            if op not in "+-":
                return False
            return walk(left, sign) and walk(right, -sign if op == "-" else sign)

        if not walk(model._tree, 1.0):
            return None, "only sums and differences of components are compiled"
    else:
        leaves, signs = [model], [1.0]
    codes, offsets = [], []
    offset = 0
    for leaf in leaves:
        code = kinds.get(type(leaf))
        if code is None:
            return None, f"{type(leaf).__name__} has no compiled form"
        codes.append(code)
        offsets.append(offset)
        offset += len(type(leaf).param_specs) if code != _POLY else leaf.degree + 1
    return (np.array(codes, dtype=np.int64), np.array(offsets, dtype=np.int64),
            np.array(signs, dtype=np.float64))


def unsupported_reason(model):
    """Why the compiled kernel cannot fit ``model`` (empty when it can)."""
    if not AVAILABLE:
        return "numba is not installed"
    described = component_codes(model)
    return described[1] if described[0] is None else ""


def solve(model, problem, p0, lower, upper, options, required=False):
    """Run the compiled kernel on ``problem``; None when it cannot be used.

    Parameters
    ----------
    model : parfit model
    problem : parfit.fitters.batched._ModelProblem
        Supplies the prepared data (``y``, ``w``, ``xs``, ``template``, ``free``).
    p0, lower, upper : ndarray
        ``(n_fits, n_free)``.
    options : parfit.fitters.lm.LMOptions
    required : bool
        Raise instead of returning None when the kernel cannot be used.

    Returns
    -------
    parfit.fitters.lm.LMOutcome or None
    """
    described = component_codes(model) if AVAILABLE else (None, "numba is not installed")
    if described[0] is None:
        if required:
            raise RuntimeError(f"the compiled kernel cannot fit this model: {described[1]}")
        return None
    codes, offsets, signs = described
    n_fits, n_free = p0.shape
    x = np.ascontiguousarray(problem.xs[0], dtype=np.float64)
    template = np.ascontiguousarray(problem.template, dtype=np.float64)
    free_idx = np.flatnonzero(problem.free).astype(np.int64)
    out = lm.LMOutcome(
        params=np.array(p0, dtype=np.float64),
        chi2=np.full(n_fits, np.nan),
        normal=np.zeros((n_fits, n_free, n_free)),
        nfev=np.ones(n_fits, dtype=np.int64),
        n_iter=np.zeros(n_fits, dtype=np.int64),
        reason=np.zeros(n_fits, dtype=np.int8),
    )
    _fit_all(codes, offsets, signs, x, np.ascontiguousarray(problem.y),
              np.ascontiguousarray(problem.w, dtype=np.float64), template, free_idx,
              np.ascontiguousarray(lower), np.ascontiguousarray(upper),
              float(options.ftol), float(options.xtol), float(options.gtol),
              options.nfev_limit(n_free), float(options.factor),
              out.params, out.chi2, out.normal, out.nfev, out.n_iter, out.reason)
    return out


# ----------------------------------------------------------------------------
# The kernel.  Compiled on first use and cached on disk by numba, so later
# processes (dask's process pool, cluster workers) load it in a fraction of
# a second.  Without numba these stay plain Python functions and are unused.

if AVAILABLE:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
else:  # pragma: no cover - exercised only without numba
    def _jit(func):
        return func


@_jit
def _model_values(codes, offsets, signs, x, p, f, jfull):
    """Model at every sample into f; derivatives (all parameters) into jfull."""
    m = x.shape[0]
    for j in range(m):
        f[j] = 0.0
    for c in range(codes.shape[0]):
        o = offsets[c]
        s = signs[c]
        code = codes[c]
        if code == 0:  # Gaussian1D(amplitude, mean, stddev)
            a, mean, sd = p[o], p[o + 1], p[o + 2]
            inv_var = 1.0 / sd**2
            for j in range(m):
                dx = x[j] - mean
                e = math.exp(-0.5 * dx**2 * inv_var)
                d_mean = a * e * dx * inv_var
                f[j] += s * (a * e)
                jfull[j, o] = s * e
                jfull[j, o + 1] = s * d_mean
                jfull[j, o + 2] = s * (d_mean * dx / sd)
        elif code == 1:  # Lorentz1D(amplitude, x_0, fwhm)
            a, x0, fw = p[o], p[o + 1], p[o + 2]
            gamma = fw / 2.0
            g2 = gamma**2
            for j in range(m):
                dx = x[j] - x0
                den = g2 + dx**2
                d_a = g2 / den
                f[j] += s * (a * d_a)
                jfull[j, o] = s * d_a
                jfull[j, o + 1] = s * (a * d_a * 2.0 * dx / den)
                jfull[j, o + 2] = s * (a * gamma * dx**2 / den**2)
        elif code == 2:  # Const1D(amplitude)
            for j in range(m):
                f[j] += s * p[o]
                jfull[j, o] = s
        elif code == 3:  # Linear1D(slope, intercept)
            for j in range(m):
                f[j] += s * (p[o] * x[j] + p[o + 1])
                jfull[j, o] = s * x[j]
                jfull[j, o + 1] = s
        elif code == 4:  # Polynomial1D(c0, ..., cd)
            n = (offsets[c + 1] if c + 1 < codes.shape[0] else p.shape[0]) - o
            for j in range(m):
                acc = 0.0
                power = 1.0
                for i in range(n):
                    acc += p[o + i] * power
                    jfull[j, o + i] = s * power
                    power *= x[j]
                f[j] += s * acc
        else:  # PowerLaw1D(amplitude, x_0, alpha)
            a, x0, al = p[o], p[o + 1], p[o + 2]
            for j in range(m):
                xx = x[j] / x0
                d_a = xx ** (-al)
                f[j] += s * (a * d_a)
                jfull[j, o] = s * d_a
                jfull[j, o + 1] = s * (a * al * d_a / x0)
                jfull[j, o + 2] = s * (-a * d_a * math.log(xx))

@_jit
def _residuals(codes, offsets, signs, x, y, w, p, free_idx, g, a, f, jfull):
    """Chi-square at ``p`` (inf if not finite); ``J^T r`` into g, ``J^T J`` into a."""
    k = free_idx.shape[0]
    _model_values(codes, offsets, signs, x, p, f, jfull)
    chi2 = 0.0
    for q in range(k):
        g[q] = 0.0
        for t in range(k):
            a[q, t] = 0.0
    jw = np.empty(k)
    for j in range(y.shape[0]):
        wj = w[j]
        if wj == 0.0:
            continue
        rj = (f[j] - y[j]) * wj
        chi2 += rj * rj
        for q in range(k):
            jw[q] = jfull[j, free_idx[q]] * wj
        for q in range(k):
            jq = jw[q]
            g[q] += jq * rj
            for t in range(q + 1):
                a[q, t] += jq * jw[t]
    for q in range(k):
        if not math.isfinite(g[q]):
            return math.inf
        for t in range(q + 1):
            if not math.isfinite(a[q, t]):
                return math.inf
            a[t, q] = a[q, t]
    if not math.isfinite(chi2):
        return math.inf
    return chi2

@_jit
def _fit_all(codes, offsets, signs, x, y, w, template, free_idx, lower, upper, ftol, xtol,
            gtol, max_nfev, factor, out_p, out_chi2, out_normal, out_nfev, out_niter,
            out_reason):
    n_fits = y.shape[0]
    k = free_idx.shape[0]
    n_par = template.shape[1]
    p = np.empty(n_par)
    f = np.empty(y.shape[1])
    jfull = np.zeros((y.shape[1], n_par))
    g = np.empty(k)
    a = np.empty((k, k))
    g_new = np.empty(k)
    a_new = np.empty((k, k))
    mat = np.empty((k, k))
    low = np.empty((k, k))
    h = np.empty(k)
    z = np.empty(k)
    xf = np.empty(k)
    x_new = np.empty(k)
    scale = np.empty(k)
    colnorm = np.empty(k)
    frozen = np.zeros(k, dtype=np.bool_)
    for i in range(n_fits):
        xrow = x[0] if x.shape[0] == 1 else x[i]
        for q in range(n_par):
            p[q] = template[i, q]
        for q in range(k):
            xf[q] = out_p[i, q]
            p[free_idx[q]] = xf[q]
        chi2 = _residuals(codes, offsets, signs, xrow, y[i], w[i], p, free_idx, g, a, f, jfull)
        nfev = 1
        n_iter = 0
        if not math.isfinite(chi2):
            out_reason[i] = 6
            out_nfev[i] = nfev
            continue
        # Initial scaling, damping and step bound.
        pn = 0.0
        for q in range(k):
            cn = math.sqrt(a[q, q])
            scale[q] = cn if cn > 0 else 1.0
            pn += (scale[q] * xf[q]) ** 2
        mu = 1e-3
        nu = 2.0
        pn = math.sqrt(pn)
        delta = factor * pn if pn > 0 else factor
        reason = 0
        while True:
            # Frozen parameters, gradient test.
            rnorm = math.sqrt(chi2)
            gnorm = 0.0
            for q in range(k):
                frozen[q] = (xf[q] <= lower[i, q] and g[q] > 0) or (
                    xf[q] >= upper[i, q] and g[q] < 0)
                colnorm[q] = math.sqrt(a[q, q])
                if not frozen[q] and colnorm[q] != 0:
                    gnorm = max(gnorm, abs(g[q]) / (colnorm[q] * rnorm))
            if gnorm <= gtol:
                reason = 3
            if chi2 == 0:
                reason = 4
            if reason:
                break
            # Damped system with frozen parameters removed; Cholesky solve.
            for q in range(k):
                scale[q] = max(scale[q], colnorm[q])
            for q in range(k):
                for t in range(k):
                    if frozen[q] or frozen[t]:
                        mat[q, t] = 1.0 if q == t else 0.0
                    else:
                        mat[q, t] = a[q, t] + (mu * scale[q] ** 2 if q == t else 0.0)
            solved = True
            for q in range(k):
                d = mat[q, q]
                for t in range(q):
                    d -= low[q, t] * low[q, t]
                if not d > 0:
                    solved = False
                    d = 1.0
                low[q, q] = math.sqrt(d)
                for t in range(q + 1, k):
                    s2 = mat[t, q]
                    for u in range(q):
                        s2 -= low[t, u] * low[q, u]
                    low[t, q] = s2 / low[q, q]
            for q in range(k):
                s2 = 0.0 if frozen[q] else -g[q]
                for t in range(q):
                    s2 -= low[q, t] * z[t]
                z[q] = s2 / low[q, q]
            for q in range(k - 1, -1, -1):
                s2 = z[q]
                for t in range(q + 1, k):
                    s2 -= low[t, q] * h[t]
                h[q] = s2 / low[q, q]
            for q in range(k):
                if not math.isfinite(h[q]):
                    solved = False
            hn = 0.0
            for q in range(k):
                if not solved:
                    h[q] = 0.0
                hn += (scale[q] * h[q]) ** 2
            hn = math.sqrt(hn)
            shrink = delta / hn if hn > delta else 1.0
            hn = 0.0
            for q in range(k):
                v = min(max(xf[q] + h[q] * shrink, lower[i, q]), upper[i, q])
                x_new[q] = v
                h[q] = v - xf[q]
                hn += (scale[q] * h[q]) ** 2
            hn = math.sqrt(hn)
            # Trial point.
            for q in range(k):
                p[free_idx[q]] = x_new[q]
            chi2_new = _residuals(codes, offsets, signs, xrow, y[i], w[i], p, free_idx,
                                 g_new, a_new, f, jfull)
            nfev += 1
            n_iter += 1
            if not solved:
                chi2_new = math.inf
            # Reduction predicted by the linear model: -(2 g.h + h.A.h).
            predicted = 0.0
            for q in range(k):
                ah = 0.0
                for t in range(k):
                    ah += a[q, t] * h[t]
                predicted -= h[q] * (2.0 * g[q] + ah)
            actual = chi2 - chi2_new
            rho = actual / predicted if predicted > 0 else -1.0
            accept = rho > 1e-4 and math.isfinite(chi2_new)
            if accept:
                mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                if rho > 0.75:
                    delta = max(delta, 2.0 * hn)
            else:
                mu *= nu
                nu *= 2.0
                delta = 0.5 * min(delta, hn)
            # Convergence tests.
            pn = 0.0
            for q in range(k):
                pn += (scale[q] * (x_new[q] if accept else xf[q])) ** 2
            pn = math.sqrt(pn)
            safe = chi2 if chi2 > 0 else 1.0
            rel_actual = actual / safe if math.isfinite(chi2_new) else -1.0
            if abs(rel_actual) <= ftol and predicted / safe <= ftol and rho <= 2.0:
                reason = 1
            elif (hn if accept else delta) <= xtol * (xtol + pn):
                reason = 2
            if accept:
                chi2 = chi2_new
                for q in range(k):
                    xf[q] = x_new[q]
                    g[q] = g_new[q]
                    for t in range(k):
                        a[q, t] = a_new[q, t]
            else:
                for q in range(k):
                    p[free_idx[q]] = xf[q]
            if reason == 0 and nfev >= max_nfev:
                reason = 5
            if reason:
                break
        for q in range(k):
            out_p[i, q] = xf[q]
            for t in range(k):
                out_normal[i, q, t] = a[q, t]
        out_chi2[i] = chi2
        out_nfev[i] = nfev
        out_niter[i] = n_iter
        out_reason[i] = reason
