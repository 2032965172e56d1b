"""The compiled kernel of the batched solver (numba): every loop that runs per sample or per step.

One module on purpose: numba caches each compiled function on disk and
checks only the file it is defined in, so code that calls across files
could run a stale copy after an upgrade.  Here live

* the per-fit steps of scipy's trust-region reflective method
  (:func:`begin_fit`, :func:`judge_fit`, :func:`accept_fit`,
  :func:`continue_fit` and their helpers), on state arrays indexed by fit;
* the loops over the active fits of a block that the batched driver of
  :mod:`parfit.fitters.trf` calls between evaluations of any model;
* the values and derivatives of the built-in 1-D components (Gaussian1D,
  Lorentz1D, Const1D, Linear1D, Polynomial1D, PowerLaw1D, and Voigt1D with
  its Faddeeva function :func:`faddeeva`) and 2-D components (Gaussian2D,
  CircularGaussian2D, Const2D), their products and quotients, and the fused
  loop that fits a whole block of such models without leaving compiled code
  (:func:`fit_all`, used by :mod:`parfit.fitters._compiled`).

Without numba the functions stay plain Python: same answers, much slower.

Examples
--------
The singular values of a small matrix (given by its columns, as rows):

>>> import numpy as np
>>> from parfit.fitters import _kernel
>>> columns = np.array([[3.0, 0.0, 1.0], [4.0, 5.0, 2.0]])
>>> s, v = np.empty(2), np.empty((2, 2))
>>> _kernel._jacobi_svd(columns.copy(), s, v)
>>> bool(np.allclose(s, np.linalg.svd(columns.T, compute_uv=False)))
True
"""

import math
from typing import Any

import numpy as np

from . import lm

try:  # numba is optional at run time; without it these run as plain Python
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]  # checked through AVAILABLE below

#: True when numba is importable and the kernel is compiled.
AVAILABLE = numba is not None

_EPS = float(np.finfo(float).eps)

if AVAILABLE:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
    # Sums over samples may be reordered (and so vectorised): the order of a
    # sum changes it only by rounding.
    _jit_sums = numba.njit(
        nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"}
    )
    # Inlined into its callers by numba itself: a call of it costs the hot loop
    # as much as several per cent (LLVM does not always inline across functions).
    _jit_inline = numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
else:  # pragma: no cover - exercised only without numba

    def _jit(func: Any) -> Any:
        return func

    _jit_sums = _jit
    _jit_inline = _jit

# exp(x) for x <= 0 in a form the loop vectoriser can use (numba calls libm's
# exp one sample at a time: without SVML it was about half of a Gaussian's
# evaluation).  x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor
# polynomial to degree 13 (truncation below 5e-18), times 2**n built from
# its exponent bits: within 1 ulp of libm (1e-16 relative), 0 below -708
# (where exp is below 3.4e-308) and NaN for NaN.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding and subtracting it rounds to an integer
_EXP_FLOOR = -708.0
#: The sign of a component evaluated on its own (see :func:`_tree_values`).
_PLUS = np.ones(1)

if AVAILABLE and not getattr(numba.config, "DISABLE_JIT", False):

    @numba.extending.intrinsic
    def _float_from_bits(typingctx: Any, bits: Any) -> Any:
        """The float64 whose bit pattern is the int64 ``bits`` (compiled only)."""
        signature = numba.types.float64(numba.types.int64)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(numba.types.float64))

        return signature, codegen

    @_jit_inline
    def _exp_neg(x: float) -> float:
        """``exp(x)`` for ``x <= 0`` (see above), vectorisable."""
        xc = x if x > _EXP_FLOOR else _EXP_FLOOR
        n = (xc * _LOG2E + _ROUND) - _ROUND
        r = (xc - n * _LN2_HI) - n * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        value = p * _float_from_bits((np.int64(n) + 1023) << 52)  # type: ignore[call-arg]  # an intrinsic: typingctx is numba's
        if x > _EXP_FLOOR:
            return value
        return 0.0 if x == x else x

else:  # pragma: no cover - exercised only without numba (or with NUMBA_DISABLE_JIT)
    _exp_neg = math.exp  # type: ignore[assignment]  # the same function, uncompiled

# Per-fit scalar state, columns of ``sc``.
_COST, _DELTA, _ALPHA, _THETA, _PRED, _STEPH, _STEPN, _GTOL, _SVD = range(9)
_N_SCALARS = 9
# Why a fit stopped (indices into lm.REASONS), as compile-time constants.
_FTOL, _XTOL, _GTOL_MET, _MAXFEV, _BAD_START = lm.FTOL, lm.XTOL, lm.GTOL, lm.MAXFEV, lm.BAD_START
# Per-fit integer state, columns of ``ic``: evaluations, iterations, why it
# stopped (lm.REASONS) and its number of valid samples (scipy's ``m``).
_NFEV, _NITER, _REASON, _M = range(4)


@_jit
def _begin_compiled(
    rows: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    x: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    gtol: np.ndarray,
    factor: float,
    max_nfev: int,
    keep: np.ndarray,
) -> None:
    k = x.shape[1]
    gm = np.empty(k)
    am = np.empty((k, k))
    for t in range(rows.shape[0]):
        cost = _moments(r[t], jt[t], r.shape[1], gm, am)
        keep[t] = begin_fit(
            rows[t],
            cost,
            gm,
            am,
            jt[t],
            r.shape[1],
            x,
            x_new,
            step,
            step_h,
            g,
            d,
            diag_h,
            g_h,
            s,
            suf,
            rr,
            vv,
            sc,
            ic,
            work,
            lower,
            upper,
            xsc,
            gtol[rows[t]],
            factor,
            max_nfev,
        )


@_jit
def _judge_compiled(
    rows: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray | None,
    x: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
    ftol: float,
    xtol: float,
    accepted: np.ndarray,
) -> None:
    """Judge each row's trial point; ``jt`` (or None, when the Jacobian comes later)
    makes a point where it is not finite no place to stand."""
    for t in range(rows.shape[0]):
        cost_new = 0.0
        for j in range(r.shape[1]):
            cost_new += r[t, j] * r[t, j]
        if jt is not None:
            for q in range(jt.shape[1]):
                for j in range(jt.shape[2]):
                    if not math.isfinite(jt[t, q, j]):
                        cost_new = math.inf
        accepted[t] = judge_fit(rows[t], 0.5 * cost_new, x, step, sc, ic, ftol, xtol)


@_jit
def _continue_compiled(
    rows: np.ndarray,
    accepted: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    x: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    max_nfev: int,
    keep: np.ndarray,
) -> None:
    k = x.shape[1]
    gm = np.empty(k)
    am = np.empty((k, k))
    for t in range(rows.shape[0]):
        i = rows[t]
        if accepted[t]:
            cost = _moments(r[t], jt[t], r.shape[1], gm, am)
            accept_fit(i, cost, gm, am, jt[t], r.shape[1], x, x_new, g, rr, sc, ic, work)
        keep[t] = continue_fit(
            i,
            accepted[t],
            x,
            x_new,
            step,
            step_h,
            g,
            d,
            diag_h,
            g_h,
            s,
            suf,
            rr,
            vv,
            sc,
            ic,
            work,
            lower,
            upper,
            xsc,
            max_nfev,
        )


@_jit_sums
def _moments(r: np.ndarray, jt: np.ndarray, m: int, gm: np.ndarray, am: np.ndarray) -> float:
    """``0.5 r.r`` (inf if ``r`` or ``jt`` is not finite); ``J^T r`` into ``gm``, ``J^T J`` into
    ``am``."""
    k = jt.shape[0]
    cost = 0.0
    for j in range(m):
        cost += r[j] * r[j]
    for q in range(k):
        rq = jt[q]
        acc = 0.0
        for j in range(m):
            acc += rq[j] * r[j]
        gm[q] = acc
        for t in range(q + 1):
            rt = jt[t]
            acc = 0.0
            for j in range(m):
                acc += rq[j] * rt[j]
            am[q, t] = acc
            am[t, q] = acc
    if not math.isfinite(cost):
        return math.inf
    for q in range(k):
        if not math.isfinite(gm[q]):
            return math.inf
        for t in range(k):
            if not math.isfinite(am[q, t]):
                return math.inf
    return 0.5 * cost


