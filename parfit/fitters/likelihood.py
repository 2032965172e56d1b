"""Test statistics and profile-likelihood intervals of a block of fits.

Both refit the block's pixels with some parameters held at given values,
through any fitter, all pixels of a block together:

* :func:`ts_values`: every pixel refitted under the null hypothesis
  (``null={"amplitude_0": 0.0}``); ``TS = stat(null) - stat(best)`` and
  ``sqrt(TS)`` signed by the tested parameter's best value minus its null
  value, as Gammapy's ``TSMapEstimator`` gives.  A null fit that ends below
  the best fit shows the best fit missed the global optimum: the full model
  is then refitted from the null solution and the better one kept (flag
  ``RETRIED``), so TS is never negative beyond round-off.
* :func:`profile_intervals`: for each profiled parameter the values where
  the profiled statistic (the other free parameters re-optimised) rises by
  ``n_sigma**2`` on either side of the best fit, and by ``n_sigma_ul**2`` on
  the upper side (the upper limit).  The roots are bracketed and refined by
  regula falsi on ``sqrt(delta)``, which is linear in the parameter for a
  parabolic profile, so a few rounds suffice; every round is one call of
  the fitter on all unfinished pixels.  A bound reached before the
  statistic rises enough gives the bound and the flag ``LIMIT_AT_BOUND``;
  so does the end of the likelihood's domain (for counts, where a negative
  component would make the model negative: the profile is infinite beyond).

For chi-square the statistic is the raw chi-square: a rise of ``n**2`` is
an ``n``-sigma interval when the weights are ``1/sigma``.

Examples
--------
>>> import numpy as np
>>> from parfit.fitters import BatchedFitter, FitBlock
>>> from parfit.models import Const1D
>>> x = np.arange(100.0)
>>> y = np.full((1, 100), 4.0)  # 400 counts in all: the mean 4 +- 0.2
>>> block = FitBlock(x=(x,), y=y, weights=None, valid=np.ones((1, 100), bool),
...                  p0=np.array([[3.0]]), lower=np.array([[0.0]]),
...                  upper=np.array([[np.inf]]), sample_shape=(100,))
>>> def fit(model, block):
...     return BatchedFitter().fit_block(model, block, statistic="cash")
>>> best = fit(Const1D(), block)
>>> found = profile_intervals(fit, Const1D(), block, best, ["amplitude"], 1.0, 2.0)
>>> [round(float(found[k][0]), 3) for k in ("amplitude_lo", "amplitude_hi", "amplitude_ul")]
[3.803, 4.203, 4.413]
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..status import Flag, Status
from .base import BlockResult, FitBlock

__all__ = [
    "LikelihoodRequest",
    "profile_fields",
    "profile_intervals",
    "ts_values",
]

#: A fitter bound to its options and statistic: ``fit(model, block) -> BlockResult``.
FitFunction = Callable[[Any, FitBlock], BlockResult]

#: Regula falsi stops when ``sqrt(delta)`` is this close to ``n_sigma``.
_ROOT_TOLERANCE = 1e-4
#: Rounds of root finding (brackets and refinements) before giving up (NaN).
_MAX_ROUNDS = 40


@dataclass(frozen=True)
class LikelihoodRequest:
    """What a run computes besides the best fit: the statistic, TS and profiles.

    Attributes
    ----------
    statistic : str
        ``"chi2"``, ``"cash"`` or ``"cstat"``.
    null : tuple of (str, float)
        Parameters held at these values for the null hypothesis (empty: no
        TS map).
    profile : tuple of str
        Parameters whose profile-likelihood intervals and upper limits are
        computed.
    n_sigma, n_sigma_ul : float
        The interval's rise ``n_sigma**2`` and the upper limit's
        ``n_sigma_ul**2``.
    """

    statistic: str = "chi2"
    null: tuple[tuple[str, float], ...] = ()
    profile: tuple[str, ...] = ()
    n_sigma: float = 1.0
    n_sigma_ul: float = 2.0

    @property
    def fields(self) -> tuple[str, ...]:
        """The maps these add to a result's (``ts``, ``sqrt_ts``, ``<p>_lo``...)."""
        out: list[str] = ["ts", "sqrt_ts"] if self.null else []
        return tuple(out) + profile_fields(self.profile)

    @classmethod
    def from_description(cls, described: Mapping[str, Any] | None) -> "LikelihoodRequest":
        """The request :meth:`describe` described (the default for None: chi-square)."""
        if not described:
            return cls()
        return cls(
            statistic=str(described.get("statistic", "chi2")),
            null=tuple((str(k), float(v)) for k, v in (described.get("null") or {}).items()),
            profile=tuple(str(n) for n in described.get("profile") or ()),
            n_sigma=float(described.get("n_sigma", 1.0)),
            n_sigma_ul=float(described.get("n_sigma_ul", 2.0)),
        )

    def describe(self) -> dict[str, Any]:
        """Plain values for provenance and the options fingerprint."""
        return {
            "statistic": self.statistic,
            "null": {name: value for name, value in self.null},
            "profile": list(self.profile),
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
        }


