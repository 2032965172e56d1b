"""Vectorised, NaN-safe estimators behind :meth:`parfit.models.Model.guess`.

Every function works on many fits at once: arrays are ``(n_fits, n_samples)``
with a boolean ``valid`` mask of the same shape, results are ``(n_fits,)``.
Invalid samples never enter a result; a fit with no valid sample gets NaN or
a meaningless number, which the caller replaces by the starting value.
Nothing here loops over fits.  Call with ``np.errstate(all="ignore")`` active
(:meth:`~parfit.models.Model.guess` does): empty fits divide by zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "FWHM_PER_SIGMA",
    "clip_round",
    "ls_amplitude",
    "masked_extent",
    "masked_median",
    "masked_quantile",
    "peak_1d",
    "peak_2d",
    "polyfit_masked",
]

#: ``fwhm = FWHM_PER_SIGMA * stddev`` for a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Number of samples of the boxcar that smooths 1-D data before the peak search.
_BOX = 3
#: A peak whose half widths on either side differ by more than this factor is
#: taken to be blended with a neighbour on its wider side.
_LOPSIDED = 3.0

#: :mod:`parfit.models._estimators_compiled` once loaded, False where numba is
#: missing (or disabled), None before the first estimate: imported on first
#: use, so that ``import parfit`` does not import numba for it.
_COMPILED: Any = None


def _compiled() -> Any:
    """The compiled row loops, or None: then the numpy code below runs (same results)."""
    global _COMPILED
    if _COMPILED is None:
        try:
            from parfit.models import _estimators_compiled as module
        except ImportError:  # pragma: no cover - numba is a dependency
            _COMPILED = False
        else:
            _COMPILED = module if module.AVAILABLE else False
    return _COMPILED or None


def _f64(*arrays: Any) -> bool:
    """True if every array is float64 with at least one sample (what the compiled loops take)."""
    return all(
        isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 2 and a.size
        for a in arrays
    )


def _bool_rows(valid: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(valid, dtype=np.bool_)


def _x_rows(x: np.ndarray) -> np.ndarray:
    """``x`` as C-contiguous rows; one row when all fits share it (a broadcast view)."""
    if x.shape[0] > 1 and x.strides[0] == 0:
        return np.ascontiguousarray(x[:1])
    return np.ascontiguousarray(x)


def masked_quantile(a: np.ndarray, valid: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row over its valid samples (linear interpolation).

    Examples
    --------
    >>> a = np.array([[1.0, 5.0, 2.0, np.nan], [4.0, 3.0, 2.0, 1.0]])
    >>> masked_quantile(a, np.isfinite(a), 0.5)
    array([2. , 2.5])
    """
    compiled = _compiled()
    if compiled is not None and _f64(a) and np.shape(valid) == a.shape:
        out = np.empty(a.shape[0])
        compiled.masked_quantile(np.ascontiguousarray(a), _bool_rows(valid), float(q), out)
        return out
    k = valid.sum(axis=1)
    s = np.sort(np.where(valid, a, np.inf), axis=1)
    pos = q * np.maximum(k - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    frac = pos - lo
    v_lo = np.take_along_axis(s, lo[:, None], axis=1)[:, 0]
    v_hi = np.take_along_axis(s, hi[:, None], axis=1)[:, 0]
    out = v_lo + frac * (v_hi - v_lo)
    return np.where(k > 0, out, np.nan)


def masked_median(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of each row over its valid samples.

    Examples
    --------
    >>> masked_median(np.array([[3.0, 1.0, 100.0]]), np.array([[True, True, False]]))
    array([2.])
    """
    return masked_quantile(a, valid, 0.5)


def clip_round(
    r: np.ndarray,
    mask: np.ndarray,
    use: np.ndarray,
    floor: np.ndarray,
    n_min: np.ndarray,
    n_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One round of two-sided sigma clipping of residuals ``r``, per row.

    The samples of ``use`` kept are those within ``n_sigma`` robust standard
    deviations (``1.4826`` times the median absolute deviation, at least
    ``floor``) of the median, both taken over ``mask``; a row keeps ``mask``
    where fewer than ``n_min`` samples would remain.

    Returns
    -------
    new : ndarray of bool
        ``(n_fits, n_samples)``, the new mask.
    changed : ndarray of bool
        ``(n_fits,)``, rows whose mask changed.

    Examples
    --------
    >>> r = np.array([[0.1, -0.2, 0.0, 0.2, -0.1, 9.0]])
    >>> every = np.ones(r.shape, bool)
    >>> new, changed = clip_round(r, every, every, np.zeros(1), np.ones(1), 2.0)
    >>> new, changed
    (array([[ True,  True,  True,  True,  True, False]]), array([ True]))
    """
    compiled = _compiled()
    if compiled is not None and _f64(r) and r.shape == np.shape(mask) == np.shape(use):
        new = np.empty(r.shape, dtype=np.bool_)
        changed = np.empty(r.shape[0], dtype=np.bool_)
        compiled.clip_round(
            np.ascontiguousarray(r),
            _bool_rows(mask),
            _bool_rows(use),
            np.ascontiguousarray(floor, dtype=np.float64),
            np.ascontiguousarray(n_min, dtype=np.float64),
            float(n_sigma),
            new,
            changed,
        )
        return new, changed
    med = masked_median(r, mask)
    dev = np.abs(r - med[:, np.newaxis])
    sigma = np.maximum(1.4826 * masked_median(dev, mask), floor)
    new = use & (dev <= n_sigma * sigma[:, np.newaxis])
    enough = new.sum(axis=1) >= n_min
    new = np.where(enough[:, np.newaxis], new, mask)
    return new, (new != mask).any(axis=1)


def masked_extent(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest and largest valid ``x`` and the mean sample spacing of each row.

    Examples
    --------
    >>> x = np.array([[0.0, 1.0, 2.0, 9.0]])
    >>> masked_extent(x, np.array([[True, True, True, False]]))
    (array([0.]), array([2.]), array([1.]))
    """
    lo = np.where(valid, x, np.inf).min(axis=1)
    hi = np.where(valid, x, -np.inf).max(axis=1)
    k = valid.sum(axis=1)
    spacing = (hi - lo) / np.maximum(k - 1, 1)
    return lo, hi, spacing


def ls_amplitude(template: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Least-squares scale ``A`` of ``y ~ A * template`` over the valid samples.

    Unlike the highest data value, this is not biased upwards by noise.

    Examples
    --------
    >>> ls_amplitude(np.array([[1.0, 0.5]]), np.array([[2.0, 1.0]]), np.ones((1, 2), bool))
    array([2.])
    """
    compiled = _compiled()
    if compiled is not None and _f64(template, y) and template.shape == y.shape == np.shape(valid):
        out = np.empty(y.shape[0])
        compiled.ls_amplitude(
            np.ascontiguousarray(template), np.ascontiguousarray(y), _bool_rows(valid), out
        )
        return out
    g = np.where(valid, template, 0.0)
    return (g * y).sum(axis=1) / (g * g).sum(axis=1)


def _compact(x: np.ndarray, y: np.ndarray, valid: np.ndarray):
    """Rows sorted by x with the valid samples first; invalid ones repeat the last valid x."""
    order = np.argsort(np.where(valid, x, np.inf), axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    k = valid.sum(axis=1)
    v = np.arange(x.shape[1])[np.newaxis, :] < k[:, np.newaxis]
    last = np.take_along_axis(xs, np.maximum(k - 1, 0)[:, None], axis=1)
    xs = np.where(v, xs, last)
    ys = np.where(v, ys, 0.0)
    return xs, ys, v, k


def _boxcar(ys: np.ndarray, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Mean of the valid samples within ``h`` (per row) positions; -inf where invalid."""
    n_fits, n = ys.shape
    zeros = np.zeros((n_fits, 1))
    cum_y = np.concatenate([zeros, np.cumsum(np.where(v, ys, 0.0), axis=1)], axis=1)
    cum_v = np.concatenate([zeros, np.cumsum(v, axis=1, dtype=np.float64)], axis=1)
    idx = np.arange(n)[np.newaxis, :]
    lo = np.clip(idx - h[:, np.newaxis], 0, n)
    hi = np.clip(idx + h[:, np.newaxis] + 1, 0, n)
    total = np.take_along_axis(cum_y, hi, axis=1) - np.take_along_axis(cum_y, lo, axis=1)
    count = np.take_along_axis(cum_v, hi, axis=1) - np.take_along_axis(cum_v, lo, axis=1)
    return np.where(v, total / np.maximum(count, 1.0), -np.inf)


def _crossing(xs: np.ndarray, s: np.ndarray, i: np.ndarray, j: np.ndarray, level: np.ndarray):
    """x where the line through samples ``i`` and ``j`` reaches ``level``."""
    xi = np.take_along_axis(xs, i[:, None], axis=1)[:, 0]
    xj = np.take_along_axis(xs, j[:, None], axis=1)[:, 0]
    si = np.take_along_axis(s, i[:, None], axis=1)[:, 0]
    sj = np.take_along_axis(s, j[:, None], axis=1)[:, 0]
    frac = np.clip((level - si) / (sj - si), 0.0, 1.0)
    return xi + frac * (xj - xi)


def _half_maximum(
    xs: np.ndarray,
    ys: np.ndarray,
    v: np.ndarray,
    k: np.ndarray,
    h: np.ndarray,
    lopsided_factor: float = np.inf,
):
    """Peak of the data smoothed over ``2 h + 1`` samples and its half-maximum width."""
    n = xs.shape[1]
    idx = np.arange(n)[np.newaxis, :]
    s = _boxcar(ys, v, h)
    i0 = np.argmax(s, axis=1)
    height = np.take_along_axis(s, i0[:, None], axis=1)[:, 0]
    x_peak = np.take_along_axis(xs, i0[:, None], axis=1)[:, 0]
    half = 0.5 * height
    below = v & (s <= half[:, None])
    left = np.where(below & (idx < i0[:, None]), idx, -1).max(axis=1)
    right = np.where(below & (idx > i0[:, None]), idx, n).min(axis=1)
    has_left = left >= 0
    has_right = right < k
    li = np.clip(left, 0, n - 1)
    ri = np.clip(right, 0, n - 1)
    x_left = _crossing(xs, s, li, np.minimum(li + 1, n - 1), half)
    x_right = _crossing(xs, s, np.maximum(ri - 1, 0), ri, half)
    span = np.take_along_axis(xs, np.maximum(k - 1, 0)[:, None], axis=1)[:, 0] - xs[:, 0]
    spacing = span / np.maximum(k - 1, 1)
    half_left = x_peak - x_left
    half_right = x_right - x_peak
    # A much wider side is taken to run into a neighbouring (blended) peak: then
    # the narrower side gives the width, and the centroid is taken symmetrically.
    both = has_left & has_right
    narrow = np.minimum(half_left, half_right)
    lopsided = both & (np.maximum(half_left, half_right) > lopsided_factor * narrow)
    fwhm = np.where(
        both,
        np.where(lopsided, 2.0 * narrow, half_left + half_right),
        np.where(has_left, 2.0 * half_left, np.where(has_right, 2.0 * half_right, span)),
    )
    # a boxcar of w samples adds the variance (w**2 - 1) / 12 samples**2 (Gaussian approximation)
    w = 2.0 * h + 1.0
    smear = FWHM_PER_SIGMA**2 * (w**2 - 1.0) / 12.0 * spacing**2
    broad = np.maximum(fwhm, spacing)
    fwhm = np.where(has_left | has_right, np.sqrt(np.maximum(fwhm**2 - smear, spacing**2)), span)
    height = height * broad / np.maximum(fwhm, spacing)  # the smoothing keeps the area
    run = v & (idx > left[:, None]) & (idx < right[:, None])
    run &= ~lopsided[:, None] | (np.abs(xs - x_peak[:, None]) < narrow[:, None])
    wts = np.where(run, np.maximum(ys, 0.0), 0.0)
    wsum = wts.sum(axis=1)
    centroid = (wts * xs).sum(axis=1) / wsum
    center = np.where(both & (wsum > 0), centroid, x_peak)
    return center, height, fwhm, spacing, span


def peak_1d(x: np.ndarray, y: np.ndarray, valid: np.ndarray):
    """Position, height and full width at half maximum of the highest peak.

    The data are assumed to be free of a baseline.  They are sorted by x and
    smoothed with a 3-sample boxcar (which keeps a noise spike from winning
    at low signal-to-noise); the peak is the highest smoothed sample, the
    width the distance between the interpolated half-maximum crossings on
    either side (twice the distance to the one crossing found for a peak at
    an edge, the x range when there is none), corrected for the smoothing.
    This is repeated with a boxcar of about half the width found, which
    averages more noise away on well-sampled peaks.  The position is the
    centroid of the samples above half maximum (the highest sample for a
    peak at an edge).

    Parameters
    ----------
    x, y : ndarray
        ``(n_fits, n_samples)``, any order of x.
    valid : ndarray of bool
        ``(n_fits, n_samples)``.

    Returns
    -------
    center, height, fwhm, spacing, x_range : ndarray
        Each ``(n_fits,)``.  ``height`` is the peak value of the smoothed
        data, corrected for the smoothing (use :func:`ls_amplitude` with a
        profile for an amplitude less biased by noise); ``spacing`` is the
        mean sample spacing.

    Examples
    --------
    >>> x = np.linspace(-10, 10, 201)[np.newaxis, :]
    >>> y = 3.0 * np.exp(-0.5 * (x - 1.0) ** 2 / 2.0**2)
    >>> c, h, fwhm, dx, span = peak_1d(x, y, np.ones(y.shape, bool))
    >>> round(float(c[0]), 3), round(float(fwhm[0]) / FWHM_PER_SIGMA, 1)
    (1.0, 2.0)
    """
    compiled = _compiled()
    if compiled is not None and _f64(x, y) and x.shape == y.shape == np.shape(valid):
        out = np.empty((5, y.shape[0]))
        x_rows, y_rows, v_rows = _x_rows(x), np.ascontiguousarray(y), _bool_rows(valid)
        if compiled.peak_1d(x_rows, y_rows, v_rows, _BOX // 2, _LOPSIDED, out):
            return out[0], out[1], out[2], out[3], out[4]
    xs, ys, v, k = _compact(x, y, valid)
    first = _half_maximum(xs, ys, v, k, np.full(x.shape[0], _BOX // 2))
    fwhm, spacing = first[2], first[3]
    h = np.floor(fwhm / (4.0 * spacing))
    # At most an eighth of each fit's own valid samples: masked samples are as if
    # absent (not of the row's length).
    h = np.clip(np.where(np.isfinite(h), h, 1), 1, np.maximum(k // 8, 1)).astype(np.intp)
    center, height, fwhm, spacing, span = _half_maximum(xs, ys, v, k, h, _LOPSIDED)
    # no width from fewer than two distinct x
    fwhm = np.where(span > 0, fwhm, np.nan)
    return center, height, fwhm, spacing, span


def peak_2d(x0: np.ndarray, x1: np.ndarray, y: np.ndarray, valid: np.ndarray, n_iter: int = 12):
    """Position and covariance of the highest 2-D peak by adaptive moments.

    Starting at the highest valid sample, the intensity-weighted centroid
    and second moments are measured under a Gaussian window; the window is
    replaced by twice the measured moments, whose fixed point is the
    covariance of a Gaussian peak.  The window keeps noise far from the
    peak out of the moments.

    Returns
    -------
    cx, cy, cxx, cxy, cyy, spacing, span : ndarray
        Each ``(n_fits,)``; ``spacing`` is the mean distance between samples
        (``sqrt(area / n_valid)``), ``span`` the diagonal of the bounding box.

    Examples
    --------
    >>> g = np.mgrid[-10:10.5:0.5, -10:10.5:0.5]
    >>> x0, x1 = g[1].reshape(1, -1), g[0].reshape(1, -1)
    >>> y = np.exp(-0.5 * ((x0 - 1) ** 2 / 1.5**2 + (x1 + 2) ** 2 / 3.0**2))
    >>> cx, cy, cxx, cxy, cyy, dx, span = peak_2d(x0, x1, y, np.ones(y.shape, bool))
    >>> np.round([cx[0], cy[0], np.sqrt(cxx[0]), np.sqrt(cyy[0]), cxy[0]], 2)
    array([ 1. , -2. ,  1.5,  3. ,  0. ])
    """
    k = valid.sum(axis=1)
    lo0, hi0, _ = masked_extent(x0, valid)
    lo1, hi1, _ = masked_extent(x1, valid)
    w0 = np.maximum(hi0 - lo0, 0.0)
    w1 = np.maximum(hi1 - lo1, 0.0)
    area = np.where((w0 > 0) & (w1 > 0), w0 * w1, np.maximum(w0, w1) ** 2)
    spacing = np.sqrt(area / np.maximum(k, 1))
    span = np.hypot(w0, w1)
    yv = np.where(valid, y, 0.0)
    ip = np.argmax(np.where(valid, y, -np.inf), axis=1)[:, None]
    peak = np.take_along_axis(yv, ip, axis=1)[:, 0]
    cx = np.take_along_axis(x0, ip, axis=1)[:, 0]
    cy = np.take_along_axis(x1, ip, axis=1)[:, 0]
    # start from the area above half maximum: pi * 2 ln2 * s**2 for a round Gaussian
    n_half = (valid & (y > 0.5 * peak[:, None])).sum(axis=1)
    s2 = n_half * spacing**2 / (2.0 * math.pi * math.log(2.0))
    s2 = np.clip(s2, spacing**2, (span / 4.0) ** 2)
    cxx, cyy, cxy = s2.copy(), s2.copy(), np.zeros_like(s2)
    min_var = 0.25 * spacing**2
    for _ in range(n_iter):
        det = cxx * cyy - cxy**2
        dx = x0 - cx[:, None]
        dy = x1 - cy[:, None]
        quad = cyy[:, None] * dx**2 - 2.0 * cxy[:, None] * dx * dy + cxx[:, None] * dy**2
        q = quad / det[:, None]
        wy = np.where(valid, np.exp(-0.5 * q), 0.0) * yv
        total = wy.sum(axis=1)
        mx = (wy * dx).sum(axis=1) / total
        my = (wy * dy).sum(axis=1) / total
        mxx = (wy * (dx - mx[:, None]) ** 2).sum(axis=1) / total
        myy = (wy * (dy - my[:, None]) ** 2).sum(axis=1) / total
        mxy = (wy * (dx - mx[:, None]) * (dy - my[:, None])).sum(axis=1) / total
        ok = (
            (total > 0)
            & (mxx > 0)
            & (myy > 0)
            & (mxx * myy - mxy**2 > 0)
            & (mx**2 <= cxx)
            & (my**2 <= cyy)  # the centre moves by at most the window
        )
        ok &= np.isfinite(mxx + myy + mxy + mx + my)
        cx = np.where(ok, cx + mx, cx)
        cy = np.where(ok, cy + my, cy)
        nxx = np.clip(2.0 * mxx, min_var, span**2)
        nyy = np.clip(2.0 * myy, min_var, span**2)
        nxy = np.clip(2.0 * mxy, -0.99 * np.sqrt(nxx * nyy), 0.99 * np.sqrt(nxx * nyy))
        cxx = np.where(ok, nxx, cxx)
        cyy = np.where(ok, nyy, cyy)
        cxy = np.where(ok, nxy, cxy)
    # no covariance from samples along a line
    flat = ~((w0 > 0) & (w1 > 0))
    cxx, cxy, cyy = (np.where(flat, np.nan, c) for c in (cxx, cxy, cyy))
    return cx, cy, cxx, cxy, cyy, spacing, span


def polyfit_masked(x: np.ndarray, y: np.ndarray, valid: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares polynomial of each row over its valid samples.

    Solved in centred, scaled x for conditioning (a pseudo-inverse of the
    small normal matrices, so rows with too few samples get the
    minimum-norm solution instead of an error), then expanded to the
    coefficients of powers of x.

    Returns
    -------
    ndarray
        ``(n_fits, degree + 1)``, ``c0`` first.

    Examples
    --------
    >>> x = np.linspace(0.0, 4.0, 9)[np.newaxis, :]
    >>> y = 1.0 + 2.0 * x - 0.5 * x**2
    >>> polyfit_masked(x, y, np.ones(y.shape, bool), 2).round(10)
    array([[ 1. ,  2. , -0.5]])
    """
    compiled = _compiled()
    if compiled is not None and _f64(x, y) and x.shape == y.shape == np.shape(valid):
        n_fits = y.shape[0]
        center, scale = np.empty(n_fits), np.empty(n_fits)
        sums_arr = np.empty((n_fits, 2 * degree + 1))
        rhs_arr = np.empty((n_fits, degree + 1))
        compiled.poly_sums(
            _x_rows(x),
            np.ascontiguousarray(y),
            _bool_rows(valid),
            int(degree),
            center,
            scale,
            sums_arr,
            rhs_arr,
        )
        return _poly_solve(center, scale, sums_arr, rhs_arr, degree)
    x = np.where(valid, x, 0.0)
    w = valid.astype(np.float64)
    k = w.sum(axis=1)
    center = (w * x).sum(axis=1) / np.maximum(k, 1.0)
    lo, hi, _ = masked_extent(x, valid)
    scale = 0.5 * (hi - lo)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    center = np.where(np.isfinite(center), center, 0.0)
    t = np.where(valid, (x - center[:, None]) / scale[:, None], 0.0)
    # the normal matrix is a Hankel matrix of the power sums sum(w t**k), k <= 2 degree
    power = w
    sums = []
    rhs = []
    yv = np.where(valid, y, 0.0)
    for order in range(2 * degree + 1):
        sums.append(power.sum(axis=1))
        if order <= degree:
            rhs.append((power * yv).sum(axis=1))
        power = power * t
    return _poly_solve(center, scale, np.stack(sums, axis=-1), np.stack(rhs, axis=-1), degree)


def _poly_solve(
    center: np.ndarray, scale: np.ndarray, sums_arr: np.ndarray, rhs_arr: np.ndarray, degree: int
) -> np.ndarray:
    """Coefficients of powers of x from the power sums of ``polyfit_masked``."""
    ij = np.add.outer(np.arange(degree + 1), np.arange(degree + 1))
    normal = sums_arr[:, ij]
    a = np.einsum("fij,fj->fi", np.linalg.pinv(normal), rhs_arr)
    # p(x) = sum_j a_j ((x - c) / s)**j = sum_i x**i sum_{j>=i} a_j s**-j C(j, i) (-c)**(j-i)
    out = np.zeros_like(a)
    for j in range(degree + 1):
        aj = a[:, j] / scale**j
        for i in range(j + 1):
            out[:, i] += aj * math.comb(j, i) * (-center) ** (j - i)
    return out