@_jit
def begin_fit(
    i: int,
    cost: float,
    gm: np.ndarray,
    am: np.ndarray,
    jt: np.ndarray,
    m: int,
    x: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    gtol: float,
    factor: float,
    max_nfev: int,
) -> bool:
    """Start fit ``i`` at ``x[i]``; True if it goes on.

    ``cost``, ``gm`` and ``am`` are ``0.5 r.r``, ``J^T r`` and ``J^T J`` there
    (``cost`` infinite where the model is not finite), ``jt[:, :m]`` the
    transposed Jacobian (overwritten).
    """
    k = x.shape[1]
    ic[i, _NFEV] = 1
    ic[i, _NITER] = 0
    ic[i, _REASON] = 0
    sc[i, _GTOL] = gtol
    if not math.isfinite(cost):
        ic[i, _REASON] = _BAD_START
        return False
    for q in range(k):
        x_new[i, q] = x[i, q]
    accept_fit(i, cost, gm, am, jt, m, x, x_new, g, rr, sc, ic, work)
    ic[i, _NITER] = 0
    # Initial radius: the norm of the start in the Coleman-Li scaled variables.
    delta = 0.0
    for q in range(k):
        v, dv = _cl_scaling(x[i, q], g[i, q], lower[i, q], upper[i, q])
        if dv != 0:
            v /= xsc[i, q]
        delta += (x[i, q] / xsc[i, q]) ** 2 / v
    delta = math.sqrt(delta)
    sc[i, _DELTA] = factor * (delta if delta > 0 else 1.0)
    sc[i, _ALPHA] = 0.0
    return continue_fit(
        i,
        True,
        x,
        x_new,
        step,
        step_h,
        g,
        d,
        diag_h,
        g_h,
        s,
        suf,
        rr,
        vv,
        sc,
        ic,
        work,
        lower,
        upper,
        xsc,
        max_nfev,
    )


@_jit
def accept_fit(
    i: int,
    cost: float,
    gm: np.ndarray,
    am: np.ndarray,
    jt: np.ndarray,
    m: int,
    x: np.ndarray,
    x_new: np.ndarray,
    g: np.ndarray,
    rr: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
) -> None:
    """Move fit ``i`` to ``x_new``, given ``0.5 r.r``, ``J^T r``, ``J^T J`` and ``J^T`` there.

    ``jt[:, :m]`` is overwritten.
    """
    k = x.shape[1]
    sc[i, _COST] = cost
    for q in range(k):
        x[i, q] = x_new[i, q]
        g[i, q] = gm[q]
    if not _cholesky_r(am, rr[i], work):
        _householder_r(jt, m, rr[i])
    ic[i, _NITER] += 1


@_jit
def _cholesky_r(am: np.ndarray, r: np.ndarray, work: np.ndarray) -> bool:
    """``r`` from the Cholesky factor of ``J^T J`` (``am``) when ``J`` is well conditioned.

    The factorisation is of the correlation matrix (columns scaled to unit
    norm), so its pivots measure the conditioning whatever the units of the
    parameters; below 1e-3 (a condition number above about 1e3) it returns
    False and the Householder QR is used instead, which keeps full precision.
    """
    k = am.shape[0]
    norms = work[work.shape[0] - 2]
    low = work[:k]
    for q in range(k):
        if not (am[q, q] > 0 and math.isfinite(am[q, q])):
            return False
        norms[q] = math.sqrt(am[q, q])
    for q in range(k):
        for t in range(q + 1):
            c = 1.0 if q == t else am[q, t] / (norms[q] * norms[t])
            for u in range(t):
                c -= low[q, u] * low[t, u]
            if q == t:
                if not c > 1e-6:
                    return False
                low[q, q] = math.sqrt(c)
            else:
                low[q, t] = c / low[t, t]
    for q in range(k):
        for t in range(k):
            r[q, t] = low[t, q] * norms[t] if t >= q else 0.0
    return True


@_jit
def judge_fit(
    i: int,
    cost_new: float,
    x: np.ndarray,
    step: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    ftol: float,
    xtol: float,
) -> bool:
    """Judge the trial point of fit ``i`` (cost ``cost_new``): True when it is taken."""
    ic[i, _NFEV] += 1
    delta = sc[i, _DELTA]
    step_h_norm = sc[i, _STEPH]
    if not math.isfinite(cost_new):
        sc[i, _DELTA] = 0.25 * step_h_norm
        return False
    actual = sc[i, _COST] - cost_new
    predicted = sc[i, _PRED]
    if predicted > 0:
        ratio = actual / predicted
    elif predicted == 0 and actual == 0:
        ratio = 1.0
    else:
        ratio = 0.0
    delta_new = delta
    if ratio < 0.25:
        delta_new = 0.25 * step_h_norm
    elif ratio > 0.75 and step_h_norm > 0.95 * delta:
        delta_new = 2.0 * delta
    x_norm = 0.0
    for q in range(x.shape[1]):
        x_norm += x[i, q] ** 2
    x_norm = math.sqrt(x_norm)
    ftol_met = actual < ftol * sc[i, _COST] and ratio > 0.25
    xtol_met = sc[i, _STEPN] < xtol * (xtol + x_norm)
    if ftol_met:
        ic[i, _REASON] = _FTOL
    elif xtol_met:
        ic[i, _REASON] = _XTOL
    else:
        sc[i, _ALPHA] *= delta / delta_new
        sc[i, _DELTA] = delta_new
    return actual > 0


@_jit
def continue_fit(
    i: int,
    moved: bool,
    x: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
    max_nfev: int,
) -> bool:
    """The next trial point of fit ``i`` into ``x_new``; False when the fit is done."""
    if ic[i, _REASON] != 0:
        return False
    k = x.shape[1]
    if moved:
        # A new point: Coleman-Li scaling, gradient test, factorisation.
        g_norm = _factor(i, x, g, d, diag_h, g_h, s, suf, rr, vv, sc, work, lower, upper, xsc)
        if g_norm < sc[i, _GTOL] or k == 0:
            ic[i, _REASON] = _GTOL_MET
            return False
        sc[i, _THETA] = max(0.995, 1.0 - g_norm)
    if ic[i, _NFEV] >= max_nfev:
        ic[i, _REASON] = _MAXFEV
        return False
    gauss_newton = False
    if sc[i, _SVD] == 0:
        # vv[i] holds the triangular factor of the augmented matrix: when it is
        # clearly of full rank and its Gauss-Newton step fits in the trust
        # region, that is scipy's step (Moré returns it without iterating).
        if ic[i, _M] >= k and _well_conditioned(i, vv):
            gauss_newton = _gauss_newton(i, vv, g_h, step_h) <= sc[i, _DELTA]
        if gauss_newton:
            sc[i, _ALPHA] = 0.0
        else:
            _svd(i, vv, s, suf, g_h, work)
            sc[i, _SVD] = 1.0
    if not gauss_newton:
        sc[i, _ALPHA] = _more(
            s[i], suf[i], vv[i], sc[i, _DELTA], sc[i, _ALPHA], step_h[i], ic[i, _M], work
        )
    for q in range(k):
        step[i, q] = d[i, q] * step_h[i, q]
    if _inside(i, x, step, lower, upper):  # the common case, without taking row views
        sc[i, _PRED] = -_quadratic_at(i, rr, d, diag_h, g_h, step_h)
    else:
        sc[i, _PRED] = _select_step(
            x[i],
            step[i],
            step_h[i],
            d[i],
            diag_h[i],
            g_h[i],
            rr[i],
            sc[i, _DELTA],
            lower[i],
            upper[i],
            sc[i, _THETA],
            work,
        )
    hn = 0.0
    sn = 0.0
    for q in range(k):
        hn += step_h[i, q] ** 2
        sn += step[i, q] ** 2
        x_new[i, q] = x[i, q] + step[i, q]
    sc[i, _STEPH] = math.sqrt(hn)
    sc[i, _STEPN] = math.sqrt(sn)
    for q in range(k):  # scipy's make_strictly_feasible(rstep=0)
        lo, hi = lower[i, q], upper[i, q]
        if x_new[i, q] <= lo:
            x_new[i, q] = np.nextafter(lo, hi)
        elif x_new[i, q] >= hi:
            x_new[i, q] = np.nextafter(hi, lo)
        if x_new[i, q] < lo or x_new[i, q] > hi:
            x_new[i, q] = 0.5 * (lo + hi)
    return True


@_jit
def _cl_scaling(x: float, g: float, lo: float, hi: float) -> tuple[float, float]:
    """Coleman-Li scaling ``v`` and its derivative ``dv`` for one parameter."""
    if g < 0 and math.isfinite(hi):
        return hi - x, -1.0
    if g > 0 and math.isfinite(lo):
        return x - lo, 1.0
    return 1.0, 0.0


