"""Automatic starting values: :meth:`Model.guess` and the ``_guess`` hook."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from parfit.errors import InputError, ModelError

__all__ = ["GuessMixin"]


def _class_can_guess(cls: type) -> bool:
    return getattr(cls, "_guess", None) is not GuessMixin._guess


def _guessing_models() -> list[str]:
    """Names of the registered model classes that implement ``_guess``."""
    from parfit.models.spec import MODEL_REGISTRY

    return [name for name, cls in MODEL_REGISTRY.items() if _class_can_guess(cls)]


def merge_guess(
    owner: Any,
    out: np.ndarray,
    guesses: Mapping[str, Any],
    names: Sequence[str],
    free: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> None:
    """Write guesses of free parameters into ``out`` (in place), clipped to the bounds.

    ``out``, ``lower`` and ``upper`` are ``(n_fits, len(names))``; a guess
    that is not finite leaves the column's current (starting) value.
    """
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in guesses if n not in index]
    if unknown:
        raise ModelError(
            f"{type(owner).__name__}._guess returned unknown parameter(s) "
            f"{', '.join(map(repr, unknown))}; parameters are: {', '.join(names)}"
        )
    n_fits = out.shape[0]
    for name, value in guesses.items():
        j = index[name]
        if not free[j]:
            continue
        try:
            v = np.broadcast_to(np.asarray(value, dtype=np.float64), (n_fits,))
        except ValueError:
            raise ModelError(
                f"{type(owner).__name__}._guess returned shape {np.shape(value)} for "
                f"{name!r}; expected ({n_fits},) (one value per fit)"
            ) from None
        v = np.minimum(np.maximum(v, lower[:, j]), upper[:, j])
        out[:, j] = np.where(np.isfinite(v), v, out[:, j])


class GuessMixin:
    """Automatic starting values part of :class:`parfit.models.Model`."""

    _params: Any
    n_params: Any
    n_inputs: ClassVar[int]
    param_names: Any
    free_mask: Any

    #: ``"baseline"`` for continuum models (guessed first, robustly, inside a
    #: sum), ``"peak"`` for features guessed one after the other on what the
    #: previous components leave.
    _guess_role: ClassVar[str] = "peak"

    @property
    def can_guess(self) -> bool:
        """True if :meth:`guess` can compute starting values for this model.

        True for models that implement ``_guess`` (the built-ins do) and for
        compound models that only add (``+``) such models.

        Examples
        --------
        >>> from parfit.models import Gaussian1D, Const1D
        >>> Gaussian1D().can_guess, (Gaussian1D() + Const1D()).can_guess
        (True, True)
        >>> (Gaussian1D() * Const1D()).can_guess
        False
        """
        return _class_can_guess(type(self))

    def _cannot_guess_detail(self) -> str:
        return ""

    def _guess(
        self,
        xs: list[np.ndarray],
        y: np.ndarray,
        valid: np.ndarray,
        start: dict[str, np.ndarray],
    ) -> dict[str, Any]:
        raise NotImplementedError

    def guess(
        self,
        *x: Any,
        y: Any,
        valid: Any = None,
        start: Any = None,
    ) -> np.ndarray:
        """Starting values estimated from the data, for many fits at once.

        Peak models use the highest peak (position, height, width at half
        maximum), baselines a (robust) least-squares fit; sums of models
        guess the baselines first and then each peak on what the previous
        components leave, so several lines get distinct peaks.  Peaks of the
        same kind (whose parameters are all free) are then numbered by
        increasing position, so that component 0 holds the same line in every
        pixel.  Everything is vectorised over the fits.

        Parameters
        ----------
        *x : array_like
            The independent variable(s) as for :meth:`evaluate`: ``x`` (and
            the second coordinate for 2-D models), each ``(n_samples,)``
            shared by all fits or ``(n_fits, n_samples)``.
        y : array_like
            The data, ``(n_fits, n_samples)`` (``(n_samples,)`` for one
            fit); may hold NaN.
        valid : array_like of bool, optional
            ``(n_fits, n_samples)``: samples to use.  Default:
            ``np.isfinite(y)``; non-finite data or coordinates are never used.
        start : array_like, optional
            ``(n_fits, n_params)`` (or one row ``(n_params,)``) of values to
            start from.  Default: the model's current values, per-pixel maps
            flattened to ``n_fits`` values (their size must be ``n_fits``).

        Returns
        -------
        ndarray
            A new float64 array ``(n_fits, n_params)``: ``start`` with the
            free parameters replaced by their guesses, clipped into the
            bounds.  Fixed and tied parameters keep their ``start`` values, as
            does every parameter of a fit without a valid sample and every
            guess that is not finite.  The model is not changed.

        Raises
        ------
        ModelError
            If the model cannot guess (:attr:`can_guess` is False).
        InputError
            For inputs of inconsistent shapes.

        Notes
        -----
        A model class gains ``guess`` by implementing ``_guess(self, xs, y,
        valid, start)``: ``xs`` is a list of ``(n_fits, n_samples)`` arrays,
        ``y`` the data with invalid samples set to 0, ``valid`` the mask,
        ``start`` a dict ``name -> (n_fits,)`` of starting values (e.g. the
        sign of a starting amplitude); it returns a dict ``name -> (n_fits,)``
        for the parameters it can estimate, computed with vectorised numpy
        only.  The base class does the rest (fixed, tied, bounds, empty fits).
        Peak models look for the highest peak, or for the deepest dip if the
        starting amplitude is negative.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D, Const1D
        >>> x = np.linspace(-10, 10, 201)
        >>> y = np.stack([Gaussian1D(3.0, 2.0, 1.5)(x), Gaussian1D(1.0, -4.0, 0.8)(x)])
        >>> y[1, :50] = np.nan                                  # missing data
        >>> Gaussian1D().guess(x, y=y).round(2)
        array([[ 3. ,  2. ,  1.5],
               [ 1. , -4. ,  0.8]])

        Fixed parameters keep their values, guesses are clipped to the bounds:

        >>> g = Gaussian1D(stddev=1.0, fixed={"stddev": True}, bounds={"amplitude": (0, 2)})
        >>> g.guess(x, y=y).round(2)
        array([[ 2.,  2.,  1.],
               [ 1., -4.,  1.]])

        A sum finds one line per component, the baseline first:

        >>> model = Gaussian1D() + Gaussian1D() + Const1D()
        >>> data = (Gaussian1D(2.0, -3.0, 1.0) + Gaussian1D(1.0, 4.0, 2.0) + Const1D(0.5))(x)
        >>> model.guess(x, y=data).round(1)
        array([[ 2. , -3. ,  1. ,  1. ,  4. ,  2. ,  0.5]])
        """
        if not self.can_guess:
            raise ModelError(self._cannot_guess_message())
        xs, y_arr, mask, start_arr = self._guess_inputs(x, y, valid, start)
        n_fits, n_samples = y_arr.shape
        lower, upper = self._per_fit_bounds(n_fits)
        has_valid = mask.any(axis=1)
        if n_fits == 0 or n_samples == 0 or not has_valid.any():
            return start_arr
        y0 = np.where(mask, y_arr, 0.0)
        with np.errstate(all="ignore"):
            out = self._guess_array(xs, y0, mask, start_arr, lower, upper)
        out[~has_valid] = start_arr[~has_valid]
        return out

    def _cannot_guess_message(self) -> str:
        return (
            f"{type(self).__name__} cannot guess starting values; models that can: "
            f"{', '.join(_guessing_models())}, and compound models that only add (+) "
            f"such models{self._cannot_guess_detail()}"
        )

    def _guess_array(
        self,
        xs: list[np.ndarray],
        y: np.ndarray,
        valid: np.ndarray,
        start: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        """Guesses merged into a copy of ``start``; compound models override this."""
        names = self.param_names
        cols = {n: start[:, i] for i, n in enumerate(names)}
        guesses = self._guess(xs, y, valid, cols)
        out = start.copy()
        merge_guess(self, out, guesses, names, self.free_mask, lower, upper)
        return out

    # ------------------------------------------------------------------
    # inputs
    def _guess_inputs(
        self, x: tuple[Any, ...], y: Any, valid: Any, start: Any
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        cls_name = type(self).__name__
        if len(x) != self.n_inputs:
            raise InputError(
                f"{cls_name}.guess takes {self.n_inputs} independent variable(s) before "
                f"y=..., got {len(x)}"
            )
        y_arr = np.asarray(y, dtype=np.float64)
        if y_arr.ndim == 1:
            y_arr = y_arr[np.newaxis, :]
        if y_arr.ndim != 2:
            raise InputError(
                f"{cls_name}.guess: y must have shape (n_fits, n_samples), got shape {y_arr.shape}"
            )
        n_fits, n_samples = y_arr.shape
        xs: list[np.ndarray] = []
        mask = np.isfinite(y_arr)
        for xi in x:
            arr = np.asarray(xi, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr[np.newaxis, :]
            if arr.ndim != 2 or arr.shape[0] not in (1, n_fits) or arr.shape[1] != n_samples:
                raise InputError(
                    f"{cls_name}.guess: independent variables must have shape (n_samples,) = "
                    f"({n_samples},) or (n_fits, n_samples) = ({n_fits}, {n_samples}) like y, "
                    f"got shape {np.shape(xi)}"
                )
            finite = np.isfinite(arr)
            mask = mask & finite
            xs.append(np.broadcast_to(np.where(finite, arr, 0.0), (n_fits, n_samples)))
        if valid is not None:
            v = np.asarray(valid)
            if v.dtype != np.bool_:
                raise InputError(
                    f"{cls_name}.guess: valid must be a boolean array, got dtype {v.dtype}"
                )
            try:
                v = np.broadcast_to(v, (n_fits, n_samples))
            except ValueError:
                raise InputError(
                    f"{cls_name}.guess: valid of shape {v.shape} does not match y of shape "
                    f"{(n_fits, n_samples)}"
                ) from None
            mask = mask & v
        if start is None:
            start_arr = self._per_fit_start(n_fits)
        else:
            s = np.asarray(start, dtype=np.float64)
            if s.shape not in ((self.n_params,), (n_fits, self.n_params)):
                raise InputError(
                    f"{cls_name}.guess: start must have shape (n_fits, n_params) = "
                    f"({n_fits}, {self.n_params}) or ({self.n_params},), got shape {s.shape}"
                )
            start_arr = np.array(np.broadcast_to(s, (n_fits, self.n_params)), dtype=np.float64)
        return xs, y_arr, mask, start_arr

    def _per_fit_shape(self, n_fits: int, bounds: bool) -> tuple[int, ...]:
        """Shape ``S`` whose flattened starting values (or bounds) give ``n_fits`` rows."""
        shapes = []
        for p in self._params.values():
            for v in (p.lower, p.upper) if bounds else (p.value,):
                if isinstance(v, np.ndarray):
                    shapes.append(v.shape)
        what = "bounds" if bounds else "values"
        if not shapes:
            return (n_fits,)
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise InputError(
                f"{type(self).__name__}.guess: per-pixel {what} of shapes "
                f"{', '.join(map(str, shapes))} do not broadcast together"
            ) from None
        try:
            if np.broadcast_shapes(shape, (n_fits,)) == (n_fits,):
                return (n_fits,)
        except ValueError:
            pass
        if math.prod(shape) == n_fits:
            return tuple(shape)
        raise InputError(
            f"{type(self).__name__}.guess: the model has per-pixel {what} of shape "
            f"{shape} ({math.prod(shape)} pixels) but y has {n_fits} fits; "
            + ("give start= explicitly or " if not bounds else "")
            + "use a model whose maps have one value per fit"
        )

    def _per_fit_start(self, n_fits: int) -> np.ndarray:
        shape = self._per_fit_shape(n_fits, bounds=False)
        values = self.starting_values(shape)  # type: ignore[attr-defined]
        return np.ascontiguousarray(values.reshape(self.n_params, n_fits).T)

    def _per_fit_bounds(self, n_fits: int) -> tuple[np.ndarray, np.ndarray]:
        shape = self._per_fit_shape(n_fits, bounds=True)
        lower, upper = self.bounds_arrays(shape)  # type: ignore[attr-defined]
        return (
            np.ascontiguousarray(lower.reshape(self.n_params, n_fits).T),
            np.ascontiguousarray(upper.reshape(self.n_params, n_fits).T),
        )
