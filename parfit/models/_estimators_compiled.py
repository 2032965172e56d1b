"""Compiled (numba) row loops behind :mod:`parfit.models._estimators`.

Each function loops over the fits (rows) of ``(n_fits, n_samples)`` arrays
and computes, row by row, exactly what the vectorised numpy estimators
compute, in the same floating-point operations and the same order: sums
over samples are numpy's pairwise sums (:func:`_pairwise`), cumulative sums
run left to right, ``np.maximum``/``np.minimum`` keep their NaN rules.  So
the results equal numpy's bit for bit, while each row is touched a few
times instead of once per numpy call, and without sorting whole rows.

One module on purpose: numba caches each compiled function on disk and
checks only the file it is defined in.  This module imports numba, so it is
imported only by the first guess (:func:`parfit.models._estimators.compiled`),
never by ``import parfit``.  Without numba the functions stay plain Python
(correct, slow); the estimators then use their numpy code instead.

Examples
--------
>>> import numpy as np
>>> from parfit.models import _estimators_compiled as c
>>> a = np.arange(1.0, 301.0)
>>> bool(c.pairwise_sum(a, 0, a.size, *c.new_stack()) == a.sum())
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:  # numba is optional at run time; without it these run as plain Python
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]  # checked through AVAILABLE below

#: True when numba is importable and these functions are compiled.
AVAILABLE = numba is not None and not getattr(getattr(numba, "config", None), "DISABLE_JIT", False)

if numba is not None:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
else:  # pragma: no cover - exercised only without numba

    def _jit(func: Any) -> Any:
        return func


#: ``FWHM_PER_SIGMA ** 2`` as the numpy code computes it.
_FWHM2 = (2.0 * math.sqrt(2.0 * math.log(2.0))) ** 2


@_jit
def _block_sum(a, lo, n):
    """numpy's pairwise sum of ``a[lo:lo + n]`` for ``n <= 128``: eight running sums."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@_jit
def new_stack():
    """Scratch for :func:`pairwise_sum`: (segments, partial sums)."""
    return np.empty((3, 64), np.intp), np.empty(64)


