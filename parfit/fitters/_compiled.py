"""Compiled kernel of the batched trust-region reflective solver (numba).

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

from . import lm, trf

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
        Supplies the prepared data (``y``, ``w``, ``xs``, ``template``,
        ``free``, ``rms``, ``x_scale``).
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
    lower = np.ascontiguousarray(lower, dtype=np.float64)
    upper = np.ascontiguousarray(upper, dtype=np.float64)
    scale = trf.data_scale(problem.rms)
    state = trf.new_state(n_fits, n_free)
    out = state.outcome(scale)
    with np.errstate(all="ignore"):
        state.x[:] = trf.strictly_feasible(np.asarray(p0, dtype=np.float64), lower, upper)
    _fit_all(codes, offsets, signs, np.ascontiguousarray(problem.xs[0], dtype=np.float64),
             np.ascontiguousarray(problem.y), np.ascontiguousarray(problem.w, dtype=np.float64),
             np.ascontiguousarray(problem.template, dtype=np.float64),
             np.flatnonzero(problem.free).astype(np.int64), lower, upper, scale,
             problem.x_scale,
             float(options.ftol), float(options.xtol),
             trf.gradient_tolerance(options.gtol, problem.rms, scale),
             options.nfev_limit(n_free), float(options.factor), *state.arrays())
    state.finish(out, scale)
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
def _weighted(codes, offsets, signs, x, y, w, p, free_idx, scale, f, jfull, r, jac):
    """Scaled weighted residuals and Jacobian of the valid samples; their number.

    Returns ``(m, finite)``: rows ``[:m]`` of ``r`` and ``jac`` hold the samples
    of non-zero weight; ``finite`` is False where either is not finite.
    """
    _model_values(codes, offsets, signs, x, p, f, jfull)
    k = free_idx.shape[0]
    m = 0
    finite = True
    for j in range(y.shape[0]):
        wj = w[j]
        if wj == 0.0:
            continue
        ws = wj / scale
        r[m] = (f[j] - y[j]) * ws
        if not math.isfinite(r[m]):
            finite = False
        for q in range(k):
            jac[m, q] = jfull[j, free_idx[q]] * ws
            if not math.isfinite(jac[m, q]):
                finite = False
        m += 1
    return m, finite


@_jit
def _fit_all(codes, offsets, signs, x, y, w, template, free_idx, lower, upper, scale, xsc,
             ftol, xtol, gtol, max_nfev, factor, xs, x_new, step, step_h, g, d, diag_h, g_h,
             s, suf, rr, vv, sc, ic, work):
    """Every fit of the block, one after the other, with scipy's TRF steps (parfit.fitters.trf)."""
    n_fits, n_samples = y.shape
    k = free_idx.shape[0]
    n_par = template.shape[1]
    p = np.empty(n_par)
    f = np.empty(n_samples)
    jfull = np.zeros((n_samples, n_par))
    r = np.empty(n_samples)
    jac = np.empty((n_samples, max(k, 1)))
    for i in range(n_fits):
        xrow = x[0] if x.shape[0] == 1 else x[i]
        for q in range(n_par):
            p[q] = template[i, q]
        for q in range(k):
            p[free_idx[q]] = xs[i, q]
        m, finite = _weighted(codes, offsets, signs, xrow, y[i], w[i], p, free_idx, scale[i],
                              f, jfull, r, jac)
        ic[i, 3] = m
        if not finite:
            ic[i, 0] = 1
            ic[i, 2] = lm.BAD_START
            continue
        going = trf.begin_fit(i, r[:m], jac[:m, :k], xs, x_new, step, step_h, g, d, diag_h,
                              g_h, s, suf, rr, vv, sc, ic, work, lower, upper, xsc, gtol[i],
                              factor, max_nfev)
        while going:
            for q in range(k):
                p[free_idx[q]] = x_new[i, q]
            m, finite = _weighted(codes, offsets, signs, xrow, y[i], w[i], p, free_idx,
                                  scale[i], f, jfull, r, jac)
            cost = 0.0
            for j in range(m):
                cost += r[j] * r[j]
            if not finite:
                cost = math.inf
            taken = trf.judge_fit(i, 0.5 * cost, xs, step, sc, ic, ftol, xtol)
            if taken:
                trf.accept_fit(i, r[:m], jac[:m, :k], xs, x_new, g, rr, sc, ic, work)
            going = trf.continue_fit(i, taken, xs, x_new, step, step_h, g, d, diag_h, g_h, s,
                                     suf, rr, vv, sc, ic, work, lower, upper, xsc, max_nfev)
