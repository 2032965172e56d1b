"""One-dimensional built-in models.

Parameter names, order, defaults, default bounds and formulas follow
``astropy.modeling`` (``functional_models``, ``polynomial``, ``powerlaws``).
Every model has an analytic Jacobian.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parfit.errors import ModelError
from parfit.models._estimators import (
    FWHM_PER_SIGMA,
    ls_amplitude,
    masked_median,
    peak_1d,
    polyfit_masked,
)
from parfit.models.base import Model, ParameterSpec, register_model

__all__ = [
    "Const1D",
    "Gaussian1D",
    "Linear1D",
    "Lorentz1D",
    "Polynomial1D",
    "PowerLaw1D",
    "Voigt1D",
]

#: astropy's default lower bound of standard deviations.
FLOAT_EPSILON = float(np.finfo(np.float32).tiny)

#: Voigt FWHM over the common FWHM of equal Lorentzian and Gaussian parts
#: (Olivero & Longbothum 1977: ``0.5346 fL + sqrt(0.2166 fL**2 + fG**2)``).
_VOIGT_EQUAL_SPLIT = 0.5346 + float(np.sqrt(0.2166 + 1.0))


def _peak_sign(start: dict[str, Any], name: str) -> Any:
    """+1 (look for a peak), or -1 (a dip) where the starting amplitude is negative."""
    return np.where(np.asarray(start[name]) < 0, -1.0, 1.0)


def _amplitude(template: Any, y: Any, valid: Any, height: Any) -> Any:
    """Least-squares amplitude of a unit-height profile; the peak height if that is not positive."""
    amp = ls_amplitude(template, y, valid)
    return np.where(amp > 0, amp, height)


@register_model
class Gaussian1D(Model):
    """One-dimensional Gaussian, ``A exp(-(x - mean)**2 / (2 stddev**2))``.

    Parameters
    ----------
    amplitude, mean, stddev : float, array_like or Quantity
        Defaults 1, 0, 1; ``stddev`` has astropy's default bounds
        ``(float32 tiny, None)``.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name`` (see :class:`Model`).

    Examples
    --------
    >>> g = Gaussian1D(amplitude=2.0, mean=1.0, stddev=0.5)
    >>> float(g(1.0))
    2.0
    """

    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="y", description="Amplitude (peak value)"),
        ParameterSpec("mean", 0.0, unit="x", description="Position of peak"),
        ParameterSpec(
            "stddev",
            1.0,
            bounds=(FLOAT_EPSILON, None),
            unit="x",
            description="Standard deviation",
        ),
    )
    peak_parameters = ("amplitude", "mean")

    def _fwhm(self, cols: dict[str, Any]) -> Any:
        return FWHM_PER_SIGMA * cols["stddev"]

    def _evaluate(self, x: Any, amplitude: Any, mean: Any, stddev: Any) -> Any:
        return amplitude * np.exp(-0.5 * (x - mean) ** 2 / stddev**2)

    def _jacobian(self, x: Any, amplitude: Any, mean: Any, stddev: Any) -> list[Any]:
        dx = x - mean
        inv_var = 1.0 / stddev**2
        d_amplitude = np.exp(-0.5 * dx**2 * inv_var)
        d_mean = amplitude * d_amplitude * dx * inv_var
        d_stddev = d_mean * dx / stddev
        return [d_amplitude, d_mean, d_stddev]

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        # Peak of the 3-sample-smoothed data, FWHM from the half-maximum crossings,
        # amplitude by least squares with that profile (no upward noise bias).
        (x,) = xs
        sign = _peak_sign(start, "amplitude")
        sy = sign[:, np.newaxis] * y
        center, height, fwhm, spacing, span = peak_1d(x, sy, valid)
        stddev = np.clip(fwhm / FWHM_PER_SIGMA, spacing, span)
        unit = self._evaluate(x, 1.0, center[:, np.newaxis], stddev[:, np.newaxis])
        amplitude = sign * _amplitude(unit, sy, valid, height)
        return {"amplitude": amplitude, "mean": center, "stddev": stddev}


@register_model
class Lorentz1D(Model):
    """One-dimensional Lorentzian, ``A g**2 / (g**2 + (x - x_0)**2)``, ``g = fwhm / 2``.

    Parameters
    ----------
    amplitude, x_0, fwhm : float, array_like or Quantity
        Defaults 1, 0, 1.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Examples
    --------
    >>> float(Lorentz1D(amplitude=4.0, fwhm=2.0)(1.0))
    2.0
    """

    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="y", description="Peak value"),
        ParameterSpec("x_0", 0.0, unit="x", description="Position of the peak"),
        ParameterSpec("fwhm", 1.0, unit="x", description="Full width at half maximum"),
    )
    peak_parameters = ("amplitude", "x_0")

    def _fwhm(self, cols: dict[str, Any]) -> Any:
        return cols["fwhm"]

    def _evaluate(self, x: Any, amplitude: Any, x_0: Any, fwhm: Any) -> Any:
        return amplitude * ((fwhm / 2.0) ** 2) / ((x - x_0) ** 2 + (fwhm / 2.0) ** 2)

    def _jacobian(self, x: Any, amplitude: Any, x_0: Any, fwhm: Any) -> list[Any]:
        gamma = fwhm / 2.0
        dx = x - x_0
        denom = gamma**2 + dx**2
        d_amplitude = gamma**2 / denom
        d_x_0 = amplitude * d_amplitude * 2.0 * dx / denom
        d_fwhm = amplitude * gamma * dx**2 / denom**2
        return [d_amplitude, d_x_0, d_fwhm]

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        (x,) = xs
        sign = _peak_sign(start, "amplitude")
        sy = sign[:, np.newaxis] * y
        center, height, fwhm, spacing, span = peak_1d(x, sy, valid)
        fwhm = np.clip(fwhm, spacing, span)
        unit = self._evaluate(x, 1.0, center[:, np.newaxis], fwhm[:, np.newaxis])
        amplitude = sign * _amplitude(unit, sy, valid, height)
        return {"amplitude": amplitude, "x_0": center, "fwhm": fwhm}


@register_model
class Voigt1D(Model):
    """One-dimensional Voigt profile scaled to the Lorentzian peak amplitude.

    Computed like astropy's default method, as the real part of the
    Faddeeva function (:func:`scipy.special.wofz`); derivatives use
    ``w'(z) = -2 z w(z) + 2i / sqrt(pi)``.

    Parameters
    ----------
    x_0, amplitude_L, fwhm_L, fwhm_G : float, array_like or Quantity
        Defaults 0, 1, ``2/pi``, ``log(2)``.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Examples
    --------
    >>> round(float(Voigt1D(amplitude_L=2.0)(0.0)), 6)
    1.35964
    """

    param_specs = (
        ParameterSpec("x_0", 0.0, unit="x", description="Position of the peak"),
        ParameterSpec("amplitude_L", 1.0, unit="y", description="The Lorentzian amplitude"),
        ParameterSpec("fwhm_L", 2 / np.pi, unit="x", description="Lorentzian FWHM"),
        ParameterSpec("fwhm_G", float(np.log(2)), unit="x", description="Gaussian FWHM"),
    )
    peak_parameters = ("amplitude_L", "x_0")

    def _fwhm(self, cols: dict[str, Any]) -> Any:
        # Olivero & Longbothum (1977), as astropy's Voigt1D.fwhm.
        f_l, f_g = np.abs(cols["fwhm_L"]), np.abs(cols["fwhm_G"])
        return 0.5346 * f_l + np.sqrt(0.2166 * f_l**2 + f_g**2)

    _sqrt_pi = float(np.sqrt(np.pi))
    _sqrt_ln2 = float(np.sqrt(np.log(2)))
    _sqrt_ln2pi = float(np.sqrt(np.log(2) * np.pi))

    def _evaluate(self, x: Any, x_0: Any, amplitude_L: Any, fwhm_L: Any, fwhm_G: Any) -> Any:
        from scipy.special import wofz  # loaded by the first Voigt profile, not by import

        z = (2 * (x - x_0) + 1j * fwhm_L) * self._sqrt_ln2 / fwhm_G
        return wofz(z).real * self._sqrt_ln2pi / fwhm_G * fwhm_L * amplitude_L

    def _jacobian(self, x: Any, x_0: Any, amplitude_L: Any, fwhm_L: Any, fwhm_G: Any) -> list[Any]:
        from scipy.special import wofz

        s = self._sqrt_ln2 / fwhm_G
        dx = x - x_0
        z = (2 * dx + 1j * fwhm_L) * s
        scale = s * fwhm_L * amplitude_L
        w = wofz(z) * (scale * self._sqrt_pi)
        dwdz = -2 * z * w + 2j * scale
        w_re = w.real
        return [
            -dwdz.real * 2 * s,
            w_re / amplitude_L,
            w_re / fwhm_L - dwdz.imag * s,
            (-w_re - s * (2 * dx * dwdz.real - fwhm_L * dwdz.imag)) / fwhm_G,
        ]

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        # The measured FWHM is split evenly: equal Lorentzian and Gaussian widths
        # giving that Voigt FWHM; the fit decides the actual shape.
        (x,) = xs
        sign = _peak_sign(start, "amplitude_L")
        sy = sign[:, np.newaxis] * y
        center, height, fwhm, spacing, span = peak_1d(x, sy, valid)
        width = np.clip(fwhm / _VOIGT_EQUAL_SPLIT, spacing, span)
        col = width[:, np.newaxis]
        unit = self._evaluate(x, center[:, np.newaxis], 1.0, col, col)
        peak_of_unit = self._evaluate(0.0, 0.0, 1.0, width, width)
        amplitude = sign * _amplitude(unit, sy, valid, height / peak_of_unit)
        return {"x_0": center, "amplitude_L": amplitude, "fwhm_L": width, "fwhm_G": width}


@register_model
class Const1D(Model):
    """Constant, ``f(x) = amplitude``.

    Parameters
    ----------
    amplitude : float, array_like or Quantity
        Default 1.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Examples
    --------
    >>> Const1D(3.0)([1.0, 2.0])
    array([3., 3.])
    """

    param_specs = (ParameterSpec("amplitude", 1.0, unit="y", description="Constant value"),)

    def _evaluate(self, x: Any, amplitude: Any) -> Any:
        return amplitude * np.ones_like(x)

    def _jacobian(self, x: Any, amplitude: Any) -> list[Any]:
        return [1.0]

    _guess_role = "baseline"

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        return {"amplitude": masked_median(y, valid)}


@register_model
class Linear1D(Model):
    """Straight line, ``slope * x + intercept``.

    Parameters
    ----------
    slope, intercept : float, array_like or Quantity
        Defaults 1, 0.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Examples
    --------
    >>> Linear1D(slope=2.0, intercept=1.0)([0.0, 1.0])
    array([1., 3.])
    """

    param_specs = (
        ParameterSpec("slope", 1.0, unit="y / x", description="Slope of the straight line"),
        ParameterSpec("intercept", 0.0, unit="y", description="Intercept of the straight line"),
    )

    def _evaluate(self, x: Any, slope: Any, intercept: Any) -> Any:
        return slope * x + intercept

    def _jacobian(self, x: Any, slope: Any, intercept: Any) -> list[Any]:
        return [x, 1.0]

    _guess_role = "baseline"

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        coeffs = polyfit_masked(xs[0], y, valid, 1)
        return {"slope": coeffs[:, 1], "intercept": coeffs[:, 0]}


@register_model
class Polynomial1D(Model):
    """Polynomial ``c0 + c1 x + ... + cN x**N`` (astropy's default domain/window).

    Parameters
    ----------
    degree : int
        Degree ``N`` (structural, not a parameter).
    *args, **kwargs
        Coefficients ``c0 ... cN`` (default 0) by position or name, plus
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Notes
    -----
    astropy's ``domain``/``window`` remapping is not supported; the default
    astropy mapping is the identity, which is what parfit evaluates.

    Examples
    --------
    >>> p = Polynomial1D(2, c0=1.0, c2=3.0)
    >>> p.param_names
    ('c0', 'c1', 'c2')
    >>> p([0.0, 2.0])
    array([ 1., 13.])
    """

    def __init__(self, degree: int, *args: Any, **kwargs: Any) -> None:
        if isinstance(degree, (bool, np.bool_)) or not isinstance(degree, (int, np.integer)):
            raise ModelError(f"Polynomial1D: degree must be a non-negative integer, got {degree!r}")
        if degree < 0:
            raise ModelError(f"Polynomial1D: degree must be a non-negative integer, got {degree!r}")
        self.__dict__["degree"] = int(degree)
        super().__init__(*args, **kwargs)

    def _declared_specs(self) -> tuple[ParameterSpec, ...]:
        specs = []
        for i in range(self.degree + 1):
            unit = "y" if i == 0 else ("y / x" if i == 1 else f"y / x**{i}")
            specs.append(
                ParameterSpec(f"c{i}", 0.0, unit=unit, description=f"coefficient of x**{i}")
            )
        return tuple(specs)

    def _structural_args(self) -> dict[str, Any]:
        return {"degree": self.degree}

    def _evaluate(self, x: Any, *coeffs: Any) -> Any:
        # Horner's scheme in astropy's order, for identical rounding.
        if len(coeffs) == 1:
            return coeffs[0] * np.ones_like(x)
        c = coeffs[-1]
        for i in range(2, len(coeffs) + 1):
            c = coeffs[-i] + c * x
        return c

    def _jacobian(self, x: Any, *coeffs: Any) -> list[Any]:
        derivs: list[Any] = [1.0]
        power: Any = 1.0
        for _ in range(1, len(coeffs)):
            power = power * x
            derivs.append(power)
        return derivs

    _guess_role = "baseline"

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        coeffs = polyfit_masked(xs[0], y, valid, self.degree)
        return {f"c{i}": coeffs[:, i] for i in range(self.degree + 1)}


@register_model
class PowerLaw1D(Model):
    """Power law, ``A (x / x_0) ** (-alpha)``.

    Parameters
    ----------
    amplitude, x_0, alpha : float, array_like or Quantity
        Defaults 1, 1, 1.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name``.

    Examples
    --------
    >>> PowerLaw1D(amplitude=2.0, x_0=1.0, alpha=2.0)([1.0, 2.0])
    array([2. , 0.5])
    """

    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="y", description="Value at the reference point"),
        ParameterSpec("x_0", 1.0, unit="x", description="Reference point"),
        ParameterSpec("alpha", 1.0, description="Power law index"),
    )

    def _evaluate(self, x: Any, amplitude: Any, x_0: Any, alpha: Any) -> Any:
        xx = x / x_0
        return amplitude * xx ** (-alpha)

    def _jacobian(self, x: Any, amplitude: Any, x_0: Any, alpha: Any) -> list[Any]:
        xx = x / x_0
        d_amplitude = xx ** (-alpha)
        d_x_0 = amplitude * alpha * d_amplitude / x_0
        d_alpha = -amplitude * d_amplitude * np.log(xx)
        return [d_amplitude, d_x_0, d_alpha]

    _guess_role = "baseline"

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        # A straight line in log-log over the positive samples; x_0 stays at its start.
        (x,) = xs
        x_0 = np.asarray(start["x_0"], dtype=np.float64)[:, np.newaxis]
        use = valid & (x > 0) & (y > 0) & (x_0 > 0)
        coeffs = polyfit_masked(np.log(x / x_0), np.log(y), use, 1)
        enough = use.sum(axis=1) >= 2
        return {
            "amplitude": np.where(enough, np.exp(coeffs[:, 0]), np.nan),
            "alpha": np.where(enough, -coeffs[:, 1], np.nan),
        }
