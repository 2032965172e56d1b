"""A corpus of hard spectra, and the per-fit scipy oracle a solver is judged by.

parfit promises to be never less right than a careful per-fit fit from the
same start.  This module makes that promise checkable: :func:`hard_corpus`
builds seeded sets of difficult spectra (noise only, weak lines, far
starts, lines from under a channel to half the band wide, baselines,
blends, masked gaps, data in tiny and huge units), each with the starting
values and bounds both solvers get, and :func:`trf_oracle` fits every
spectrum on its own with :func:`scipy.optimize.least_squares`
(``method="trf"``, its defaults, the model's analytic Jacobian) from the
same start.  The test suite and ``benchmarks/bench_accuracy.py`` use both.

Nothing is downloaded; the same call always gives the same spectra.
"""

import dataclasses

import numpy as np
from scipy.optimize import least_squares

from .models import Gaussian1D, Linear1D

__all__ = [
    "CorpusCase",
    "KINDS",
    "SCALED_KINDS",
    "SCALES",
    "hard_corpus",
    "trf_oracle",
    "fit_case",
    "compare",
    "no_worse",
]

#: Data scales of the ``scaled_*`` kinds.
SCALES = {
    "scaled_1e-26": 1e-26,
    "scaled_1e-20": 1e-20,
    "scaled_1e+20": 1e20,
    "scaled_1e+150": 1e150,
}
#: Kinds whose data are a :func:`hard_corpus` ``"moderate"`` set times a scale.
SCALED_KINDS = tuple(SCALES)
#: Every kind of the corpus.
KINDS = (
    "noise_only",
    "weak",
    "amplitude_10x",
    "position_3w",
    "narrow",
    "wide",
    "baseline",
    "blend2",
    "blend3",
    "masked",
    "moderate",
) + SCALED_KINDS


@dataclasses.dataclass
class CorpusCase:
    """One kind of spectra of the corpus, with the start both solvers get.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    x : ndarray
        ``(n_channels,)`` channel numbers.
    y : ndarray
        ``(n, n_channels)`` data (noise sigma 1 times ``scale``); NaN in masked gaps.
    model : parfit model
        The model fitted; its bounds are those of ``lower``/``upper``.
    p0, lower, upper : ndarray
        ``(n, n_params)`` starting values and bounds, in model parameter order.
    truth : ndarray
        ``(n, n_params)`` true parameters (NaN for noise-only spectra).
    scale : float
        Factor applied to the data and to the amplitude-like parameters.
    """

    kind: str
    x: np.ndarray
    y: np.ndarray
    model: object
    p0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    truth: np.ndarray
    scale: float = 1.0

    @property
    def n(self):
        return self.y.shape[0]

    def block(self):
        """The spectra as one :class:`~parfit.fitters.FitBlock` (NaN samples not valid)."""
        from .fitters.base import FitBlock

        return FitBlock(
            x=(self.x,),
            y=self.y,
            weights=None,
            valid=np.isfinite(self.y),
            p0=self.p0.copy(),
            lower=self.lower.copy(),
            upper=self.upper.copy(),
            sample_shape=(self.y.shape[1],),
        )


def _gaussians(n_comp, baseline=False):
    model = Gaussian1D()
    for _ in range(n_comp - 1):
        model = model + Gaussian1D()
    return model + Linear1D() if baseline else model