@_jit
def pairwise_sum(a, lo, n, seg, part):
    """Sum of ``a[lo:lo + n]`` in the order of numpy's pairwise summation (``ndarray.sum``).

    numpy halves a sum of more than 128 terms (at a multiple of 8) and adds
    the halves' sums; this walks that tree with the explicit stacks ``seg``
    and ``part`` (:func:`new_stack`), since numba's cache mishandles recursion.
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    top = 0
    seg[0, 0] = lo
    seg[1, 0] = n
    seg[2, 0] = 0
    nv = 0
    while top >= 0:
        start = seg[0, top]
        m = seg[1, top]
        if m <= 128:
            part[nv] = _block_sum(a, start, m)
            nv += 1
            top -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        phase = seg[2, top]
        seg[2, top] = phase + 1
        if phase == 0:
            top += 1
            seg[0, top] = start
            seg[1, top] = n2
            seg[2, top] = 0
        elif phase == 1:
            top += 1
            seg[0, top] = start + n2
            seg[1, top] = m - n2
            seg[2, top] = 0
        else:
            nv -= 1
            part[nv - 1] = part[nv - 1] + part[nv]
            top -= 1
    return part[0]


@_jit
def _max(a, b):
    """``np.maximum(a, b)``: NaN wins."""
    if a != a or a >= b:
        return a
    return b


@_jit
def _min(a, b):
    """``np.minimum(a, b)``: NaN wins."""
    if a != a or a <= b:
        return a
    return b


@_jit
def _clip01(a):
    """``np.clip(a, 0.0, 1.0)``."""
    return _min(_max(a, 0.0), 1.0)


# ----------------------------------------------------------------------
# quantiles
@_jit
def _select(buf, lo, hi, kth):
    """``kth`` smallest of ``buf[lo:hi]`` (no NaN), partitioning it in place around that value.

    Quickselect with branch-free partitions (the comparisons of noisy data
    are unpredictable): first ``< pivot``, then, if needed, ``== pivot``,
    so that runs of equal values cannot make it quadratic.
    """
    while hi - lo > 1:
        a = buf[lo]
        b = buf[(lo + hi) >> 1]
        c = buf[hi - 1]
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        pivot = b if b > a else a  # the median of the three
        j = lo
        for i in range(lo, hi):
            v = buf[i]
            buf[i] = buf[j]
            buf[j] = v
            j += v < pivot
        if kth < j:
            hi = j
            continue
        e = j
        for i in range(j, hi):
            v = buf[i]
            buf[i] = buf[e]
            buf[e] = v
            e += v <= pivot
        if kth < e:
            return pivot
        lo = e
    return buf[kth]


@_jit
def _select_pair(buf, m, lo, scratch):
    """Values ``lo`` and ``lo + 1`` of ``sorted(buf[:m])`` (``lo + 1 < m``; no NaN).

    Floyd and Rivest's idea: two values picked from a sample of ``buf``
    bracket the wanted ones; one pass counts the values below the bracket
    and gathers those in it (branch free), and only these few are selected
    from.  Where the bracket misses, a plain quickselect of ``buf`` runs.
    """
    if m > 96:
        n_sample = 24
        step = m // n_sample
        for i in range(n_sample):
            scratch[i] = buf[i * step]
        q = (lo + 0.5) / m * n_sample
        i1 = max(int(q) - 3, 0)
        i2 = min(int(q) + 3, n_sample - 1)
        p1 = _select(scratch, 0, n_sample, i1)
        p2 = _select(scratch, i1, n_sample, i2)
        below = 0
        inside = 0
        for i in range(m):
            v = buf[i]
            scratch[inside] = v
            below += v < p1
            inside += (v >= p1) & (v <= p2)
        t = lo - below
        if t >= 0 and t + 1 < inside:
            v_lo = _select(scratch, 0, inside, t)
            v_hi = scratch[t + 1]
            for i in range(t + 2, inside):
                if scratch[i] < v_hi:
                    v_hi = scratch[i]
            return v_lo, v_hi
    v_lo = _select(buf, 0, m, lo)
    v_hi = buf[lo + 1]
    for i in range(lo + 2, m):
        if buf[i] < v_hi:
            v_hi = buf[i]
    return v_lo, v_hi


@_jit
def _quantile_row(a, valid, q, buf, scratch):
    """``masked_quantile`` of one row (``buf``, ``scratch``: the row's length)."""
    n = a.shape[0]
    m = 0
    k = 0
    for j in range(n):  # branch free: valid and not NaN
        v = a[j]
        buf[m] = v
        k += valid[j]
        m += valid[j] & (v == v)
    if k == 0:
        return np.nan
    km1 = k - 1
    pos = q * km1
    lo = int(math.floor(pos))
    hi = min(lo + 1, km1)
    frac = pos - lo
    # sort(where(valid, a, inf)) holds the m valid numbers, n - k infinities, then NaN
    if hi > lo and hi < m:
        v_lo, v_hi = _select_pair(buf, m, lo, scratch)
    else:
        if lo < m:
            v_lo = _select(buf, 0, m, lo)
        elif lo < m + n - k:
            v_lo = np.inf
        else:
            v_lo = np.nan
        if hi == lo:
            v_hi = v_lo
        elif hi < m + n - k:
            v_hi = np.inf
        else:
            v_hi = np.nan
    return v_lo + frac * (v_hi - v_lo)


@_jit
def masked_quantile(a, valid, q, out):
    """``out[f]``: quantile ``q`` of the valid samples of row ``f`` (see ``_estimators``)."""
    buf = np.empty(a.shape[1])
    scratch = np.empty(a.shape[1])
    for f in range(a.shape[0]):
        out[f] = _quantile_row(a[f], valid[f], q, buf, scratch)


@_jit
def clip_round(r, mask, use, floor, n_min, n_sigma, new, changed):
    """One round of sigma clipping (:func:`parfit.models._estimators.clip_round`), row by row.

    ``new[f]``: the samples of ``use`` within ``n_sigma`` robust standard
    deviations (``1.4826`` MAD, at least ``floor``) of the median of the
    residuals ``r`` over ``mask``; ``mask[f]`` where fewer than ``n_min``
    would remain.  ``changed[f]``: whether ``new[f]`` differs from ``mask[f]``.
    """
    n_fits, n = r.shape
    buf = np.empty(n)
    scratch = np.empty(n)
    dev = np.empty(n)
    for f in range(n_fits):
        med = _quantile_row(r[f], mask[f], 0.5, buf, scratch)
        for j in range(n):
            dev[j] = abs(r[f, j] - med)
        sigma = _max(1.4826 * _quantile_row(dev, mask[f], 0.5, buf, scratch), floor[f])
        limit = n_sigma * sigma
        count = 0
        for j in range(n):
            keep = use[f, j] & (dev[j] <= limit)
            new[f, j] = keep
            count += keep
        if not count >= n_min[f]:
            for j in range(n):
                new[f, j] = mask[f, j]
        differs = False
        for j in range(n):
            differs |= new[f, j] != mask[f, j]
        changed[f] = differs


# ----------------------------------------------------------------------
# peaks
@_jit
def _compact_row(xr, yr, vr, idx, xs, ys):
    """Valid samples sorted by x (stable) first, then the last valid x and zeros; their number.

    -1 when a valid x is not finite (then the numpy code decides).
    """
    n = xr.shape[0]
    k = 0
    ordered = True
    for j in range(n):
        if vr[j]:
            xj = xr[j]
            if not math.isfinite(xj):
                return -1
            if k > 0 and xj < xr[idx[k - 1]]:
                ordered = False
            idx[k] = j
            k += 1
    if not ordered:
        keys = np.empty(k)
        for i in range(k):
            keys[i] = xr[idx[i]]
        order = np.argsort(keys, kind="mergesort")
        sorted_idx = idx[:k][order]
        idx[:k] = sorted_idx
    for i in range(k):
        xs[i] = xr[idx[i]]
        ys[i] = yr[idx[i]]
    last = xs[k - 1] if k > 0 else xr[0]
    for i in range(k, n):
        xs[i] = last
        ys[i] = 0.0
    return k


@_jit
def _half_maximum_row(xs, ys, k, h, lopsided_factor, cy, cv, s, wts, wx, seg, part):
    """``_half_maximum`` of one compacted row: center, height, fwhm, spacing, span."""
    n = xs.shape[0]
    # boxcar of 2 h + 1 samples from cumulative sums (numpy's cumsum: left to right)
    cy[0] = 0.0
    cv[0] = 0.0
    for j in range(n):
        yj = ys[j] if j < k else 0.0
        vj = 1.0 if j < k else 0.0
        if j == 0:
            cy[1] = yj
            cv[1] = vj
        else:
            cy[j + 1] = cy[j] + yj
            cv[j + 1] = cv[j] + vj
    for j in range(n):
        if j < k:
            lo = min(max(j - h, 0), n)
            hi = min(max(j + h + 1, 0), n)
            total = cy[hi] - cy[lo]
            count = cv[hi] - cv[lo]
            s[j] = total / _max(count, 1.0)
        else:
            s[j] = -np.inf
    # argmax: the first maximum, or the first NaN
    i0 = 0
    best = s[0]
    if best == best:
        for j in range(1, n):
            sj = s[j]
            if sj != sj:
                i0 = j
                break
            if sj > best:
                best = sj
                i0 = j
    height = s[i0]
    x_peak = xs[i0]
    half = 0.5 * height
    left = -1
    for j in range(min(i0, k) - 1, -1, -1):
        if s[j] <= half:
            left = j
            break
    right = n
    for j in range(i0 + 1, k):
        if s[j] <= half:
            right = j
            break
    has_left = left >= 0
    has_right = right < k
    li = min(max(left, 0), n - 1)
    ri = min(max(right, 0), n - 1)
    lj = min(li + 1, n - 1)
    frac = _clip01((half - s[li]) / (s[lj] - s[li]))
    x_left = xs[li] + frac * (xs[lj] - xs[li])
    rj = max(ri - 1, 0)
    frac = _clip01((half - s[rj]) / (s[ri] - s[rj]))
    x_right = xs[rj] + frac * (xs[ri] - xs[rj])
    span = xs[max(k - 1, 0)] - xs[0]
    spacing = span / max(k - 1, 1)
    half_left = x_peak - x_left
    half_right = x_right - x_peak
    both = has_left and has_right
    narrow = _min(half_left, half_right)
    lopsided = both and (_max(half_left, half_right) > lopsided_factor * narrow)
    if both:
        fwhm = 2.0 * narrow if lopsided else half_left + half_right
    elif has_left:
        fwhm = 2.0 * half_left
    elif has_right:
        fwhm = 2.0 * half_right
    else:
        fwhm = span
    w = 2.0 * h + 1.0
    smear = _FWHM2 * (w * w - 1.0) / 12.0 * (spacing * spacing)
    broad = _max(fwhm, spacing)
    if has_left or has_right:
        fwhm = np.sqrt(_max(fwhm * fwhm - smear, spacing * spacing))
    else:
        fwhm = span
    height = height * broad / _max(fwhm, spacing)
    for j in range(n):
        run = j < k and j > left and j < right
        if run and lopsided:
            run = abs(xs[j] - x_peak) < narrow
        wts[j] = _max(ys[j], 0.0) if run else 0.0
        wx[j] = wts[j] * xs[j]
    wsum = pairwise_sum(wts, 0, n, seg, part)
    centroid = pairwise_sum(wx, 0, n, seg, part) / wsum
    center = centroid if (both and wsum > 0) else x_peak
    return center, height, fwhm, spacing, span


@_jit
def peak_1d(x, y, valid, box_half, lopsided_factor, out):
    """``peak_1d`` row by row into ``out`` (5, n_fits); False if a valid x is not finite.

    ``x`` is ``(n_fits, n)`` or ``(1, n)`` (shared by all rows).
    """
    n_fits, n = y.shape
    idx = np.empty(n, np.intp)
    xs = np.empty(n)
    ys = np.empty(n)
    cy = np.empty(n + 1)
    cv = np.empty(n + 1)
    s = np.empty(n)
    wts = np.empty(n)
    wx = np.empty(n)
    seg, part = new_stack()
    shared = x.shape[0] == 1
    for f in range(n_fits):
        xr = x[0] if shared else x[f]
        k = _compact_row(xr, y[f], valid[f], idx, xs, ys)
        if k < 0:
            return False
        first = _half_maximum_row(xs, ys, k, box_half, np.inf, cy, cv, s, wts, wx, seg, part)
        hf = math.floor(first[2] / (4.0 * first[3]))
        if not math.isfinite(hf):
            hf = 1.0
        hf = _min(_max(hf, 1.0), float(max(k // 8, 1)))
        h = int(hf)
        center, height, fwhm, spacing, span = _half_maximum_row(
            xs, ys, k, h, lopsided_factor, cy, cv, s, wts, wx, seg, part
        )
        out[0, f] = center
        out[1, f] = height
        out[2, f] = fwhm if span > 0 else np.nan
        out[3, f] = spacing
        out[4, f] = span
    return True


# ----------------------------------------------------------------------
# least squares
@_jit
def ls_amplitude(template, y, valid, out):
    """``out[f] = sum(g y) / sum(g g)`` with ``g`` the template on the valid samples."""
    n_fits, n = y.shape
    gy = np.empty(n)
    gg = np.empty(n)
    seg, part = new_stack()
    for f in range(n_fits):
        for j in range(n):
            g = template[f, j] if valid[f, j] else 0.0
            gy[j] = g * y[f, j]
            gg[j] = g * g
        out[f] = pairwise_sum(gy, 0, n, seg, part) / pairwise_sum(gg, 0, n, seg, part)


@_jit
def poly_sums(x, y, valid, degree, center, scale, sums, rhs):
    """Centre, scale and power sums of ``polyfit_masked``'s normal equations, row by row.

    ``sums[f, o] = sum(t**o)``, ``rhs[f, o] = sum(t**o y)`` over the valid
    samples, with ``t = (x - center) / scale``; ``x`` may be ``(1, n)``.
    """
    n_fits, n = y.shape
    power = np.empty(n)
    tmp = np.empty(n)
    t = np.empty(n)
    seg, part = new_stack()
    shared = x.shape[0] == 1
    for f in range(n_fits):
        xr = x[0] if shared else x[f]
        lo = np.inf
        hi = -np.inf
        for j in range(n):
            v = valid[f, j]
            xj = xr[j] if v else 0.0
            w = 1.0 if v else 0.0
            power[j] = w
            tmp[j] = w * xj
            if v:
                lo = _min(lo, xj)
                hi = _max(hi, xj)
        k = pairwise_sum(power, 0, n, seg, part)
        c = pairwise_sum(tmp, 0, n, seg, part) / _max(k, 1.0)
        sc = 0.5 * (hi - lo)
        if not (math.isfinite(sc) and sc > 0):
            sc = 1.0
        if not math.isfinite(c):
            c = 0.0
        center[f] = c
        scale[f] = sc
        for j in range(n):
            if valid[f, j]:
                t[j] = (xr[j] - c) / sc
            else:
                t[j] = 0.0
        for order in range(2 * degree + 1):
            sums[f, order] = pairwise_sum(power, 0, n, seg, part)
            if order <= degree:
                for j in range(n):
                    tmp[j] = power[j] * (y[f, j] if valid[f, j] else 0.0)
                rhs[f, order] = pairwise_sum(tmp, 0, n, seg, part)
            for j in range(n):
                power[j] = power[j] * t[j]
