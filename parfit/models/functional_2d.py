"""Two-dimensional built-in models (astropy's names, defaults and formulas where it has them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from parfit.models._estimators import masked_median, peak_2d
from parfit.models.base import Model, ParameterSpec, register_model
from parfit.models.functional_1d import FLOAT_EPSILON, _amplitude, _peak_sign

__all__ = ["CircularGaussian2D", "Const2D", "Gaussian2D"]


@register_model
class Gaussian2D(Model):
    """Two-dimensional rotated Gaussian (astropy's ``Gaussian2D``).

    ``f(x, y) = A exp(-(a dx**2 + b dx dy + c dy**2))`` with ``dx = x - x_mean``,
    ``dy = y - y_mean`` and ``a, b, c`` from ``x_stddev``, ``y_stddev`` and the
    counter-clockwise rotation ``theta`` (radians).

    Parameters
    ----------
    amplitude, x_mean, y_mean, x_stddev, y_stddev, theta : float, array_like or Quantity
        Defaults 1, 0, 0, 1, 1, 0; the standard deviations have astropy's
        default bounds ``(float32 tiny, None)``.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name`` (see :class:`Model`).

    Notes
    -----
    astropy's ``cov_matrix`` argument is not supported.

    Examples
    --------
    >>> g = Gaussian2D(amplitude=3.0, x_mean=1.0, y_mean=2.0)
    >>> float(g(1.0, 2.0))
    3.0
    """

    n_inputs = 2
    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="z", description="Amplitude of the Gaussian"),
        ParameterSpec("x_mean", 0.0, unit="x", description="Peak position along x"),
        ParameterSpec("y_mean", 0.0, unit="y", description="Peak position along y"),
        ParameterSpec(
            "x_stddev",
            1.0,
            bounds=(FLOAT_EPSILON, None),
            unit="x",
            description="Standard deviation along x before rotation",
        ),
        ParameterSpec(
            "y_stddev",
            1.0,
            bounds=(FLOAT_EPSILON, None),
            unit="y",
            description="Standard deviation along y before rotation",
        ),
        ParameterSpec("theta", 0.0, unit="rad", description="Rotation angle (radians)"),
    )

    def _evaluate(
        self,
        x: Any,
        y: Any,
        amplitude: Any,
        x_mean: Any,
        y_mean: Any,
        x_stddev: Any,
        y_stddev: Any,
        theta: Any,
    ) -> Any:
        cost2 = np.cos(theta) ** 2
        sint2 = np.sin(theta) ** 2
        sin2t = np.sin(2.0 * theta)
        xstd2 = x_stddev**2
        ystd2 = y_stddev**2
        xdiff = x - x_mean
        ydiff = y - y_mean
        a = 0.5 * ((cost2 / xstd2) + (sint2 / ystd2))
        b = 0.5 * ((sin2t / xstd2) - (sin2t / ystd2))
        c = 0.5 * ((sint2 / xstd2) + (cost2 / ystd2))
        return amplitude * np.exp(-((a * xdiff**2) + (b * xdiff * ydiff) + (c * ydiff**2)))

    def _jacobian(
        self,
        x: Any,
        y: Any,
        amplitude: Any,
        x_mean: Any,
        y_mean: Any,
        x_stddev: Any,
        y_stddev: Any,
        theta: Any,
    ) -> list[Any]:
        cost = np.cos(theta)
        sint = np.sin(theta)
        cost2 = cost**2
        sint2 = sint**2
        cos2t = np.cos(2.0 * theta)
        sin2t = np.sin(2.0 * theta)
        xstd2 = x_stddev**2
        ystd2 = y_stddev**2
        xstd3 = x_stddev**3
        ystd3 = y_stddev**3
        xdiff = x - x_mean
        ydiff = y - y_mean
        xdiff2 = xdiff**2
        ydiff2 = ydiff**2
        xydiff = xdiff * ydiff
        a = 0.5 * ((cost2 / xstd2) + (sint2 / ystd2))
        b = 0.5 * ((sin2t / xstd2) - (sin2t / ystd2))
        c = 0.5 * ((sint2 / xstd2) + (cost2 / ystd2))
        e = np.exp(-((a * xdiff2) + (b * xydiff) + (c * ydiff2)))
        g = amplitude * e
        da_dtheta = sint * cost * ((1.0 / ystd2) - (1.0 / xstd2))
        da_dx_stddev = -cost2 / xstd3
        da_dy_stddev = -sint2 / ystd3
        db_dtheta = (cos2t / xstd2) - (cos2t / ystd2)
        db_dx_stddev = -sin2t / xstd3
        db_dy_stddev = sin2t / ystd3
        dc_dtheta = -da_dtheta
        dc_dx_stddev = -sint2 / xstd3
        dc_dy_stddev = -cost2 / ystd3
        return [
            e,
            g * ((2.0 * a * xdiff) + (b * ydiff)),
            g * ((b * xdiff) + (2.0 * c * ydiff)),
            -g * (da_dx_stddev * xdiff2 + db_dx_stddev * xydiff + dc_dx_stddev * ydiff2),
            -g * (da_dy_stddev * xdiff2 + db_dy_stddev * xydiff + dc_dy_stddev * ydiff2),
            -g * (da_dtheta * xdiff2 + db_dtheta * xydiff + dc_dtheta * ydiff2),
        ]

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        # Adaptive (Gaussian-windowed) moments around the highest sample give the
        # centre and the covariance; the widths are its spread along the axes of
        # the starting theta (theta itself is not guessed), the amplitude a
        # least-squares scale of that profile.
        x0, x1 = xs
        sign = _peak_sign(start, "amplitude")
        sy = sign[:, np.newaxis] * y
        cx, cy, cxx, cxy, cyy, spacing, span = peak_2d(x0, x1, sy, valid)
        theta = np.asarray(start["theta"], dtype=np.float64)
        c, s = np.cos(theta), np.sin(theta)
        var_x = c * c * cxx + 2.0 * c * s * cxy + s * s * cyy
        var_y = s * s * cxx - 2.0 * c * s * cxy + c * c * cyy
        x_stddev = np.clip(np.sqrt(var_x), spacing, span)
        y_stddev = np.clip(np.sqrt(var_y), spacing, span)
        col = np.newaxis
        unit = self._evaluate(
            x0, x1, 1.0, cx[:, col], cy[:, col], x_stddev[:, col], y_stddev[:, col], theta[:, col]
        )
        height = np.where(valid, sy, -np.inf).max(axis=1)
        amplitude = sign * _amplitude(unit, sy, valid, height)
        return {
            "amplitude": amplitude,
            "x_mean": cx,
            "y_mean": cy,
            "x_stddev": x_stddev,
            "y_stddev": y_stddev,
        }


@register_model
class CircularGaussian2D(Model):
    """Two-dimensional circular Gaussian, one width for both axes.

    ``f(x, y) = A exp(-((x - x_mean)**2 + (y - y_mean)**2) / (2 stddev**2))``:
    :class:`Gaussian2D` with ``x_stddev == y_stddev`` (and so no ``theta``),
    in four parameters instead of six.  With a :class:`Const2D` added it is
    Gpufit's ``GAUSS_2D`` model (a spot on an offset).

    Parameters
    ----------
    amplitude, x_mean, y_mean, stddev : float, array_like or Quantity
        Defaults 1, 0, 0, 1; ``stddev`` is bounded below by float32 tiny,
        as Gaussian2D's widths.
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name`` (see :class:`Model`).

    Examples
    --------
    >>> g = CircularGaussian2D(amplitude=2.0, x_mean=1.0, y_mean=2.0, stddev=0.5)
    >>> float(g(1.0, 2.0)), round(float(g(1.5, 2.0)), 6)
    (2.0, 1.213061)
    >>> (CircularGaussian2D() + Const2D(0.5)).param_names
    ('amplitude_0', 'x_mean_0', 'y_mean_0', 'stddev_0', 'amplitude_1')
    """

    n_inputs = 2
    param_specs = (
        ParameterSpec("amplitude", 1.0, unit="z", description="Amplitude of the Gaussian"),
        ParameterSpec("x_mean", 0.0, unit="x", description="Peak position along x"),
        ParameterSpec("y_mean", 0.0, unit="y", description="Peak position along y"),
        ParameterSpec(
            "stddev",
            1.0,
            bounds=(FLOAT_EPSILON, None),
            unit="x",
            description="Standard deviation along x and y",
        ),
    )

    def _evaluate(
        self, x: Any, y: Any, amplitude: Any, x_mean: Any, y_mean: Any, stddev: Any
    ) -> Any:
        xdiff = x - x_mean
        ydiff = y - y_mean
        r2 = xdiff**2 + ydiff**2
        inv_var = 1.0 / stddev**2
        return amplitude * np.exp(-0.5 * r2 * inv_var)

    def _jacobian(
        self, x: Any, y: Any, amplitude: Any, x_mean: Any, y_mean: Any, stddev: Any
    ) -> list[Any]:
        # The compiled engine computes the same numbers in the same order
        # (parfit.fitters._kernel._circular_gaussian_2d).
        xdiff = x - x_mean
        ydiff = y - y_mean
        r2 = xdiff**2 + ydiff**2
        inv_var = 1.0 / stddev**2
        e = np.exp(-0.5 * r2 * inv_var)
        g = amplitude * e
        return [e, g * xdiff * inv_var, g * ydiff * inv_var, g * r2 * inv_var / stddev]

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        # Adaptive moments around the highest sample (as Gaussian2D): the centre,
        # and the width from the mean of the two variances.
        x0, x1 = xs
        sign = _peak_sign(start, "amplitude")
        sy = sign[:, np.newaxis] * y
        cx, cy, cxx, _, cyy, spacing, span = peak_2d(x0, x1, sy, valid)
        stddev = np.clip(np.sqrt(0.5 * (cxx + cyy)), spacing, span)
        col = np.newaxis
        unit = self._evaluate(x0, x1, 1.0, cx[:, col], cy[:, col], stddev[:, col])
        height = np.where(valid, sy, -np.inf).max(axis=1)
        amplitude = sign * _amplitude(unit, sy, valid, height)
        return {"amplitude": amplitude, "x_mean": cx, "y_mean": cy, "stddev": stddev}


@register_model
class Const2D(Model):
    """Constant in two dimensions, ``f(x, y) = amplitude`` (astropy's ``Const2D``).

    Parameters
    ----------
    amplitude : float, array_like or Quantity
        Default 1 (astropy's).
    **kwargs
        ``bounds``, ``fixed``, ``tied``, ``name`` (see :class:`Model`).

    Examples
    --------
    >>> Const2D(3.0)([1.0, 2.0], [0.0, 5.0])
    array([3., 3.])
    """

    n_inputs = 2
    param_specs = (ParameterSpec("amplitude", 1.0, unit="z", description="Constant value"),)

    def _evaluate(self, x: Any, y: Any, amplitude: Any) -> Any:
        return amplitude * np.ones_like(x)

    def _jacobian(self, x: Any, y: Any, amplitude: Any) -> list[Any]:
        return [1.0]

    _guess_role = "baseline"

    def _guess(self, xs: list[Any], y: Any, valid: Any, start: dict[str, Any]) -> dict[str, Any]:
        return {"amplitude": masked_median(y, valid)}
