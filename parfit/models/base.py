"""Model base class: parameter declarations, batched evaluation, Jacobians, ties.

Every model evaluates many fits at once: parameters arrive as a float64 array
of shape ``(n_fits, n_params)`` and the independent variables as
``(n_samples,)`` (shared by all fits) or ``(n_fits, n_samples)``.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from astropy import units as u

from parfit.errors import InputError, ModelError, ParameterError
from parfit.models._arrays import ArraysMixin
from parfit.models._guess import GuessMixin
from parfit.models._ties import _FD_STEP, TiesMixin
from parfit.models.parameters import Parameter, Parameters
from parfit.models.spec import MODEL_REGISTRY, ParameterSpec, register_model

__all__ = ["MODEL_REGISTRY", "Model", "ParameterSpec", "register_model"]

#: Instance attributes of every model, unavailable as parameter names.
_RESERVED_NAMES = frozenset({"name", "degree"})


def _as_inputs(model: Model, args: tuple[Any, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """Normalise ``(*x, params)`` for the batched interface."""
    n_in = model.n_inputs
    if len(args) != n_in + 1:
        raise InputError(
            f"{type(model).__name__} takes {n_in} independent variable(s) and a "
            f"parameter array, got {len(args)} argument(s)"
        )
    params = np.asarray(args[-1], dtype=np.float64)
    n_params = len(model._params)
    if params.ndim != 2 or params.shape[1] != n_params:
        raise InputError(
            f"params must have shape (n_fits, {n_params}) for {type(model).__name__} "
            f"(parameters {', '.join(model.param_names)}), got shape {params.shape}"
        )
    n_fits = params.shape[0]
    xs: list[np.ndarray] = []
    n_samples = None
    for x in args[:-1]:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[np.newaxis, :]
        elif x.ndim != 2 or x.shape[0] not in (1, n_fits):
            raise InputError(
                f"independent variables must have shape (n_samples,) or "
                f"(n_fits, n_samples) = ({n_fits}, n_samples), got shape {x.shape}"
            )
        if n_samples is None:
            n_samples = x.shape[1]
        elif x.shape[1] != n_samples:
            raise InputError(
                f"independent variables have different numbers of samples: "
                f"{n_samples} and {x.shape[1]}"
            )
        xs.append(x)
    return xs, params


def _finish(model: Model, out: Any, shape: tuple[int, int]) -> np.ndarray:
    """Check a raw model output and broadcast it to ``(n_fits, n_samples)``."""
    out = np.asarray(out)
    if out.dtype != np.float64:
        if out.dtype.kind not in "biuf":
            raise ModelError(
                f"{type(model).__name__} returned values of dtype {out.dtype}; "
                "a model must return real numbers"
            )
        out = out.astype(np.float64)
    if out.shape != shape:
        try:
            out = np.broadcast_to(out, shape).copy()
        except ValueError:
            raise ModelError(
                f"{type(model).__name__} returned an array of shape {out.shape}; "
                f"expected {shape} (n_fits, n_samples)"
            ) from None
    if not out.flags.writeable:
        out = out.copy()
    return out


class Model(TiesMixin, ArraysMixin, GuessMixin):
    """Base class of parfit models.

    A model declares its parameters once, on the class, and implements the
    formula with numpy broadcasting.  parfit then evaluates it for many fits
    at once (:meth:`evaluate`, :meth:`jacobian`), handles bounds, fixed and
    tied parameters, per-pixel starting values, units and YAML.

    Parameters
    ----------
    *args
        Parameter values by position, in :attr:`param_names` order.
    bounds : dict, optional
        ``{name: (lower, upper)}`` overriding the declared default bounds.
    fixed : dict, optional
        ``{name: bool}``.
    tied : dict, optional
        ``{name: expression}``; expressions use this model's parameter names.
    name : str, optional
        Label of the model.
    **values
        Parameter values by name: floats, per-pixel arrays or Quantities.
        Missing values take the declared defaults.

    Notes
    -----
    Writing a model:

    * set ``n_inputs`` (1 or 2; default 1);
    * declare ``param_specs``, a tuple of :class:`ParameterSpec`;
    * implement ``_evaluate(self, x, p1, p2, ...)`` (``_evaluate(self, x, y,
      ...)`` for 2-D).  Each parameter arrives as an ``(n_fits, 1)`` column,
      ``x`` as ``(1, n_samples)`` or ``(n_fits, n_samples)``; return anything
      that broadcasts to ``(n_fits, n_samples)``.  Use only vectorised numpy.
    * optionally implement ``_jacobian`` with the same arguments, returning
      a list with the derivative with respect to each parameter (each
      broadcastable to ``(n_fits, n_samples)``).  Without it, :meth:`jacobian`
      uses central finite differences.
    * optionally implement ``_guess(self, xs, y, valid, start)`` so that
      :meth:`guess` can estimate starting values from data (see there).
    * decorate with :func:`register_model` to read it back from YAML.

    Examples
    --------
    >>> import numpy as np
    >>> from parfit.models import Model, ParameterSpec, register_model
    >>> @register_model
    ... class Exponential1D(Model):
    ...     '''A * exp(-x / tau).'''
    ...     n_inputs = 1
    ...     param_specs = (
    ...         ParameterSpec("amplitude", 1.0, unit="y"),
    ...         ParameterSpec("tau", 1.0, bounds=(0.0, None), unit="x"),
    ...     )
    ...     def _evaluate(self, x, amplitude, tau):
    ...         return amplitude * np.exp(-x / tau)
    ...     def _jacobian(self, x, amplitude, tau):
    ...         e = np.exp(-x / tau)
    ...         return [e, amplitude * e * x / tau**2]
    >>> m = Exponential1D(amplitude=2.0, tau=3.0)
    >>> m
    <Exponential1D(amplitude=2.0, tau=3.0)>
    >>> params = np.array([[2.0, 3.0], [1.0, 1.0]])      # two fits
    >>> m.evaluate(np.array([0.0, 3.0]), params).round(4)
    array([[2.    , 0.7358],
           [1.    , 0.0498]])
    >>> m.jacobian(np.array([0.0, 3.0]), params).shape
    (2, 2, 2)
    """

    n_inputs: ClassVar[int] = 1
    n_outputs: ClassVar[int] = 1
    param_specs: ClassVar[tuple[ParameterSpec, ...]] = ()
    has_analytic_jacobian: ClassVar[bool] = False
    #: Peak models: the names of their amplitude and centre parameters (they
    #: also implement :meth:`_fwhm`); None for every other model.
    peak_parameters: ClassVar[tuple[str, str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.n_inputs not in (1, 2):
            raise ModelError(f"{cls.__name__}.n_inputs must be 1 or 2, got {cls.n_inputs!r}")
        if cls.n_outputs != 1:
            raise ModelError(f"{cls.__name__}.n_outputs must be 1, got {cls.n_outputs!r}")
        if "_jacobian" in cls.__dict__ and "has_analytic_jacobian" not in cls.__dict__:
            cls.has_analytic_jacobian = True
        specs = cls.__dict__.get("param_specs")
        if specs is not None:
            cls._check_specs(tuple(specs))

    @classmethod
    def _check_specs(cls, specs: tuple[Any, ...]) -> None:
        seen: set[str] = set()
        for spec in specs:
            if not isinstance(spec, ParameterSpec):
                raise ModelError(
                    f"{cls.__name__}.param_specs must hold ParameterSpec objects, got {spec!r}"
                )
            name = spec.name
            if not name.isidentifier() or name.startswith("_"):
                raise ModelError(
                    f"{cls.__name__}: parameter name {name!r} must be an identifier "
                    "not starting with '_'"
                )
            if name in seen:
                raise ModelError(f"{cls.__name__}: parameter {name!r} declared twice")
            if hasattr(Model, name) or name in _RESERVED_NAMES:
                raise ModelError(
                    f"{cls.__name__}: parameter name {name!r} clashes with a Model attribute"
                )
            seen.add(name)

    # ------------------------------------------------------------------
    # construction
    def _declared_specs(self) -> tuple[ParameterSpec, ...]:
        return tuple(type(self).param_specs)

    def __init__(
        self,
        *args: Any,
        bounds: Mapping[str, Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        tied: Mapping[str, Any] | None = None,
        name: str | None = None,
        **values: Any,
    ) -> None:
        cls_name = type(self).__name__
        specs = self._declared_specs()
        names = [s.name for s in specs]
        if len(args) > len(specs):
            raise ModelError(
                f"{cls_name} takes at most {len(specs)} positional parameter values "
                f"({', '.join(names)}), got {len(args)}"
            )
        for arg_name, arg in zip(names, args, strict=False):
            if arg_name in values:
                raise ModelError(f"{cls_name}: parameter {arg_name!r} given twice")
            values[arg_name] = arg
        for label, mapping in (
            ("values", values),
            ("bounds", bounds or {}),
            ("fixed", fixed or {}),
            ("tied", tied or {}),
        ):
            if not isinstance(mapping, Mapping):
                raise ModelError(f"{cls_name}: {label} must be a dict, got {mapping!r}")
            unknown = [k for k in mapping if k not in names]
            if unknown:
                what = "" if label == "values" else f"{label} given for "
                raise ModelError(
                    f"{cls_name}: {what}unknown parameter(s) {', '.join(map(repr, unknown))}; "
                    f"parameters are: {', '.join(names)}"
                )
        if name is not None and not isinstance(name, str):
            raise ModelError(f"{cls_name}: name must be a string or None, got {name!r}")
        self.name = name
        params = []
        for spec in specs:
            params.append(
                Parameter(
                    spec.name,
                    values.get(spec.name, spec.default),
                    bounds=(bounds or {}).get(spec.name, spec.bounds),
                    fixed=(fixed or {}).get(spec.name, False),
                    tied=(tied or {}).get(spec.name),
                    description=spec.description,
                )
            )
        self._params = Parameters(params)
        self._tie_cache: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------
    # attribute access to parameters
    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            if isinstance(value, Parameter):
                # replace the whole parameter, keeping this model's name for it
                params._params[name] = value.copy(name=name)
            else:
                params[name].value = value
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._params))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tie_cache"] = None  # compiled closures are rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------
    # parameter views
    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names in order (the column order of ``params`` arrays)."""
        return self._params.names

    @property
    def parameters(self) -> Parameters:
        """The model's :class:`~parfit.models.parameters.Parameters` (live, not a copy)."""
        return self._params

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return len(self._params)

    @property
    def free_mask(self) -> np.ndarray:
        """Boolean array, True for parameters neither fixed nor tied."""
        return np.array(
            [not (p.fixed or p.tied is not None) for p in self._params.values()], dtype=bool
        )

    @property
    def n_free(self) -> int:
        """Number of free parameters."""
        return int(self.free_mask.sum())

    # ------------------------------------------------------------------
    # batched evaluation
    def _value(self, xs: Sequence[np.ndarray], params: np.ndarray) -> Any:
        """Raw batched value, broadcastable to ``(n_fits, n_samples)``."""
        cols = [params[:, i : i + 1] for i in range(params.shape[1])]
        return self._evaluate(*xs, *cols)

    def _evaluate(self, *args: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _evaluate(self, x, <parameters>)"
        )

    def _jac_into(self, xs: Sequence[np.ndarray], params: np.ndarray, out: np.ndarray) -> Any:
        """Write the Jacobian into ``out`` ``(n_fits, n_samples, k)``; return the value."""
        if type(self).has_analytic_jacobian:
            cols = [params[:, i : i + 1] for i in range(params.shape[1])]
            derivs = self._jacobian(*xs, *cols)
            if len(derivs) != params.shape[1]:
                raise ModelError(
                    f"{type(self).__name__}._jacobian returned {len(derivs)} derivatives "
                    f"for {params.shape[1]} parameters"
                )
            for i, d in enumerate(derivs):
                out[..., i] = d
            return self._evaluate(*xs, *cols)
        return self._fd_jac_into(xs, params, out)

    def _jacobian(self, *args: Any) -> list[Any]:
        raise NotImplementedError

    def _fd_jac_into(self, xs: Sequence[np.ndarray], params: np.ndarray, out: np.ndarray) -> Any:
        """Central finite differences, all perturbations in one batched call."""
        n_fits, k = params.shape
        n_samples = out.shape[1]
        steps = _FD_STEP * np.maximum(np.abs(params), 1.0)  # (n_fits, k)
        stacked = np.broadcast_to(params, (2 * k, n_fits, k)).copy()
        idx = np.arange(k)
        stacked[2 * idx, :, idx] += steps.T
        stacked[2 * idx + 1, :, idx] -= steps.T
        # exact steps actually taken
        h2 = stacked[2 * idx, :, idx] - stacked[2 * idx + 1, :, idx]  # (k, n_fits)
        big_xs = []
        for x in xs:
            if x.shape[0] == 1:
                big_xs.append(x)
            else:
                big_xs.append(np.broadcast_to(x, (2 * k,) + x.shape).reshape(-1, n_samples))
        vals = np.broadcast_to(
            self._value(big_xs, stacked.reshape(2 * k * n_fits, k)),
            (2 * k * n_fits, n_samples),
        ).reshape(2 * k, n_fits, n_samples)
        diff = (vals[0::2] - vals[1::2]) / h2[:, :, np.newaxis]  # (k, n_fits, n_samples)
        out[...] = np.moveaxis(diff, 0, -1)
        return self._value(xs, params)

    def evaluate(self, *args: Any) -> np.ndarray:
        """Evaluate many fits at once.

        Parameters
        ----------
        *args
            ``x`` (and ``y`` for 2-D models), each ``(n_samples,)`` shared by
            all fits or ``(n_fits, n_samples)``, followed by ``params`` of
            shape ``(n_fits, n_params)`` in :attr:`param_names` order.
            Tied columns are used as given (see :meth:`apply_ties`).

        Returns
        -------
        ndarray
            float64, shape ``(n_fits, n_samples)``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> g = Gaussian1D()
        >>> g.evaluate(np.array([0.0, 1.0]), np.array([[1.0, 0.0, 1.0]])).round(4)
        array([[1.    , 0.6065]])
        """
        xs, params = _as_inputs(self, args)
        shape = (params.shape[0], xs[0].shape[1])
        return _finish(self, self._value(xs, params), shape)

    def jacobian(self, *args: Any) -> np.ndarray:
        """Derivatives of the model output with respect to every parameter.

        Parameters
        ----------
        *args
            As for :meth:`evaluate`.

        Returns
        -------
        ndarray
            float64, shape ``(n_fits, n_samples, n_params)``, including
            fixed and tied parameters (select columns, or use
            :meth:`tie_jacobian`).  Analytic where the model provides it
            (:attr:`has_analytic_jacobian`), otherwise central finite
            differences with step ``eps**(1/3) * max(|p|, 1)``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Linear1D
        >>> Linear1D().jacobian(np.array([2.0, 3.0]), np.array([[1.0, 0.0]]))
        array([[[2., 1.],
                [3., 1.]]])
        """
        xs, params = _as_inputs(self, args)
        out = np.empty((params.shape[0], xs[0].shape[1], params.shape[1]), dtype=np.float64)
        self._jac_into(xs, params, out)
        return out

    # ------------------------------------------------------------------
    # convenience evaluation with current values
    def _map_shape(self) -> tuple[int, ...]:
        shapes = [p.shape for p in self._params.values() if p.is_array]
        try:
            return np.broadcast_shapes(*shapes) if shapes else ()
        except ValueError:
            raise ParameterError(
                "per-pixel parameter values of shapes "
                f"{', '.join(str(s) for s in shapes)} do not broadcast together"
            ) from None

    def __call__(self, *x: Any) -> np.ndarray:
        """Evaluate with the current parameter values (ties applied).

        Returns an array of shape ``np.broadcast(*x).shape`` for scalar
        parameters, or ``S + np.broadcast(*x).shape`` if some parameters are
        per-pixel maps broadcasting to shape ``S``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> Gaussian1D(amplitude=2.0)(np.array([0.0, 1.0])).round(4)
        array([2.    , 1.2131])
        >>> Gaussian1D(amplitude=np.ones((3, 4)))(np.zeros(5)).shape
        (3, 4, 5)
        """
        if len(x) != self.n_inputs:
            raise InputError(f"{type(self).__name__} takes {self.n_inputs} input(s), got {len(x)}")
        arrays = np.broadcast_arrays(*[np.asarray(v, dtype=np.float64) for v in x])
        x_shape = arrays[0].shape
        flat = [a.reshape(1, -1) for a in arrays]
        map_shape = self._map_shape()
        start = self.starting_values(map_shape).reshape(self.n_params, -1).T
        params = self.apply_ties(np.ascontiguousarray(start))
        shape = (params.shape[0], flat[0].shape[1])
        out = _finish(self, self._value(flat, params), shape)
        return out.reshape(map_shape + x_shape)

    # ------------------------------------------------------------------
    # copies
    def copy(self) -> Model:
        """Deep copy (parameter arrays copied).

        Examples
        --------
        >>> from parfit.models import Gaussian1D
        >>> g = Gaussian1D(mean=1.0)
        >>> h = g.copy(); h.mean = 2.0
        >>> float(g.mean.value)
        1.0
        """
        return _copy.deepcopy(self)

    def with_values(self, values: Mapping[str, Any] | Sequence[Any] | np.ndarray) -> Model:
        """Return a copy with new parameter values.

        Parameters
        ----------
        values : mapping or array_like
            ``{name: value}`` for some parameters, or an array whose first
            axis has length :attr:`n_params` (a row of floats, or per-pixel
            maps ``(n_params,) + S``) in :attr:`param_names` order.

        Examples
        --------
        >>> from parfit.models import Gaussian1D
        >>> Gaussian1D().with_values([2.0, 1.0, 3.0])
        <Gaussian1D(amplitude=2.0, mean=1.0, stddev=3.0)>
        >>> Gaussian1D().with_values({"mean": 5.0})
        <Gaussian1D(amplitude=1.0, mean=5.0, stddev=1.0)>
        """
        new = self.copy()
        if isinstance(values, Mapping):
            unknown = [k for k in values if k not in new._params]
            if unknown:
                raise ParameterError(
                    f"with_values: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                    f"parameters are: {', '.join(self.param_names)}"
                )
            for key, val in values.items():
                new._params[key].value = val
            return new
        if isinstance(values, u.Quantity):
            raise ParameterError("with_values: give a mapping of Quantities, not one Quantity")
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 0 or arr.shape[0] != self.n_params:
            raise ParameterError(
                f"with_values: expected {self.n_params} values "
                f"({', '.join(self.param_names)}), got an array of shape {arr.shape}"
            )
        for param, val in zip(new._params.values(), arr, strict=True):
            param.value = val
        return new

    # ------------------------------------------------------------------
    # composition and YAML
    def _fwhm(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Full width at half maximum of a peak model, from its parameter columns."""
        raise NotImplementedError

    def order_components(
        self,
        names: Sequence[str],
        params: np.ndarray,
        *others: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> None:
        """Number the peaks of each kind by increasing position, fit by fit, in place.

        ``params`` holds one fit per row, its columns the parameters
        ``names`` (the free ones, as a fitter returns them); ``others``
        (errors, say) are permuted alike.  A single model has nothing to
        order; a sum of several peaks of one class does (see
        :meth:`parfit.models.CompoundModel.order_components`).
        """
        return None

    def peak_amplitude_indices(self) -> list[int]:
        """Positions in :attr:`param_names` of the amplitudes of this model's peaks.

        Examples
        --------
        >>> from parfit.models import Gaussian1D, Linear1D
        >>> (Gaussian1D() + Linear1D() + Gaussian1D()).peak_amplitude_indices()
        [0, 5]
        """
        if self.peak_parameters is None:
            return []
        names = [spec.name for spec in self._declared_specs()]
        return [names.index(self.peak_parameters[0])]

    def collapsed(self, params: Any, lo: Any, hi: Any, step: Any, free: Any = None) -> np.ndarray:
        """Where a fitted peak has collapsed into something that is not a line.

        A peak is collapsed when its full width at half maximum is below half
        the sample ``step`` (an unresolved one-channel spike) or above four
        times the data's extent ``hi - lo`` (it mimics a constant), when its
        centre lies more than 1.5 FWHM outside ``[lo, hi]``, or when its
        amplitude is exactly zero (its position and width are undefined).
        Each test applies only to parameters that were fitted (``free``): a
        component held at zero amplitude, or a width fixed by the user, is
        not a collapse.  Models that are not peaks never collapse; a sum
        collapses where any of its peaks does.

        Parameters
        ----------
        params : array_like
            ``(n_fits, n_params)`` fitted values.
        lo, hi, step : array_like
            ``(n_fits,)`` smallest and largest valid sample coordinate and
            the smallest spacing between valid samples.
        free : array_like of bool, optional
            ``(n_params,)``: the parameters that were fitted (default: all).

        Returns
        -------
        ndarray
            ``(n_fits,)`` bool.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> p = np.array([[1.0, 30.0, 3.0], [1.0, 30.0, 1e-30], [1.0, 30.0, 1e4]])
        >>> Gaussian1D().collapsed(p, 0.0, 63.0, 1.0)
        array([False,  True,  True])
        """
        params = np.asarray(params, dtype=np.float64)
        out = np.zeros(params.shape[0], dtype=bool)
        if self.peak_parameters is None:
            return out
        names = [spec.name for spec in self._declared_specs()]
        cols = {name: params[:, i] for i, name in enumerate(names)}
        fitted = dict(
            zip(
                names,
                np.ones(len(names), dtype=bool) if free is None else np.asarray(free, dtype=bool),
                strict=True,
            )
        )
        amp_name, centre_name = self.peak_parameters
        widths = [n for n in names if n not in self.peak_parameters]
        with np.errstate(all="ignore"):
            fwhm = np.abs(self._fwhm(cols))
            span = np.asarray(hi) - np.asarray(lo)
            if any(fitted[n] for n in widths):
                out |= ~(fwhm >= 0.5 * np.asarray(step)) | ~(fwhm <= 4.0 * span)
            if fitted[centre_name]:
                centre = cols[centre_name]
                out |= ~((centre >= lo - 1.5 * fwhm) & (centre <= hi + 1.5 * fwhm))
            if fitted[amp_name]:
                out |= cols[amp_name] == 0
        return out

    def _binary(self, other: Any, op: str) -> Any:
        if not isinstance(other, Model):
            return NotImplemented
        from parfit.models.compound import CompoundModel

        return CompoundModel(op, self, other)

    def __add__(self, other: Any) -> Any:
        return self._binary(other, "+")

    def __sub__(self, other: Any) -> Any:
        return self._binary(other, "-")

    def __mul__(self, other: Any) -> Any:
        return self._binary(other, "*")

    def __truediv__(self, other: Any) -> Any:
        return self._binary(other, "/")

    def _structural_args(self) -> dict[str, Any]:
        """Constructor arguments that are not parameters (e.g. ``degree``)."""
        return {}

    def to_yaml(self, include_arrays: bool = True) -> str:
        """Serialise to YAML (see :func:`parfit.models.to_yaml`).

        Examples
        --------
        >>> from parfit.models import Const1D
        >>> print(Const1D(2.0).to_yaml().splitlines()[0])
        model: Const1D
        """
        from parfit.models.serialize import to_yaml

        return to_yaml(self, include_arrays=include_arrays)

    @classmethod
    def from_yaml(cls, text: str) -> Model:
        """Read a model from YAML (see :func:`parfit.models.from_yaml`).

        Examples
        --------
        >>> from parfit.models import Const1D, Model
        >>> Model.from_yaml(Const1D(2.0).to_yaml())
        <Const1D(amplitude=2.0)>
        """
        from parfit.models.serialize import from_yaml

        return from_yaml(text)

    def __repr__(self) -> str:
        vals = ", ".join(f"{p.name}={_fmt(p.value)}" for p in self._params.values())
        extra = "".join(f", {k}={v!r}" for k, v in self._structural_args().items())
        label = f", name={self.name!r}" if self.name is not None else ""
        if extra:
            return f"<{type(self).__name__}({extra[2:]}, {vals}{label})>"
        return f"<{type(self).__name__}({vals}{label})>"


def is_model(obj: Any) -> bool:
    """True for a parfit model or an astropy model (not a factory of models).

    Examples
    --------
    >>> from parfit.models import Gaussian1D, is_model
    >>> is_model(Gaussian1D()), is_model({"amplitude": 1.0})
    (True, False)
    """
    if isinstance(obj, Model):
        return True
    try:
        from astropy.modeling import Model as AstropyModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, AstropyModel)


def _fmt(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape})"
    return repr(float(value))