def profile_fields(names: Sequence[str]) -> tuple[str, ...]:
    """The map names of the profiles of ``names``: ``<p>_lo``, ``<p>_hi``, ``<p>_ul`` each.

    Examples
    --------
    >>> profile_fields(["amplitude"])
    ('amplitude_lo', 'amplitude_hi', 'amplitude_ul')
    """
    return tuple(f"{name}_{end}" for name in names for end in ("lo", "hi", "ul"))


def _with_fixed(model: Any, names: Sequence[str]) -> Any:
    """A copy of ``model`` with ``names`` fixed (at each row's starting value)."""
    held = model.copy()
    for name in names:
        held.parameters[name].fixed = True
    return held


def _starts(block: FitBlock, best: BlockResult, rows: np.ndarray) -> FitBlock:
    """Rows ``rows`` of ``block``, starting from their best fit (NaN entries: the old start)."""
    sub = block.take(rows)
    params = best.params[rows]
    sub.p0 = np.where(np.isfinite(params), params, sub.p0)
    return sub


def _converged_statistic(result: BlockResult) -> np.ndarray:
    """The statistic of fits that converged (OK, or demoted as degenerate), NaN elsewhere."""
    done = np.isin(result.status, (Status.OK, Status.DEGENERATE))
    return np.where(done, result.statistic, np.nan)


def _round_off(stat: np.ndarray) -> np.ndarray:
    return 1e-7 * np.maximum(1.0, np.abs(stat))