@_jit
def _factor(
    i: int,
    x: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    work: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    xsc: np.ndarray,
) -> float:
    """Scaling at ``x[i]`` and the factor of the augmented scaled Jacobian; the gradient norm."""
    k = x.shape[1]
    g_norm = 0.0
    for q in range(k):
        v, dv = _cl_scaling(x[i, q], g[i, q], lower[i, q], upper[i, q])
        g_norm = max(g_norm, abs(g[i, q] * v))
        if dv != 0:
            v /= xsc[i, q]
        d[i, q] = math.sqrt(v) * xsc[i, q]
        diag_h[i, q] = g[i, q] * dv * xsc[i, q]
        g_h[i, q] = d[i, q] * g[i, q]
    # The triangular factor of the augmented matrix [R d; diag(sqrt(diag_h))]
    # into vv[i]: R d, with each diagonal row rotated in (Givens).  Indexed in
    # place, the rotated row in the last row of ``work``.
    e = work.shape[0] - 1
    for row in range(k):
        for c in range(k):
            vv[i, row, c] = rr[i, row, c] * d[i, c] if c >= row else 0.0
    for q in range(k):
        if diag_h[i, q] == 0.0:
            continue
        for c in range(k):
            work[e, c] = 0.0
        work[e, q] = math.sqrt(diag_h[i, q])
        for c in range(q, k):
            b = work[e, c]
            if b == 0.0:
                continue
            a = vv[i, c, c]
            rad = math.sqrt(a * a + b * b)
            cs = a / rad
            sn = b / rad
            for j in range(c, k):
                t1 = vv[i, c, j]
                t2 = work[e, j]
                vv[i, c, j] = cs * t1 + sn * t2
                work[e, j] = cs * t2 - sn * t1
    sc[i, _SVD] = 0.0
    return g_norm


@_jit
def _svd(
    i: int, vv: np.ndarray, s: np.ndarray, suf: np.ndarray, g_h: np.ndarray, work: np.ndarray
) -> None:
    """SVD of the triangular factor in ``vv[i]``: ``s[i]``, ``V`` into ``vv[i]``, ``suf[i]``."""
    k = s.shape[1]
    bt = work[:k]
    for c in range(k):
        for row in range(k):
            bt[c, row] = vv[i, row, c]
    _jacobi_svd(bt, s[i], vv[i])
    for q in range(k):
        acc = 0.0
        for t in range(k):
            acc += vv[i, t, q] * g_h[i, t]
        suf[i, q] = acc


@_jit
def _well_conditioned(i: int, vv: np.ndarray) -> bool:
    """True when the diagonal of the triangle ``vv[i]`` leaves no doubt that it is of full rank."""
    k = vv.shape[1]
    big = 0.0
    small = math.inf
    for q in range(k):
        a = abs(vv[i, q, q])
        if not math.isfinite(a):
            return False
        big = max(big, a)
        small = min(small, a)
    return k > 0 and small > 1e-7 * big


@_jit
def _gauss_newton(i: int, vv: np.ndarray, g_h: np.ndarray, p_h: np.ndarray) -> float:
    """``p_h[i] = -(R2^T R2)^-1 g_h[i]`` with ``R2 = vv[i]``, two triangular solves; its norm.

    Indexed in place (no row views: each costs a reference count).
    """
    k = vv.shape[1]
    for q in range(k):  # R2^T z = -g_h
        acc = -g_h[i, q]
        for t in range(q):
            acc -= vv[i, t, q] * p_h[i, t]
        p_h[i, q] = acc / vv[i, q, q]
    norm = 0.0
    for q in range(k - 1, -1, -1):  # R2 p = z
        acc = p_h[i, q]
        for t in range(q + 1, k):
            acc -= vv[i, q, t] * p_h[i, t]
        p_h[i, q] = acc / vv[i, q, q]
        norm += p_h[i, q] * p_h[i, q]
    return math.sqrt(norm)