def _lines(rng, n, n_comp, amp, std, centre=(16.0, 48.0), separation=None):
    """``(n, n_comp, 3)`` true amplitude, mean and stddev of each line."""
    a = rng.uniform(*amp, (n, n_comp))
    s = rng.uniform(*std, (n, n_comp))
    if separation is None:
        m = rng.uniform(*centre, (n, n_comp))
    else:  # a blend: neighbours ``separation`` mean widths apart
        first = rng.uniform(24.0, 32.0, n)
        gaps = rng.uniform(*separation, (n, n_comp - 1)) * s.mean(axis=1, keepdims=True)
        m = first[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    return np.stack([a, m, s], axis=-1)


def _perturb(rng, lines, amp=(0.7, 1.4), shift=0.5, width=(0.75, 1.35)):
    """Starts near the truth: amplitude and width times a factor, mean shifted by widths."""
    start = lines.copy()
    start[..., 0] *= rng.uniform(*amp, lines.shape[:-1])
    start[..., 1] += rng.uniform(-shift, shift, lines.shape[:-1]) * lines[..., 2]
    start[..., 2] *= rng.uniform(*width, lines.shape[:-1])
    return start


def hard_corpus(kind, n=300, *, seed=0, n_channels=64):
    """Seeded hard spectra of one kind, with starting values and bounds.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`:

        - ``"noise_only"``: pure noise, one Gaussian from a common start
          (amplitude 1, mean mid-band, stddev 3 channels);
        - ``"weak"``: a line of S/N 1-5 from a start near it;
        - ``"amplitude_10x"``: a start ten times the amplitude;
        - ``"position_3w"``: a start three widths away from the line;
        - ``"narrow"``: lines 0.6-1.6 channels FWHM;
        - ``"wide"``: lines 8-32 channels FWHM (up to half the band);
        - ``"baseline"``: a weak line on a sloped baseline
          (``Gaussian1D + Linear1D``, the baseline starting at 0);
        - ``"blend2"``, ``"blend3"``: two or three lines 1-2.5 widths apart;
        - ``"masked"``: a line with a gap of 6-16 NaN channels, sometimes on it;
        - ``"moderate"``: lines of S/N 3-15 from starts near them;
        - ``"scaled_1e-26"`` ... ``"scaled_1e+150"``: ``"moderate"`` times
          1e-26, 1e-20, 1e20 or 1e150 (data, amplitudes and their starts).
    n : int
        Number of spectra.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    n_channels : int
        Samples per spectrum.

    Returns
    -------
    CorpusCase

    Examples
    --------
    >>> case = hard_corpus("blend2", n=5)
    >>> case.y.shape, case.p0.shape, case.model.param_names[:3]
    ((5, 64), (5, 6), ('amplitude_0', 'mean_0', 'stddev_0'))
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    scale = SCALES.get(kind, 1.0)
    base = "moderate" if kind in SCALES else kind
    rng = np.random.default_rng([seed, KINDS.index(base)])
    x = np.arange(float(n_channels))
    noise = rng.normal(0.0, 1.0, (n, n_channels))
    baseline = None
    n_comp = {"blend2": 2, "blend3": 3}.get(base, 1)
    if base == "noise_only":
        truth = np.full((n, 1, 3), np.nan)
        start = np.broadcast_to([1.0, n_channels / 2.0, 3.0], (n, 1, 3)).copy()
    else:
        if base == "weak":
            truth = _lines(rng, n, 1, (1.0, 5.0), (1.5, 5.0))
        elif base in ("amplitude_10x", "position_3w"):
            truth = _lines(rng, n, 1, (5.0, 20.0), (1.5, 4.0), centre=(20.0, 44.0))
        elif base == "narrow":
            truth = _lines(rng, n, 1, (5.0, 20.0), (0.6 / 2.3548, 1.6 / 2.3548))
        elif base == "wide":
            truth = _lines(
                rng, n, 1, (2.0, 6.0), (8.0 / 2.3548, 32.0 / 2.3548), centre=(24.0, 40.0)
            )
        elif base == "baseline":
            truth = _lines(rng, n, 1, (2.0, 6.0), (1.5, 4.0))
            baseline = np.stack([rng.uniform(-0.05, 0.05, n), rng.uniform(-2.0, 2.0, n)], -1)
        elif n_comp > 1:
            truth = _lines(rng, n, n_comp, (3.0, 10.0), (2.0, 4.0), separation=(1.0, 2.5))
        else:  # masked, moderate
            truth = _lines(rng, n, 1, (3.0, 15.0), (1.5, 5.0))
        start = _perturb(rng, truth)
        if base == "amplitude_10x":
            start = _perturb(rng, truth, amp=(10.0, 10.0), shift=0.2, width=(0.9, 1.1))
        elif base == "position_3w":
            start = _perturb(rng, truth, amp=(0.9, 1.1), shift=0.0, width=(0.9, 1.1))
            start[..., 1] += rng.choice([-3.0, 3.0], (n, 1)) * truth[..., 2]
        elif base == "narrow":
            start[..., 2] = truth[..., 2] * rng.uniform(0.8, 1.5, (n, 1))
            start[..., 1] = truth[..., 1] + rng.uniform(-0.3, 0.3, (n, 1))
    model = _gaussians(n_comp, baseline is not None)
    y = noise.copy()
    for c in range(n_comp):
        a, m, s = (truth[:, c, j][:, None] for j in range(3))
        if np.all(np.isfinite(a)):
            y += a * np.exp(-0.5 * ((x - m) / s) ** 2)
    flat_truth = truth.reshape(n, -1)
    flat_start = start.reshape(n, -1)
    if baseline is not None:
        y += baseline[:, :1] * x + baseline[:, 1:]
        flat_truth = np.concatenate([flat_truth, baseline], axis=1)
        flat_start = np.concatenate([flat_start, np.zeros((n, 2))], axis=1)
    if base == "masked":
        width = rng.integers(6, 17, n)
        begin = rng.integers(0, n_channels - width)
        gap = (x >= begin[:, None]) & (x < (begin + width)[:, None])
        y[gap] = np.nan
    _, _, lower, upper = _start_and_bounds(model)
    linear = np.array(
        [p.startswith(("amplitude", "slope", "intercept")) for p in model.param_names]
    )
    factor = np.where(linear, scale, 1.0)
    return CorpusCase(
        kind=kind,
        x=x,
        y=y * scale,
        model=model,
        p0=flat_start * factor,
        lower=np.broadcast_to(lower * factor, (n, len(lower))).copy(),
        upper=np.broadcast_to(upper * factor, (n, len(upper))).copy(),
        truth=flat_truth * factor,
        scale=scale,
    )


def _start_and_bounds(model):
    """``(names, p0, lower, upper)`` of ``model``, as every parfit fitter reads them."""
    from .fitters import Fitter

    names, values, lower, upper = zip(*Fitter().parameter_arrays(model))
    return (
        names,
        np.array(values, dtype=float),
        np.array(lower, dtype=float),
        np.array(upper, dtype=float),
    )


def trf_oracle(case, **options):
    """Fit every spectrum of ``case`` alone with scipy's TRF from its start.

    Each fit is :func:`scipy.optimize.least_squares` with ``method="trf"``,
    scipy's defaults (``ftol = xtol = gtol = 1e-8``, ``x_scale=1``) unless
    ``options`` say otherwise, the start and bounds of the case, and the
    model's analytic Jacobian on the valid (finite) samples.

    Returns
    -------
    params : ndarray
        ``(n, n_params)`` fitted values.
    chi2 : ndarray
        ``(n,)`` final chi-square (NaN where scipy raised).
    success : ndarray
        ``(n,)`` bool, scipy's ``status > 0``.

    Examples
    --------
    >>> case = hard_corpus("moderate", n=3)
    >>> params, chi2, success = trf_oracle(case)
    >>> bool(success.all()), params.shape
    (True, (3, 3))
    """
    n, n_params = case.p0.shape
    params = np.full((n, n_params), np.nan)
    chi2 = np.full(n, np.nan)
    success = np.zeros(n, dtype=bool)
    model = case.model
    for i in range(n):
        valid = np.isfinite(case.y[i])
        x, y = case.x[valid], case.y[i, valid]

        def fun(p, x=x, y=y):
            return model.evaluate(x, p[None, :])[0] - y

        def jac(p, x=x):
            return model.jacobian(x, p[None, :])[0]

        try:
            sol = least_squares(
                fun,
                case.p0[i],
                jac=jac,
                bounds=(case.lower[i], case.upper[i]),
                method="trf",
                **options,
            )
        except ValueError:
            continue
        params[i] = sol.x
        chi2[i] = float(sol.fun @ sol.fun)
        success[i] = sol.status > 0
    return params, chi2, success


def fit_case(case, fitter=None):
    """Fit every spectrum of ``case`` with a parfit fitter (default: the batched solver).

    Returns
    -------
    parfit.fitters.BlockResult
    """
    from .fitters import BatchedFitter

    fitter = BatchedFitter() if fitter is None else fitter
    return fitter.fit_block(case.model, case.block())


def no_worse(chi2, oracle_chi2, oracle_success, rtol=1e-6):
    """Where a fit's chi-square is no worse than the oracle's (or the oracle failed).

    ``chi2`` is the chi-square the fit reached: ``BlockResult.statistic``,
    which ``Status.DEGENERATE`` fits keep; NaN (a fit that failed) counts as
    worse wherever the oracle succeeded.

    Examples
    --------
    >>> import numpy as np
    >>> no_worse(np.array([1.0, 2.0, np.nan, 5.0]), np.array([1.0, 1.0, 1.0, np.nan]),
    ...          np.array([True, True, True, False]))
    array([ True, False, False,  True])
    """
    with np.errstate(invalid="ignore"):
        better_or_equal = np.asarray(chi2) <= np.asarray(oracle_chi2) * (1 + rtol)
    return np.where(oracle_success, better_or_equal, True)


def compare(case, result, oracle):
    """Figures of a fit of ``case`` against :func:`trf_oracle`: fractions, flags, honesty.

    Parameters
    ----------
    case : CorpusCase
    result : parfit.fitters.BlockResult
        From :func:`fit_case`.
    oracle : tuple
        What :func:`trf_oracle` returned for ``case``.

    Returns
    -------
    dict
        ``n``; ``no_worse`` and ``better`` (fractions of the fits, chi-square
        within or below ``1e-6`` relative of the oracle's); ``ok`` (fraction
        with ``Status.OK``); ``oracle_success``; ``ok_nonfinite_errors``
        (the number of OK fits with a non-finite error of a free parameter,
        which must be 0); ``flags`` (name -> number of fits).
    """
    from .status import Flag, Status, flag_counts

    _, chi2_t, success_t = oracle
    chi2 = result.statistic
    free = np.asarray(case.model.free_mask, dtype=bool)
    ok = result.status == Status.OK
    better = success_t & (chi2 < chi2_t * (1 - 1e-6))
    counts = flag_counts(result.flags)
    flags = {flag.name: counts.get(flag, 0) for flag in Flag if flag.value}
    return {
        "n": case.n,
        "no_worse": float(np.mean(no_worse(chi2, chi2_t, success_t))),
        "better": float(np.mean(better)),
        "ok": float(np.mean(ok)),
        "oracle_success": float(np.mean(success_t)),
        "ok_nonfinite_errors": int(
            np.count_nonzero(ok & ~np.all(np.isfinite(result.errors[:, free]), axis=1))
        ),
        "flags": flags,
    }