def ts_values(
    fit: FitFunction,
    model: Any,
    block: FitBlock,
    best: BlockResult,
    null: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """``ts`` and ``sqrt_ts`` of every OK fit of ``best`` under the ``null`` hypothesis.

    Parameters
    ----------
    fit : callable
        ``fit(model, block) -> BlockResult``, the run's fitter with its
        options and statistic.
    model : parfit model
    block : FitBlock
    best : BlockResult
        The best fits of ``block``; rows the null hypothesis beats are
        replaced in place by a refit from the null solution.
    null : mapping
        Parameter name -> value under the null hypothesis; ``sqrt_ts`` takes
        the sign of the first one's best value minus its null value.

    Returns
    -------
    dict
        ``{"ts": ..., "sqrt_ts": ...}``, ``(n_fits,)``, NaN where the best
        or the null fit failed.
    """
    n_fits = block.n_fits
    ts = np.full(n_fits, np.nan)
    sqrt_ts = np.full(n_fits, np.nan)
    rows = np.flatnonzero(best.status == Status.OK)
    if not len(rows):
        return {"ts": ts, "sqrt_ts": sqrt_ts}
    names = list(null)
    columns = [model.param_names.index(name) for name in names]
    sub = _starts(block, best, rows)
    sub.p0[:, columns] = [null[name] for name in names]
    under_null = fit(_with_fixed(model, names), sub)
    stat0 = _converged_statistic(under_null)
    beaten = np.flatnonzero(stat0 < best.statistic[rows] - _round_off(best.statistic[rows]))
    if len(beaten):
        # The best fit missed a better optimum the null fit found: refit from there.
        again = sub.take(beaten)
        found = under_null.params[beaten]
        again.p0 = np.where(np.isfinite(found), found, again.p0)
        refit = fit(model, again)
        for j, i in enumerate(rows[beaten]):
            if refit.status[j] == Status.OK and refit.statistic[j] < best.statistic[i]:
                best.params[i] = refit.params[j]
                best.errors[i] = refit.errors[j]
                best.statistic[i] = refit.statistic[j]
                if best.flags is not None:
                    flags = 0 if refit.flags is None else int(refit.flags[j])
                    best.flags[i] = np.uint8(flags | Flag.RETRIED)
    delta = stat0 - best.statistic[rows]
    delta = np.where((delta < 0) & (delta > -_round_off(stat0)), 0.0, delta)
    delta = np.where(delta < 0, np.nan, delta)  # the null still wins: no honest TS
    ts[rows] = delta
    first = columns[0]
    with np.errstate(invalid="ignore"):
        sign = np.where(best.params[rows, first] >= null[names[0]], 1.0, -1.0)
        sqrt_ts[rows] = sign * np.sqrt(delta)
    return {"ts": ts, "sqrt_ts": sqrt_ts}


def profile_intervals(
    fit: FitFunction,
    model: Any,
    block: FitBlock,
    best: BlockResult,
    names: Sequence[str],
    n_sigma: float,
    n_sigma_ul: float,
) -> dict[str, np.ndarray]:
    """Profile-likelihood intervals and upper limits of ``names`` for every OK fit of ``best``.

    Parameters
    ----------
    fit : callable
        ``fit(model, block) -> BlockResult``, the run's fitter with its
        options and statistic.
    model : parfit model
    block : FitBlock
    best : BlockResult
        The best fits of ``block`` (their values and errors start the search).
    names : sequence of str
        Free parameters to profile.
    n_sigma, n_sigma_ul : float
        The interval ends where the statistic rose by ``n_sigma**2``, the
        upper limit where it rose by ``n_sigma_ul**2`` (upper side).

    Returns
    -------
    dict
        ``"<p>_lo"``, ``"<p>_hi"``, ``"<p>_ul"`` (values of the parameter,
        ``(n_fits,)``, NaN where the fit failed or no root was found) for each
        name, and ``"flags"``: ``LIMIT_AT_BOUND`` where one of them is a bound.
    """
    n_fits = block.n_fits
    out: dict[str, np.ndarray] = {}
    flags = np.zeros(n_fits, dtype=np.uint8)
    rows = np.flatnonzero(best.status == Status.OK)
    for name in names:
        for end in ("lo", "hi", "ul"):
            out[f"{name}_{end}"] = np.full(n_fits, np.nan)
        if not len(rows):
            continue
        k = model.param_names.index(name)
        held = _with_fixed(model, [name])
        # One search per (pixel, end): lower side, upper side, upper limit.
        ends = (("lo", -1.0, n_sigma), ("hi", 1.0, n_sigma), ("ul", 1.0, n_sigma_ul))
        pixel = np.concatenate([rows] * len(ends))
        side = np.concatenate([np.full(len(rows), s) for _, s, _ in ends])
        level = np.concatenate([np.full(len(rows), lv) for _, _, lv in ends])
        found, at_bound = _roots(fit, held, block, best, pixel, k, side, level)
        for e, (end, _, _) in enumerate(ends):
            part = slice(e * len(rows), (e + 1) * len(rows))
            out[f"{name}_{end}"][rows] = found[part]
            flags[rows[at_bound[part]]] |= np.uint8(Flag.LIMIT_AT_BOUND)
    out["flags"] = flags
    return out


def _roots(
    fit: FitFunction,
    held: Any,
    block: FitBlock,
    best: BlockResult,
    pixel: np.ndarray,
    k: int,
    side: np.ndarray,
    level: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Where ``sqrt(delta)`` reaches ``level`` (n sigma) along ``side`` from each best ``k``.

    Works in the distance ``t >= 0`` from the best value.  The bracket starts
    at ``t = 0`` (``z = 0``) and the first trial at ``level`` errors; without
    an upper end it grows by the local slope (at most fourfold), then
    regula falsi (Illinois) refines it.
    """
    n = len(pixel)
    theta_best = best.params[pixel, k]
    sigma = best.errors[pixel, k]
    bound = np.where(side > 0, block.upper[pixel, k], block.lower[pixel, k])
    reach = np.abs(bound - theta_best)  # inf without a bound
    stat_best = best.statistic[pixel]
    target = np.asarray(level, dtype=np.float64)  # sqrt(delta) at the end: n_sigma
    # Bracket on f = z - target: (t_a, f_a < 0) and (t_b, f_b > 0); t_b = inf: none yet.
    t_a, f_a = np.zeros(n), -target
    t_b, f_b = np.full(n, np.inf), np.full(n, np.nan)
    kept = np.zeros(n, dtype=np.int8)  # which end the last round replaced: 1 a, 2 b
    found = np.full(n, np.nan)
    at_bound = np.zeros(n, dtype=bool)
    unit = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.maximum(np.abs(theta_best), 1.0))
    t = np.minimum(target * unit, reach)
    warm = best.params[pixel].copy()  # the others' values at the last point evaluated
    active = np.arange(n)
    for _ in range(_MAX_ROUNDS):
        if not len(active):
            break
        sub = _starts(block, best, pixel[active])
        sub.p0 = np.where(np.isfinite(warm[active]), warm[active], sub.p0)
        theta = theta_best[active] + side[active] * t[active]
        sub.p0[:, k] = np.clip(theta, sub.lower[:, k], sub.upper[:, k])
        result = fit(held, sub)
        stat = _converged_statistic(result)
        # Below the best fit (round-off, or a best fit stopped short on the edge of
        # the likelihood's domain, flagged AT_BOUND): as at the optimum.
        delta = np.maximum(stat - stat_best[active], 0.0)
        with np.errstate(invalid="ignore"):
            f = np.sqrt(np.where(delta >= 0, delta, np.nan)) - target[active]
        # No fit at all there: for counts, the likelihood is undefined (infinite)
        # whatever the other parameters, so the end lies closer (bisection).
        f = np.where(np.isnan(stat) & np.isfinite(t_a[active]), np.inf, f)
        good = ~np.isnan(f)
        moved = good & np.all(np.isfinite(result.params), axis=1)
        warm[active[moved]] = result.params[moved]
        tt = t[active]
        done = good & (np.abs(f) <= _ROOT_TOLERANCE)
        hit_bound = good & ~done & (f < 0) & (tt >= reach[active])
        found[active[done]] = theta_best[active[done]] + side[active[done]] * tt[done]
        found[active[hit_bound]] = bound[active[hit_bound]]
        at_bound[active[hit_bound]] = True
        below = active[good & ~done & ~hit_bound & (f < 0)]
        above = active[good & ~done & (f > 0)]
        # Illinois: an end kept twice in a row has its value halved.
        f_b[below[kept[below] == 1]] *= 0.5
        f_a[above[kept[above] == 2]] *= 0.5
        position = {int(a): j for j, a in enumerate(active)}
        take = np.array([position[int(i)] for i in below], dtype=np.intp)
        t_a[below], f_a[below], kept[below] = tt[take], f[take], 1
        take = np.array([position[int(i)] for i in above], dtype=np.intp)
        t_b[above], f_b[above], kept[above] = tt[take], f[take], 2
        active = active[good & ~done & ~hit_bound]
        # The likelihood ends (is undefined beyond) before it rises enough: the
        # end of its domain is the end of the interval, like a bound.
        wall = active[np.isinf(f_b[active]) & (t_b[active] - t_a[active] <= 1e-6 * unit[active])]
        found[wall] = theta_best[wall] + side[wall] * t_a[wall]
        at_bound[wall] = True
        active = np.setdiff1d(active, wall, assume_unique=True)
        # Next trial: regula falsi inside a bracket, else a step out along the slope.
        ta, fa, tb, fb = t_a[active], f_a[active], t_b[active], f_b[active]
        z_a = fa + target[active]
        far = 4.0 * np.maximum(ta, unit[active])
        bracketed = np.isfinite(tb)
        with np.errstate(all="ignore"):
            falsi = ta - fa * (tb - ta) / (fb - fa)
            outward = np.where(z_a > 0, ta * target[active] / z_a, far)
        outward = np.clip(outward, 1.1 * ta, far)
        nxt = np.where(bracketed, falsi, outward)
        bad = bracketed & (~np.isfinite(nxt) | (nxt <= ta) | (nxt >= tb))
        nxt = np.where(bad, 0.5 * (ta + tb), nxt)
        t[active] = np.minimum(nxt, reach[active])
    return found, at_bound