@_jit
def _inside(i: int, x: np.ndarray, step: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> bool:
    """True when ``x[i] + step[i]`` is inside the bounds (scipy's in_bounds)."""
    for q in range(x.shape[1]):
        y = x[i, q] + step[i, q]
        if not (lower[i, q] <= y <= upper[i, q]):
            return False
    return True


@_jit
def _quadratic_at(
    i: int, rr: np.ndarray, d: np.ndarray, diag_h: np.ndarray, g_h: np.ndarray, step_h: np.ndarray
) -> float:
    """:func:`_quadratic` of fit ``i``'s step, indexed in place."""
    k = d.shape[1]
    q_val = 0.0
    lin = 0.0
    for row in range(k):
        acc = 0.0
        for c in range(row, k):
            acc += rr[i, row, c] * d[i, c] * step_h[i, c]
        q_val += acc * acc
    for c in range(k):
        q_val += diag_h[i, c] * step_h[i, c] * step_h[i, c]
        lin += step_h[i, c] * g_h[i, c]
    return 0.5 * q_val + lin


@_jit
def _householder_r(at: np.ndarray, rows: int, r: np.ndarray) -> None:
    """Triangular factor ``r`` (k x k) of the QR factorisation of ``at[:, :rows].T``.

    ``at`` is the transposed Jacobian ``(k, >= rows)``, so that each column
    of the Jacobian is contiguous in memory; it is overwritten.
    """
    k = at.shape[0]
    for q in range(k):
        for c in range(k):
            r[q, c] = 0.0
    for q in range(min(k, rows)):
        col = at[q]
        norm = 0.0
        for t in range(q, rows):
            norm += col[t] * col[t]
        norm = math.sqrt(norm)
        if norm == 0.0:
            for c in range(q + 1, k):
                r[q, c] = at[c, q]
            continue
        alpha = -norm if col[q] >= 0 else norm
        col[q] -= alpha
        vv = 0.0
        for t in range(q, rows):
            vv += col[t] * col[t]
        for c in range(q + 1, k):
            other = at[c]
            dot = 0.0
            for t in range(q, rows):
                dot += col[t] * other[t]
            f = 2.0 * dot / vv
            for t in range(q, rows):
                other[t] -= f * col[t]
        r[q, q] = alpha
        for c in range(q + 1, k):
            r[q, c] = at[c, q]


@_jit
def _jacobi_svd(bt: np.ndarray, s: np.ndarray, v: np.ndarray) -> None:
    """Singular values (descending) into ``s`` and right vectors into ``v`` of ``bt.T``.

    One-sided Jacobi (Hestenes): rotate column pairs until they are
    orthogonal; singular values are then the column norms.  ``bt`` holds
    the columns as rows ``(k, rows)`` and is destroyed.
    """
    k, rows = bt.shape
    for p in range(k):
        for q in range(k):
            v[p, q] = 1.0 if p == q else 0.0
    for _sweep in range(60):
        rotated = False
        for p in range(k - 1):
            cp = bt[p]
            for q in range(p + 1, k):
                cq = bt[q]
                alpha = 0.0
                beta = 0.0
                gamma = 0.0
                for t in range(rows):
                    alpha += cp[t] * cp[t]
                    beta += cq[t] * cq[t]
                    gamma += cp[t] * cq[t]
                if gamma == 0.0 or abs(gamma) <= 1e-15 * math.sqrt(alpha * beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gamma)
                if abs(zeta) < 1e150:
                    tan = math.copysign(1.0, zeta) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                else:
                    tan = 0.5 / zeta
                cos = 1.0 / math.sqrt(1.0 + tan * tan)
                sin = cos * tan
                for t in range(rows):
                    bp = cp[t]
                    bq = cq[t]
                    cp[t] = cos * bp - sin * bq
                    cq[t] = sin * bp + cos * bq
                for t in range(k):
                    vp = v[t, p]
                    vq = v[t, q]
                    v[t, p] = cos * vp - sin * vq
                    v[t, q] = sin * vp + cos * vq
        if not rotated:
            break
    for q in range(k):
        acc = 0.0
        for t in range(rows):
            acc += bt[q, t] * bt[q, t]
        s[q] = math.sqrt(acc)
    for p in range(k):  # sort descending, columns of v along
        best = p
        for q in range(p + 1, k):
            if s[q] > s[best]:
                best = q
        if best != p:
            s[p], s[best] = s[best], s[p]
            for t in range(k):
                v[t, p], v[t, best] = v[t, best], v[t, p]


@_jit
def _more(
    s: np.ndarray,
    suf: np.ndarray,
    v: np.ndarray,
    delta: float,
    alpha: float,
    p_h: np.ndarray,
    m: int,
    work: np.ndarray,
) -> float:
    """Moré's trust-region step ``p_h`` from the SVD; returns the new ``alpha`` (scipy's)."""
    k = s.shape[0]
    coef = work[work.shape[0] - 1]
    full_rank = m >= k and k > 0 and s[k - 1] > _EPS * m * s[0]
    if full_rank:
        for q in range(k):
            coef[q] = suf[q] / s[q] ** 2
        norm = _v_times(v, coef, p_h, -1.0)
        if norm <= delta:
            return 0.0
    alpha_upper = 0.0
    for q in range(k):
        alpha_upper += suf[q] ** 2
    alpha_upper = math.sqrt(alpha_upper) / delta
    alpha_lower = 0.0
    if full_rank:
        phi, phi_prime = _phi(0.0, suf, s, delta)
        alpha_lower = -phi / phi_prime
    if not full_rank and alpha == 0:
        alpha = max(0.001 * alpha_upper, math.sqrt(alpha_lower * alpha_upper))
    for _it in range(10):
        if alpha < alpha_lower or alpha > alpha_upper:
            alpha = max(0.001 * alpha_upper, math.sqrt(alpha_lower * alpha_upper))
        phi, phi_prime = _phi(alpha, suf, s, delta)
        if phi < 0:
            alpha_upper = alpha
        ratio = phi / phi_prime
        alpha_lower = max(alpha_lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if abs(phi) < 0.01 * delta:
            break
    for q in range(k):
        coef[q] = suf[q] / (s[q] ** 2 + alpha)
    norm = _v_times(v, coef, p_h, -1.0)
    if norm > 0:
        for q in range(k):
            p_h[q] *= delta / norm
    return alpha


@_jit
def _phi(alpha: float, suf: np.ndarray, s: np.ndarray, delta: float) -> tuple[float, float]:
    """Moré's ``phi(alpha) = ||p(alpha)|| - delta`` and its derivative."""
    norm = 0.0
    der = 0.0
    for q in range(s.shape[0]):
        den = s[q] ** 2 + alpha
        norm += (suf[q] / den) ** 2
        der += suf[q] ** 2 / den**3
    norm = math.sqrt(norm)
    return norm - delta, -der / norm


@_jit
def _v_times(v: np.ndarray, coef: np.ndarray, out: np.ndarray, sign: float) -> float:
    """``out = sign * v @ coef``; returns its norm."""
    k = coef.shape[0]
    norm = 0.0
    for t in range(k):
        acc = 0.0
        for q in range(k):
            acc += v[t, q] * coef[q]
        out[t] = sign * acc
        norm += acc * acc
    return math.sqrt(norm)


@_jit
def _jh(r: np.ndarray, d: np.ndarray, sv: np.ndarray, out: np.ndarray) -> None:
    """``out = J_h @ sv`` up to an orthogonal factor: ``R @ (d * sv)``."""
    k = sv.shape[0]
    for row in range(k):
        acc = 0.0
        for c in range(row, k):
            acc += r[row, c] * d[c] * sv[c]
        out[row] = acc


@_jit
def _quadratic(
    r: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    sv: np.ndarray,
    tmp: np.ndarray,
) -> float:
    """``0.5 sv.(J_h^T J_h + diag_h) sv + g_h.sv`` (scipy's evaluate_quadratic)."""
    _jh(r, d, sv, tmp)
    q = 0.0
    lin = 0.0
    for c in range(sv.shape[0]):
        q += tmp[c] * tmp[c] + diag_h[c] * sv[c] * sv[c]
        lin += sv[c] * g_h[c]
    return 0.5 * q + lin


@_jit
def _line_quadratic(
    r: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    sv: np.ndarray,
    s0: np.ndarray,
    tmp: np.ndarray,
    tmp0: np.ndarray,
    with_s0: bool,
) -> tuple[float, float, float]:
    """Coefficients of the quadratic along ``s0 + t sv`` (scipy's build_quadratic_1d)."""
    _jh(r, d, sv, tmp)
    a = 0.0
    b = 0.0
    c = 0.0
    for q in range(sv.shape[0]):
        a += tmp[q] * tmp[q] + sv[q] * diag_h[q] * sv[q]
        b += g_h[q] * sv[q]
    a *= 0.5
    if with_s0:
        _jh(r, d, s0, tmp0)
        for q in range(sv.shape[0]):
            b += tmp0[q] * tmp[q] + s0[q] * diag_h[q] * sv[q]
            c += 0.5 * tmp0[q] * tmp0[q] + g_h[q] * s0[q] + 0.5 * s0[q] * diag_h[q] * s0[q]
    return a, b, c


@_jit
def _min_line(a: float, b: float, lo: float, hi: float, c: float) -> tuple[float, float]:
    """Minimum of ``a t**2 + b t + c`` on ``[lo, hi]`` (scipy's minimize_quadratic_1d)."""
    best_t = lo
    best = lo * (a * lo + b) + c
    y = hi * (a * hi + b) + c
    if y < best:
        best_t, best = hi, y
    if a != 0:
        ext = -0.5 * b / a
        if lo < ext < hi:
            y = ext * (a * ext + b) + c
            if y < best:
                best_t, best = ext, y
    return best_t, best


@_jit
def _to_bound(
    xv: np.ndarray, sv: np.ndarray, lo: np.ndarray, hi: np.ndarray, hits: np.ndarray
) -> float:
    """Step along ``sv`` from ``xv`` to the nearest bound, and which bounds it hits."""
    k = xv.shape[0]
    best = math.inf
    for q in range(k):
        if sv[q] != 0:
            t = max((lo[q] - xv[q]) / sv[q], (hi[q] - xv[q]) / sv[q])
            best = min(best, t)
    for q in range(k):
        hits[q] = 0.0
        if sv[q] != 0:
            t = max((lo[q] - xv[q]) / sv[q], (hi[q] - xv[q]) / sv[q])
            if t == best:
                hits[q] = 1.0
    return best


@_jit
def _select_step(
    xv: np.ndarray,
    p: np.ndarray,
    p_h: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    r: np.ndarray,
    delta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    theta: float,
    work: np.ndarray,
) -> float:
    """scipy's TRF ``select_step`` for a step that leaves the box (``continue_fit`` takes the
    others as they are): the step (into ``p``, ``p_h``) and its predicted reduction."""
    k = xv.shape[0]
    base = work.shape[0] - 8
    r_h, rr, ag_h, ag, hits, xb, tmp, tmp0 = (
        work[base],
        work[base + 1],
        work[base + 2],
        work[base + 3],
        work[base + 4],
        work[base + 5],
        work[base + 6],
        work[base + 7],
    )
    p_stride = _to_bound(xv, p, lo, hi, hits)
    for q in range(k):
        r_h[q] = -p_h[q] if hits[q] != 0 else p_h[q]
        rr[q] = d[q] * r_h[q]
        p[q] *= p_stride
        p_h[q] *= p_stride
        xb[q] = xv[q] + p[q]
    # Where the reflected direction leaves the trust region.
    aa = 0.0
    bb = 0.0
    cc = 0.0
    for q in range(k):
        aa += r_h[q] * r_h[q]
        bb += p_h[q] * r_h[q]
        cc += p_h[q] * p_h[q]
    cc -= delta * delta
    if aa > 0:
        disc = math.sqrt(max(bb * bb - aa * min(cc, 0.0), 0.0))
        qq = -(bb + math.copysign(disc, bb))
        t1 = qq / aa
        t2 = min(cc, 0.0) / qq if qq != 0 else 0.0
        to_tr = max(t1, t2)
    else:
        to_tr = 0.0
    to_bound = _to_bound(xb, rr, lo, hi, hits)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        r_lo = (1.0 - theta) * p_stride / r_stride
        r_hi = theta * to_bound if r_stride == to_bound else to_tr
    else:
        r_lo = 0.0
        r_hi = -1.0
    r_value = math.inf
    if r_lo <= r_hi:
        a, b, c = _line_quadratic(r, d, diag_h, g_h, r_h, p_h, tmp, tmp0, True)
        t, r_value = _min_line(a, b, r_lo, r_hi, c)
        for q in range(k):
            r_h[q] = r_h[q] * t + p_h[q]
            rr[q] = r_h[q] * d[q]
    for q in range(k):
        p[q] *= theta
        p_h[q] *= theta
    p_value = _quadratic(r, d, diag_h, g_h, p_h, tmp)
    gnorm = 0.0
    for q in range(k):
        ag_h[q] = -g_h[q]
        ag[q] = d[q] * ag_h[q]
        gnorm += ag_h[q] * ag_h[q]
    to_tr = delta / math.sqrt(gnorm)
    to_bound = _to_bound(xv, ag, lo, hi, hits)
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    a, b, c = _line_quadratic(r, d, diag_h, g_h, ag_h, ag_h, tmp, tmp0, False)
    t, ag_value = _min_line(a, b, 0.0, ag_stride, 0.0)
    if p_value < r_value and p_value < ag_value:
        return -p_value
    if r_value < p_value and r_value < ag_value:
        for q in range(k):
            p[q] = rr[q]
            p_h[q] = r_h[q]
        return -r_value
    for q in range(k):
        p[q] = ag[q] * t
        p_h[q] = ag_h[q] * t
    return -ag_value


# ----------------------------------------------------------------------------
# Built-in components and the fused loop.


# ----------------------------------------------------------------------------
# The Faddeeva function w(z) = exp(-z^2) erfc(-iz), for Voigt1D.
#
# The algorithm of S. G. Johnson's Faddeeva package (behind
# scipy.special.wofz), in real arithmetic: a continued fraction (Poppe &
# Wijers) where |z| is large, and elsewhere the sums of Zaghloul & Ali's
# Algorithm 916 with erfcx of the imaginary part.  Two changes: erfcx is
# erfc(y) exp(y^2) with y^2 split exactly (y <= 7 there), and where |x| > 8
# and y is tiny (below 1e-10) the continued fraction plus exp(-z^2) (its
# real part is exp(-x^2) on the real axis) replaces a third sum.  Im z < 0
# comes from w(z) = 2 exp(-z^2) - w(-z).

#: Algorithm 916's a = pi / sqrt(-log(eps / 2)), c = 2 a / pi and exp(-a^2 n^2).
_W_A = math.pi / math.sqrt(-math.log(_EPS / 2.0))
_W_A2 = _W_A * _W_A
_W_C = 2.0 * _W_A / math.pi
_W_EXPA2N2 = np.exp(-_W_A2 * np.arange(1.0, 61.0) ** 2)
_ISQRT_PI = 1.0 / math.sqrt(math.pi)
_SQRT_PI = math.sqrt(math.pi)
_SQRT_LN2 = math.sqrt(math.log(2.0))
_SQRT_LN2PI = math.sqrt(math.log(2.0) * math.pi)


@_jit_inline
def _exp_square(t: float, sign: float) -> float:
    """``exp(sign * t * t)`` with ``t * t`` split exactly (Dekker), so unrounded."""
    big = t * 134217729.0  # 2**27 + 1
    hi = big - (big - t)
    lo = t - hi
    tt = t * t
    err = ((hi * hi - tt) + 2.0 * hi * lo) + lo * lo  # t * t = tt + err exactly
    return math.exp(sign * tt) * (1.0 + sign * err)


@_jit_inline
def _sinc(t: float, sin_t: float) -> float:
    return 1.0 - t * t / 6.0 if abs(t) < 1e-4 else sin_t / t


@_jit_inline
def _faddeeva_sums(x: float, y: float) -> tuple[float, float]:
    """Algorithm 916 (Zaghloul & Ali 2011) for ``|x| <= 8``, ``0 <= y <= 7``."""
    ax = abs(x)
    a, a2, c = _W_A, _W_A2, _W_C
    sum1 = sum2 = sum3 = sum4 = sum5 = 0.0
    prod2ax = prodm2ax = 1.0
    yy = y * y
    if ax < 5e-4:  # sum5 - sum4 together, from Taylor series (they cancel)
        x2 = ax * ax
        expx2 = 1.0 - x2 * (1.0 - 0.5 * x2)
        ax2 = 2.0 * a * ax
        exp2ax = 1.0 + ax2 * (1.0 + ax2 * (0.5 + ax2 / 6.0))
        expm2ax = 1.0 - ax2 * (1.0 - ax2 * (0.5 - ax2 / 6.0))
        for n in range(1, _W_EXPA2N2.shape[0] + 1):
            coef = _W_EXPA2N2[n - 1] * expx2 / (a2 * (n * n) + yy)
            prod2ax *= exp2ax
            prodm2ax *= expm2ax
            sum1 += coef
            sum2 += coef * prodm2ax
            sum3 += coef * prod2ax
            t = 2.0 * a * n * ax
            sum5 += coef * (2.0 * a) * n * (t * (1.0 + t * t * (1.0 / 6.0 + t * t / 120.0)))
            if coef * prod2ax < _EPS * sum3:
                break
    else:
        expx2 = _exp_square(ax, -1.0)
        exp2ax = math.exp(2.0 * a * ax)
        expm2ax = 1.0 / exp2ax
        for n in range(1, _W_EXPA2N2.shape[0] + 1):
            coef = _W_EXPA2N2[n - 1] * expx2 / (a2 * (n * n) + yy)
            prod2ax *= exp2ax
            prodm2ax *= expm2ax
            sum1 += coef
            sum2 += coef * prodm2ax
            sum4 += (coef * prodm2ax) * (a * n)
            sum3 += coef * prod2ax
            sum5 += (coef * prod2ax) * (a * n)
            if (coef * prod2ax) * (a * n) < _EPS * sum5:  # the slowest sum
                break
    expx2_erfcx = expx2 * (math.erfc(y) * _exp_square(y, 1.0))
    if y > 5.0:  # the imaginary terms cancel
        sinxy = math.sin(ax * y)
        re = (expx2_erfcx - c * y * sum1) * math.cos(2.0 * ax * y) + (
            c * ax * expx2
        ) * sinxy * _sinc(ax * y, sinxy)
        im = 0.0
    else:
        sinxy = math.sin(x * y)
        sin2xy = math.sin(2.0 * x * y)
        cos2xy = math.cos(2.0 * x * y)
        coef1 = expx2_erfcx - c * y * sum1
        coef2 = c * x * expx2
        re = coef1 * cos2xy + coef2 * sinxy * _sinc(x * y, sinxy)
        im = coef2 * _sinc(2.0 * x * y, sin2xy) - coef1 * sin2xy
    return re + (0.5 * c) * y * (sum2 + sum3), im + (0.5 * c) * math.copysign(sum5 - sum4, x)


@_jit_inline
def _faddeeva_fraction(x: float, y: float) -> tuple[float, float]:
    """The continued fraction (Poppe & Wijers) for ``|z|`` large, ``y >= 0``."""
    ax = abs(x)
    if ax + y > 1e7:  # w = i / (sqrt(pi) z), scaled against overflow
        if ax > y:
            yx = y / x
            den = _ISQRT_PI / (x + yx * y)
            return den * yx, den
        xy = x / y
        den = _ISQRT_PI / (xy * x + y)
        return den, den * xy
    if ax + y > 4000.0:  # w = i z / (sqrt(pi) (z^2 - 1/2))
        dr = x * x - y * y - 0.5
        di = 2.0 * x * y
        den = _ISQRT_PI / (dr * dr + di * di)
        return den * (x * di - y * dr), den * (x * dr + y * di)
    nu = math.floor(3.9 + 11.398 / (0.08254 * ax + 0.1421 * y + 0.2023))
    cr, ci = x, y
    k = 0.5 * (nu - 1.0)
    while k > 0.4:  # c <- z - k / c
        den = k / (cr * cr + ci * ci)
        cr = x - cr * den
        ci = y + ci * den
        k -= 0.5
    den = _ISQRT_PI / (cr * cr + ci * ci)  # w = i / (sqrt(pi) c)
    return den * ci, den * cr


@_jit_inline
def _faddeeva_upper(x: float, y: float) -> tuple[float, float]:
    """``w(x + iy)`` for ``y >= 0`` as ``(real, imaginary)``."""
    ax = abs(x)
    if y > 7.0 or (ax > 6.0 and (y > 0.1 or ax > 8.0)):
        re, im = _faddeeva_fraction(x, y)
        if y < 1e-10 and ax < 27.5:  # on the real axis Re w = exp(-x^2), not in the fraction
            e = _exp_square(ax, -1.0)
            re += e * math.cos(2.0 * x * y)
            im -= e * math.sin(2.0 * x * y)
        return re, im
    return _faddeeva_sums(x, y)


@_jit_inline
def _faddeeva(x: float, y: float) -> tuple[float, float]:
    """The Faddeeva function ``w(x + iy)`` as ``(real, imaginary)``, any finite ``z``.

    NaN for a NaN or infinite part.  Below the real axis, ``w(z) = 2
    exp(-z^2) - w(-z)``, infinite where ``exp(-z^2)`` overflows.
    """
    if not (math.isfinite(x) and math.isfinite(y)):
        return math.nan, math.nan
    if y >= 0.0:
        return _faddeeva_upper(x, y)
    re, im = _faddeeva_upper(-x, -y)
    e = 2.0 * math.exp((y - x) * (y + x))
    return e * math.cos(2.0 * x * y) - re, -e * math.sin(2.0 * x * y) - im


@_jit
def faddeeva(z: np.ndarray) -> np.ndarray:
    """The Faddeeva function of each element of a complex array (as :func:`scipy.special.wofz`).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import wofz
    >>> z = np.array([0.5 + 1e-3j, -3.0 + 2.0j, 40.0 + 0.0j, 1.0 - 0.5j])
    >>> bool(np.allclose(faddeeva(z), wofz(z), rtol=1e-13, atol=0))
    True
    """
    out = np.empty(z.shape, dtype=np.complex128)
    flat_in = z.ravel()
    flat_out = out.ravel()
    for i in range(flat_in.shape[0]):
        re, im = _faddeeva(flat_in[i].real, flat_in[i].imag)
        flat_out[i] = complex(re, im)
    return out


@_jit
def _voigt_into(
    x: np.ndarray,
    j0: int,
    m: int,
    p: np.ndarray,
    o: int,
    s: float,
    f: np.ndarray,
    jfull: np.ndarray,
) -> None:
    """Voigt1D(x_0, amplitude_L, fwhm_L, fwhm_G) at samples ``j0:m``: ``s`` times it into ``f``.

    Its derivatives (``s`` times) into rows ``o:o + 4`` of ``jfull``, as
    :meth:`parfit.models.Voigt1D._jacobian` (with ``w'(z) = -2 z w + 2i /
    sqrt(pi)``), written without dividing by the amplitude or ``fwhm_L``.
    """
    x0, amp, fw_l, fw_g = p[o], p[o + 1], p[o + 2], p[o + 3]
    sz = _SQRT_LN2 / fw_g  # z = (2 (x - x_0) + i fwhm_L) sz
    zi = fw_l * sz
    peak = _SQRT_LN2PI / fw_g  # sqrt(pi) sz
    scale = sz * fw_l * amp
    wscale = scale * _SQRT_PI
    for j in range(j0, m):
        dx = x[j] - x0
        zr = 2.0 * dx * sz
        wr, wi = _faddeeva(zr, zi)
        w_re = wr * wscale
        w_im = wi * wscale
        d_re = -2.0 * (zr * w_re - zi * w_im)  # w'(z) of the scaled w
        d_im = -2.0 * (zr * w_im + zi * w_re) + 2.0 * scale
        f[j] += s * (wr * peak * fw_l * amp)
        jfull[o, j] = s * (-d_re * 2.0 * sz)
        jfull[o + 1, j] = s * (wr * peak * fw_l)
        jfull[o + 2, j] = s * (wr * peak * amp - d_im * sz)
        jfull[o + 3, j] = s * ((-w_re - sz * (2.0 * dx * d_re - fw_l * d_im)) / fw_g)


def _model_values(
    codes: np.ndarray,
    offsets: np.ndarray,
    signs: np.ndarray,
    x: np.ndarray,
    p: np.ndarray,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    m: int,
) -> None:
    """Model at samples ``j0:m`` into f; derivatives (all parameters) into jfull ``(n_par, n)``.

    ``x`` is ``(n_samples,)`` for a model of 1-D components
    (:func:`_values_1d`) and ``(n_inputs, n_samples)`` for one of 2-D
    components (:func:`_values_2d`).  Compiled, the choice is made when numba
    types the call and the chosen loops are inlined: the plain path's ``j0 =
    0, m = n_samples`` compile to the loops over whole rows they always were
    (a 1-D model's code is that of a kernel that knows no 2-D model); a
    joint model's datasets pass their segment.
    """
    run = _values_1d if x.ndim == 1 else _values_2d
    run(codes, offsets, signs, x, p, f, jfull, j0, m)


@_jit_inline
def _values_1d(
    codes: np.ndarray,
    offsets: np.ndarray,
    signs: np.ndarray,
    x: np.ndarray,
    p: np.ndarray,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    m: int,
) -> None:
    """:func:`_model_values` of 1-D components, on ``x`` of shape ``(n_samples,)``."""
    for j in range(j0, m):
        f[j] = 0.0
    for c in range(codes.shape[0]):
        o = offsets[c]
        s = signs[c]
        code = codes[c]
        if code == 0:  # Gaussian1D(amplitude, mean, stddev)
            a, mean, sd = p[o], p[o + 1], p[o + 2]
            inv_var = 1.0 / sd**2
            for j in range(j0, m):
                dx = x[j] - mean
                e = _exp_neg(-0.5 * dx**2 * inv_var)
                d_mean = a * e * dx * inv_var
                f[j] += s * (a * e)
                jfull[o, j] = s * e
                jfull[o + 1, j] = s * d_mean
                jfull[o + 2, j] = s * (d_mean * dx / sd)
        elif code == 1:  # Lorentz1D(amplitude, x_0, fwhm)
            a, x0, fw = p[o], p[o + 1], p[o + 2]
            gamma = fw / 2.0
            g2 = gamma**2
            for j in range(j0, m):
                dx = x[j] - x0
                den = g2 + dx**2
                d_a = g2 / den
                f[j] += s * (a * d_a)
                jfull[o, j] = s * d_a
                jfull[o + 1, j] = s * (a * d_a * 2.0 * dx / den)
                jfull[o + 2, j] = s * (a * gamma * dx**2 / den**2)
        elif code == 2:  # Const1D(amplitude)
            for j in range(j0, m):
                f[j] += s * p[o]
                jfull[o, j] = s
        elif code == 3:  # Linear1D(slope, intercept)
            for j in range(j0, m):
                f[j] += s * (p[o] * x[j] + p[o + 1])
                jfull[o, j] = s * x[j]
                jfull[o + 1, j] = s
        elif code == 4:  # Polynomial1D(c0, ..., cd)
            n = (offsets[c + 1] if c + 1 < codes.shape[0] else p.shape[0]) - o
            for j in range(j0, m):
                acc = 0.0
                power = 1.0
                for i in range(n):
                    acc += p[o + i] * power
                    jfull[o + i, j] = s * power
                    power *= x[j]
                f[j] += s * acc
        elif code == 5:  # PowerLaw1D(amplitude, x_0, alpha)
            a, x0, al = p[o], p[o + 1], p[o + 2]
            for j in range(j0, m):
                xx = x[j] / x0
                d_a = xx ** (-al)
                f[j] += s * (a * d_a)
                jfull[o, j] = s * d_a
                jfull[o + 1, j] = s * (a * al * d_a / x0)
                jfull[o + 2, j] = s * (-a * d_a * math.log(xx))
        elif code == 6:  # Voigt1D(x_0, amplitude_L, fwhm_L, fwhm_G)
            _voigt_into(x, j0, m, p, o, s, f, jfull)


@_jit_inline
def _values_2d(
    codes: np.ndarray,
    offsets: np.ndarray,
    signs: np.ndarray,
    x: np.ndarray,
    p: np.ndarray,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    m: int,
) -> None:
    """:func:`_model_values` of 2-D components, on ``x`` of shape ``(2, n_samples)``."""
    x0 = x[0]
    x1 = x[1]
    for j in range(j0, m):
        f[j] = 0.0
    for c in range(codes.shape[0]):
        o = offsets[c]
        s = signs[c]
        code = codes[c]
        if code == 7:  # Gaussian2D
            _gaussian_2d(x0, x1, p, o, s, f, jfull, j0, m)
        elif code == 8:  # CircularGaussian2D
            _circular_gaussian_2d(x0, x1, p, o, s, f, jfull, j0, m)
        else:  # Const2D(amplitude)
            for j in range(j0, m):
                f[j] += s * p[o]
                jfull[o, j] = s


@_jit_inline
def _gaussian_2d(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    o: int,
    s: float,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    m: int,
) -> None:
    """Gaussian2D(amplitude, x_mean, y_mean, x_stddev, y_stddev, theta) times ``s``, added to f.

    The operations of :meth:`parfit.models.Gaussian2D._evaluate` (the value)
    and ``_jacobian`` (the derivatives), in their order, so that both
    engines agree to rounding.
    """
    amplitude, x_mean, y_mean = p[o], p[o + 1], p[o + 2]
    x_stddev, y_stddev, theta = p[o + 3], p[o + 4], p[o + 5]
    cost = math.cos(theta)
    sint = math.sin(theta)
    cost2 = cost**2
    sint2 = sint**2
    cos2t = math.cos(2.0 * theta)
    sin2t = math.sin(2.0 * theta)
    xstd2 = x_stddev**2
    ystd2 = y_stddev**2
    xstd3 = x_stddev**3
    ystd3 = y_stddev**3
    a = 0.5 * ((cost2 / xstd2) + (sint2 / ystd2))
    b = 0.5 * ((sin2t / xstd2) - (sin2t / ystd2))
    c = 0.5 * ((sint2 / xstd2) + (cost2 / ystd2))
    da_dtheta = sint * cost * ((1.0 / ystd2) - (1.0 / xstd2))
    da_dx_stddev = -cost2 / xstd3
    da_dy_stddev = -sint2 / ystd3
    db_dtheta = (cos2t / xstd2) - (cos2t / ystd2)
    db_dx_stddev = -sin2t / xstd3
    db_dy_stddev = sin2t / ystd3
    dc_dtheta = -da_dtheta
    dc_dx_stddev = -sint2 / xstd3
    dc_dy_stddev = -cost2 / ystd3
    for j in range(j0, m):
        xdiff = x[j] - x_mean
        ydiff = y[j] - y_mean
        xdiff2 = xdiff**2
        ydiff2 = ydiff**2
        xydiff = xdiff * ydiff
        e = math.exp(-((a * xdiff2) + (b * xdiff * ydiff) + (c * ydiff2)))
        g = amplitude * e
        f[j] += s * g
        jfull[o, j] = s * e
        jfull[o + 1, j] = s * (g * ((2.0 * a * xdiff) + (b * ydiff)))
        jfull[o + 2, j] = s * (g * ((b * xdiff) + (2.0 * c * ydiff)))
        jfull[o + 3, j] = s * (
            -g * (da_dx_stddev * xdiff2 + db_dx_stddev * xydiff + dc_dx_stddev * ydiff2)
        )
        jfull[o + 4, j] = s * (
            -g * (da_dy_stddev * xdiff2 + db_dy_stddev * xydiff + dc_dy_stddev * ydiff2)
        )
        jfull[o + 5, j] = s * (-g * (da_dtheta * xdiff2 + db_dtheta * xydiff + dc_dtheta * ydiff2))


@_jit_inline
def _circular_gaussian_2d(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    o: int,
    s: float,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    m: int,
) -> None:
    """CircularGaussian2D(amplitude, x_mean, y_mean, stddev) times ``s``, added to f.

    The operations of :meth:`parfit.models.CircularGaussian2D._evaluate` and
    ``_jacobian``, in their order.
    """
    amplitude, x_mean, y_mean, stddev = p[o], p[o + 1], p[o + 2], p[o + 3]
    inv_var = 1.0 / stddev**2
    for j in range(j0, m):
        xdiff = x[j] - x_mean
        ydiff = y[j] - y_mean
        r2 = xdiff**2 + ydiff**2
        e = math.exp(-0.5 * r2 * inv_var)
        g = amplitude * e
        f[j] += s * g
        jfull[o, j] = s * e
        jfull[o + 1, j] = s * (g * xdiff * inv_var)
        jfull[o + 2, j] = s * (g * ydiff * inv_var)
        jfull[o + 3, j] = s * (g * r2 * inv_var / stddev)


def evaluate(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """One evaluation of a fit, chosen by the length of ``model``.

    3: :func:`weighted`; 4 (a last element marking counts): :func:`poisson`;
    12: :func:`weighted_general`; 13: :func:`poisson_general`.  Compiled, the
    choice is made once, when numba types the call.
    """
    run = _EVALUATIONS[len(model)]
    return run(model, x, y, w, p, free_idx, inv_scale, compact, f, jfull, r, jt, gm, am)


@_jit
def weighted(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """Scaled weighted residuals and transposed Jacobian of the valid samples, and their moments.

    ``model`` is ``(codes, offsets, signs)`` of the components (see
    :func:`_model_values`).  ``r[:m]`` and ``jt[:, :m]`` receive the samples
    of non-zero weight (``compact``: some weights are zero; otherwise all
    samples are used), ``gm`` and ``am`` ``J^T r`` and ``J^T J`` (as dot
    products of contiguous rows, which vectorise).  Returns ``(m, cost)``
    with ``cost = 0.5 r.r``, infinite where anything is not finite.
    """
    codes, offsets, signs = model
    _model_values(codes, offsets, signs, x, p, f, jfull, 0, y.shape[0])
    return _residuals(y, w, free_idx, inv_scale, compact, f, jfull, r, jt, gm, am)


@_jit
def weighted_general(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """:func:`weighted` for models with affine ties, or of several datasets' samples.

    ``model`` is ``(codes, offsets, signs, segments, ties, tie_values,
    columns, column_coef, jfree, every, program, values)``:

    * ``segments`` rows ``(first component, end component, first sample, end
      sample, end parameter)``: the components of one dataset, evaluated on
      its samples with the parameters up to its last (a joint model; one row
      otherwise);
    * ``ties`` rows ``(tied, source)`` and ``tie_values`` rows ``(factor,
      shift)``: ``p[tied] = factor * p[source] + shift``, in that order;
    * ``columns`` rows ``(free parameter, parameter)`` and ``column_coef``:
      the derivative by each free parameter is the sum of those of the
      parameters it drives (itself, first and with factor 1, then those tied
      to it), times the chain's factor;
    * ``jfree`` ``(k, n_samples)`` scratch for those derivatives, ``every``
      ``arange(k)``;
    * ``program`` rows combining the components' values with ``*`` and ``/``
      (:func:`_tree_values`; none for sums) and ``values`` ``(n_components,
      n_samples)`` scratch for them.
    """
    _general_values(model, x, p, f, jfull, y.shape[0])
    return _residuals(y, w, model[9], inv_scale, compact, f, model[8], r, jt, gm, am)


@_jit
def poisson(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """:func:`weighted` for counts: deviance residuals of the Poisson likelihood.

    ``model`` is that of :func:`weighted` and a fourth element (any array)
    that marks it as counts for :func:`evaluate`.  ``w`` is 1 on valid
    samples and 0 elsewhere (weights mean nothing for counts);
    ``inv_scale`` is not used.  ``0.5 r.r`` is half the C-stat.
    """
    codes, offsets, signs = model[0], model[1], model[2]
    _model_values(codes, offsets, signs, x, p, f, jfull, 0, y.shape[0])
    return _deviance(y, w, free_idx, compact, f, jfull, r, jt, gm, am)


@_jit
def poisson_general(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    p: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """:func:`poisson` for the models of :func:`weighted_general` (and a 13th element)."""
    _general_values(model, x, p, f, jfull, y.shape[0])
    return _deviance(y, w, model[9], compact, f, model[8], r, jt, gm, am)


@_jit_inline
def _general_values(
    model: tuple, x: np.ndarray, p: np.ndarray, f: np.ndarray, jfull: np.ndarray, n: int
) -> None:
    """The model of :func:`weighted_general` into ``f``, its free derivatives into ``jfree``."""
    codes, offsets, signs, segments = model[0], model[1], model[2], model[3]
    ties, tie_values, columns, column_coef, jfree = model[4], model[5], model[6], model[7], model[8]
    program, values = model[10], model[11]
    for t in range(ties.shape[0]):
        p[ties[t, 0]] = tie_values[t, 0] * p[ties[t, 1]] + tie_values[t, 1]
    for s in range(segments.shape[0]):
        c0, c1, j0, j1, p1 = (
            segments[s, 0],
            segments[s, 1],
            segments[s, 2],
            segments[s, 3],
            segments[s, 4],
        )
        combined = False
        for e in range(program.shape[0]):
            combined = combined or program[e, 0] == s
        if combined:
            _tree_values(codes, offsets, program, values, s, c0, c1, p1, x, p, f, jfull, j0, j1)
        else:
            _model_values(codes[c0:c1], offsets[c0:c1], signs[c0:c1], x, p[:p1], f, jfull, j0, j1)
    for e in range(columns.shape[0]):
        q, i = columns[e, 0], columns[e, 1]
        c = column_coef[e]
        row = jfree[q]
        source = jfull[i]
        if e == 0 or columns[e - 1, 0] != q:  # a free parameter's own derivative comes first
            for j in range(n):
                row[j] = source[j]
        else:
            for j in range(n):
                row[j] += c * source[j]


@_jit  # a call: inlined, every kernel variant with ties would compile the components twice
def _tree_values(
    codes: np.ndarray,
    offsets: np.ndarray,
    program: np.ndarray,
    values: np.ndarray,
    s: int,
    c0: int,
    c1: int,
    p1: int,
    x: np.ndarray,
    p: np.ndarray,
    f: np.ndarray,
    jfull: np.ndarray,
    j0: int,
    j1: int,
) -> None:
    """Components ``c0:c1`` combined by segment ``s``'s rows of ``program``, into ``f``.

    Each component's value goes to its row of ``values`` and its derivatives
    to its rows of ``jfull``; each program row ``(segment, operator, a, b,
    first parameter of a, first of b, end of b)`` then replaces value ``a``
    by ``a op b`` and scales the derivatives of both operands' parameters
    by the chain rule (``*``: by the other operand; ``/``: by ``1 / b`` and
    ``-a / b**2``; ``-``: by -1).  The root is the leftmost component.
    """
    for c in range(c0, c1):
        end = offsets[c + 1] if c + 1 < c1 else p1
        _model_values(
            codes[c : c + 1], offsets[c : c + 1], _PLUS, x, p[:end], values[c], jfull, j0, j1
        )
    for e in range(program.shape[0]):
        if program[e, 0] != s:
            continue
        op, a, b = program[e, 1], program[e, 2], program[e, 3]
        pa, pb, pe = program[e, 4], program[e, 5], program[e, 6]
        va = values[a]
        vb = values[b]
        if op == 1:  # a - b
            for q in range(pb, pe):
                for j in range(j0, j1):
                    jfull[q, j] = -jfull[q, j]
        elif op == 2:  # a * b
            for q in range(pa, pb):
                for j in range(j0, j1):
                    jfull[q, j] *= vb[j]
            for q in range(pb, pe):
                for j in range(j0, j1):
                    jfull[q, j] *= va[j]
        elif op == 3:  # a / b
            for q in range(pa, pb):
                for j in range(j0, j1):
                    jfull[q, j] /= vb[j]
            for q in range(pb, pe):
                for j in range(j0, j1):
                    jfull[q, j] *= -(va[j] / vb[j]) / vb[j]
        for j in range(j0, j1):
            if op == 0:
                va[j] += vb[j]
            elif op == 1:
                va[j] -= vb[j]
            elif op == 2:
                va[j] *= vb[j]
            else:
                va[j] /= vb[j]
    root = values[c0]
    for j in range(j0, j1):
        f[j] = root[j]


@_jit_inline
def _deviance(
    y: np.ndarray,
    w: np.ndarray,
    free_idx: np.ndarray,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """Deviance residuals ``sign(mu - n) sqrt(2 (mu - n + n ln(n/mu)))`` and their Jacobian.

    The numbers of :func:`parfit.fitters.statistics.deviance_residuals`:
    infinite where the model is negative, or zero under positive counts
    (the solver then rejects the step).
    """
    k = free_idx.shape[0]
    n_samples = y.shape[0]
    m = 0
    for j in range(n_samples):
        if compact and w[j] == 0.0:
            continue
        n = y[j]
        mu = f[j]
        if not (mu > 0.0 or (mu == 0.0 and n == 0.0)):  # negative, zero under counts, NaN
            r[m] = math.inf
            slope = 0.0
        elif n > 0.0:
            u = (mu - n) / n
            if abs(u) < 1e-3:
                h = u * u * (0.5 - u * (1 / 3 - u * (0.25 - u * (0.2 - u * (1 / 6 - u / 7)))))
            else:
                h = u - math.log1p(u)
            rr = math.sqrt(max(2.0 * n * h, 0.0))
            if mu < n:
                rr = -rr
            r[m] = rr
            slope = (1.0 - n / mu) / rr if rr != 0.0 else 1.0 / math.sqrt(n)
        elif mu > 0.0:
            rr = math.sqrt(2.0 * mu)
            r[m] = rr
            slope = 1.0 / rr
        else:  # no counts, zero model: no contribution
            r[m] = 0.0
            slope = 0.0
        for q in range(k):
            jt[q, m] = jfull[free_idx[q], j] * slope
        m += 1
    return m, _moments(r, jt, m, gm, am)


@_jit_inline
def _residuals(
    y: np.ndarray,
    w: np.ndarray,
    free_idx: np.ndarray,
    inv_scale: float,
    compact: bool,
    f: np.ndarray,
    jfull: np.ndarray,
    r: np.ndarray,
    jt: np.ndarray,
    gm: np.ndarray,
    am: np.ndarray,
) -> tuple[int, float]:
    """Residuals and Jacobian rows of the model ``f`` and its derivatives (see :func:`weighted`)."""
    k = free_idx.shape[0]
    n = y.shape[0]
    m = n
    if compact:
        m = 0
        for j in range(n):
            wj = w[j]
            if wj == 0.0:
                continue
            ws = wj * inv_scale
            r[m] = (f[j] - y[j]) * ws
            for q in range(k):
                jt[q, m] = jfull[free_idx[q], j] * ws
            m += 1
    else:  # every sample is used: contiguous rows, which vectorise
        for j in range(n):
            r[j] = (f[j] - y[j]) * (w[j] * inv_scale)
        for q in range(k):
            row = jfull[free_idx[q]]
            out = jt[q]
            for j in range(n):
                out[j] = row[j] * (w[j] * inv_scale)
    return m, _moments(r, jt, m, gm, am)


@_jit
def fit_all(
    model: tuple,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    template: np.ndarray,
    free_idx: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    scale: np.ndarray,
    xsc: np.ndarray,
    ftol: float,
    xtol: float,
    gtol: np.ndarray,
    max_nfev: int,
    factor: float,
    xs: np.ndarray,
    x_new: np.ndarray,
    step: np.ndarray,
    step_h: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    diag_h: np.ndarray,
    g_h: np.ndarray,
    s: np.ndarray,
    suf: np.ndarray,
    rr: np.ndarray,
    vv: np.ndarray,
    sc: np.ndarray,
    ic: np.ndarray,
    work: np.ndarray,
) -> None:
    """Every fit of the block, one after the other, with scipy's TRF steps.

    ``model`` is the kernel's description of the model, whose length picks
    the evaluation (:func:`evaluate`): numba compiles this loop once for
    each, so a plain model pays nothing for what ties and joint models
    need.  (Passing the evaluation itself as an argument would do the
    same, but numba's on-disk cache does not find such a function again: it
    would be compiled anew in every process.)

    ``x`` holds the model inputs: ``(1 or n_fits, n_samples)`` for a 1-D
    model, ``(1 or n_fits, n_inputs, n_samples)`` for a 2-D one (each fit's
    inputs one contiguous block); its number of dimensions picks the loops
    of the components (:func:`_model_values`) in the same way.
    """
    n_fits, n_samples = y.shape
    k = free_idx.shape[0]
    n_par = template.shape[1]
    p = np.empty(n_par)
    f = np.empty(n_samples)
    jfull = np.zeros((n_par, n_samples))
    r = np.empty(n_samples)
    jt = np.empty((k, n_samples))
    gm = np.empty(k)
    am = np.empty((k, k))
    for i in range(n_fits):
        xrow = x[0] if x.shape[0] == 1 else x[i]
        inv_scale = 1.0 / scale[i]  # a power of two: exact
        compact = False
        for j in range(n_samples):
            if w[i, j] == 0.0:
                compact = True
                break
        for q in range(n_par):
            p[q] = template[i, q]
        for q in range(k):
            p[free_idx[q]] = xs[i, q]
        m, cost = evaluate(
            model,
            xrow,
            y[i],
            w[i],
            p,
            free_idx,
            inv_scale,
            compact,
            f,
            jfull,
            r,
            jt,
            gm,
            am,
        )
        ic[i, _M] = m
        going = begin_fit(
            i,
            cost,
            gm,
            am,
            jt,
            m,
            xs,
            x_new,
            step,
            step_h,
            g,
            d,
            diag_h,
            g_h,
            s,
            suf,
            rr,
            vv,
            sc,
            ic,
            work,
            lower,
            upper,
            xsc,
            gtol[i],
            factor,
            max_nfev,
        )
        while going:
            for q in range(k):
                p[free_idx[q]] = x_new[i, q]
            m, cost = evaluate(
                model,
                xrow,
                y[i],
                w[i],
                p,
                free_idx,
                inv_scale,
                compact,
                f,
                jfull,
                r,
                jt,
                gm,
                am,
            )
            taken = judge_fit(i, cost, xs, step, sc, ic, ftol, xtol)
            if taken:
                accept_fit(i, cost, gm, am, jt, m, xs, x_new, g, rr, sc, ic, work)
            going = continue_fit(
                i,
                taken,
                xs,
                x_new,
                step,
                step_h,
                g,
                d,
                diag_h,
                g_h,
                s,
                suf,
                rr,
                vv,
                sc,
                ic,
                work,
                lower,
                upper,
                xsc,
                max_nfev,
            )


#: The evaluation of each length of the kernel's description of a model.
_EVALUATIONS = {3: weighted, 4: poisson, 12: weighted_general, 13: poisson_general}

if AVAILABLE:

    @numba.extending.overload(evaluate, jit_options={"nogil": True})
    def _evaluate_typed(model, x, y, w, p, free_idx, inv_scale, compact, f, jfull, r, jt, gm, am):  # type: ignore[no-untyped-def]  # numba types, at compile time
        run = _EVALUATIONS[len(model)]

        def call(model, x, y, w, p, free_idx, inv_scale, compact, f, jfull, r, jt, gm, am):  # type: ignore[no-untyped-def]
            return run(model, x, y, w, p, free_idx, inv_scale, compact, f, jfull, r, jt, gm, am)

        return call

    # Inlined into its callers, as the loops it picks (see _jit_inline).
    @numba.extending.overload(_model_values, inline="always", jit_options={"nogil": True})
    def _model_values_typed(codes, offsets, signs, x, p, f, jfull, j0, m):  # type: ignore[no-untyped-def]  # numba types, at compile time
        run = _values_1d if x.ndim == 1 else _values_2d

        def call(codes, offsets, signs, x, p, f, jfull, j0, m):  # type: ignore[no-untyped-def]
            run(codes, offsets, signs, x, p, f, jfull, j0, m)

        return call
