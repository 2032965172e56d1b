"""Model parameters: value (scalar or per-pixel map), bounds, fixed, tied, unit.

A :class:`Parameter` checks itself whenever an attribute is set, so an
inconsistent parameter is reported where it is made, with a message naming
the parameter, the value given and what was expected.  Per-pixel maps are
not checked pixel by pixel (a pixel whose starting value is NaN or outside
its bounds becomes a failed fit later); only ``lower >= upper`` anywhere in
array bounds is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from astropy import units as u

from parfit.errors import ParameterError
from parfit.models._expr import expression_names

__all__ = ["Parameter", "Parameters"]

_UNSET: Any = object()


def _format_number(value: float) -> str:
    return repr(float(value))


def _format_value(value: float | np.ndarray) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape})"
    return _format_number(value)


def _to_unit(name: str, unit: Any) -> u.UnitBase | None:
    if unit is None:
        return None
    try:
        return u.Unit(unit)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"Parameter {name!r}: unit {unit!r} is not a valid astropy unit ({exc})"
        ) from None


def _as_float_or_array(name: str, what: str, value: Any) -> float | np.ndarray:
    """Convert a number or array-like to float or a fresh float64 array."""
    if isinstance(value, (bool, np.bool_)):
        raise ParameterError(
            f"Parameter {name!r}: {what} must be a real number or array, got {value!r}"
        )
    try:
        arr = np.array(value, copy=True)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"Parameter {name!r}: {what} must be a real number or array, got {value!r} ({exc})"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise ParameterError(
            f"Parameter {name!r}: {what} must be a real number or array, "
            f"got {value!r} of dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 0:
        return float(arr)
    return arr


def _is_parameter_name(name: Any) -> bool:
    """A Python identifier, or ``<dataset>.<identifier>`` (a joint model's parameters)."""
    if not isinstance(name, str):
        return False
    parts = name.split(".")
    return len(parts) <= 2 and all(part.isidentifier() for part in parts)


class Parameter:
    """One model parameter.

    Parameters
    ----------
    name : str
        Parameter name (a Python identifier).
    value : float, array_like or `~astropy.units.Quantity`, optional
        Starting value: a scalar, or a per-pixel map whose shape broadcasts to
        the non-fitting shape of the cube.  Always stored as ``float`` or a
        fresh float64 array (the caller's array is copied, never written).
        A Quantity sets :attr:`unit` (or is converted to ``unit`` if given).
    bounds : tuple, optional
        ``(lower, upper)``; each ``None`` (unbounded), a float, an array
        (per-pixel) or a Quantity convertible to :attr:`unit`.
    fixed : bool, optional
        Keep the value constant during the fit.
    tied : str or None, optional
        Expression computing this parameter from others of the model it
        belongs to, e.g. ``"mean_0 + 1200"``.  Names are checked by the model
        (:meth:`parfit.models.Model.validate`); syntax is checked here.
    unit : str or `~astropy.units.UnitBase` or None, optional
        Unit of the value and bounds.
    description : str, optional
        Free text.

    Raises
    ------
    ParameterError
        If the value or bounds are not real numbers, a scalar value is NaN
        or infinite, scalar bounds have ``lower >= upper`` (arrays: in any
        pixel), a scalar value lies outside scalar bounds, or both ``fixed``
        and ``tied`` are set.

    Notes
    -----
    Every setter re-checks the whole parameter.  To move the value and the
    bounds together (for example to a new range that excludes the old value),
    use :meth:`update`.

    Examples
    --------
    >>> p = Parameter("stddev", 2.0, bounds=(0, None))
    >>> p
    Parameter('stddev', value=2.0, bounds=(0.0, None))
    >>> p.lower, p.upper
    (0.0, None)
    >>> p.value = 3.0
    >>> p.update(value=30.0, bounds=(20.0, 40.0))
    >>> p.value
    30.0
    """

    def __init__(
        self,
        name: str,
        value: Any = 0.0,
        *,
        bounds: Any = (None, None),
        fixed: bool = False,
        tied: str | None = None,
        unit: Any = None,
        description: str = "",
    ) -> None:
        if not _is_parameter_name(name):
            raise ParameterError(
                f"parameter name must be a Python identifier (or '<dataset>.<identifier>' in "
                f"a joint model), got {name!r}"
            )
        if not isinstance(description, str):
            raise ParameterError(
                f"Parameter {name!r}: description must be a string, got {description!r}"
            )
        self._name = name
        self.description = description
        self._unit = _to_unit(name, unit)
        self._value: float | np.ndarray = 0.0
        self._lower: float | np.ndarray | None = None
        self._upper: float | np.ndarray | None = None
        self._fixed = False
        self._tied: str | None = None
        self.update(value=value, bounds=bounds, fixed=fixed, tied=tied)

    # ------------------------------------------------------------------
    # conversion helpers
    def _convert(self, what: str, value: Any) -> float | np.ndarray:
        if isinstance(value, u.Quantity):
            if self._unit is None:
                if what != "value":
                    raise ParameterError(
                        f"Parameter {self._name!r}: {what} {value!r} has a unit but the "
                        "parameter has none; give the value with a unit first or pass unit="
                    )
                self._unit = value.unit
            try:
                value = value.to_value(self._unit)
            except u.UnitConversionError as exc:
                raise ParameterError(
                    f"Parameter {self._name!r}: {what} {value!r} cannot be converted "
                    f"to the parameter unit {self._unit}: {exc}"
                ) from None
        return _as_float_or_array(self._name, what, value)

    def _convert_bound(self, which: str, value: Any) -> float | np.ndarray | None:
        if value is None:
            return None
        out = self._convert(f"{which} bound", value)
        if isinstance(out, float):
            if np.isnan(out):
                raise ParameterError(
                    f"Parameter {self._name!r}: {which} bound is NaN; use None for unbounded"
                )
            if (which == "lower" and out == -np.inf) or (which == "upper" and out == np.inf):
                return None
        return out

    def _parse_bounds(self, bounds: Any) -> tuple[Any, Any]:
        if isinstance(bounds, np.ndarray) or not isinstance(bounds, (tuple, list)):
            raise ParameterError(
                f"Parameter {self._name!r}: bounds must be a (lower, upper) tuple, got {bounds!r}"
            )
        if len(bounds) != 2:
            raise ParameterError(
                f"Parameter {self._name!r}: bounds must be a (lower, upper) tuple, "
                f"got {len(bounds)} items: {bounds!r}"
            )
        return (
            self._convert_bound("lower", bounds[0]),
            self._convert_bound("upper", bounds[1]),
        )

    def _parse_tied(self, tied: Any) -> str | None:
        if tied is None or tied is False:
            return None
        if callable(tied):
            raise ParameterError(
                f"Parameter {self._name!r}: tied must be an expression string such as "
                "'mean_0 + 1200', not a callable (callables cannot be checked, "
                "serialised or sent safely to workers)"
            )
        expression_names(tied)  # syntax and whitelist check; raises ParameterError
        return tied.strip()

    def _parse_fixed(self, fixed: Any) -> bool:
        if isinstance(fixed, (bool, np.bool_)):
            return bool(fixed)
        if isinstance(fixed, (int, np.integer)) and fixed in (0, 1):
            return bool(fixed)
        raise ParameterError(
            f"Parameter {self._name!r}: fixed must be True or False, got {fixed!r}"
        )

    # ------------------------------------------------------------------
    def _check(
        self,
        value: float | np.ndarray,
        lower: float | np.ndarray | None,
        upper: float | np.ndarray | None,
        fixed: bool,
        tied: str | None,
    ) -> None:
        name = self._name
        if fixed and tied is not None:
            raise ParameterError(
                f"Parameter {name!r}: cannot be both fixed and tied (tied={tied!r}); "
                "set fixed=False or tied=None"
            )
        if isinstance(value, float) and not np.isfinite(value):
            raise ParameterError(
                f"Parameter {name!r}: starting value {value!r} is not finite; "
                "give a finite number (per-pixel maps may contain NaN)"
            )
        if lower is not None and upper is not None:
            lo = np.asarray(lower)
            hi = np.asarray(upper)
            try:
                bad = np.broadcast_arrays(lo, hi)
            except ValueError:
                raise ParameterError(
                    f"Parameter {name!r}: lower bound of shape {lo.shape} and upper bound "
                    f"of shape {hi.shape} do not broadcast together"
                ) from None
            bad_mask = bad[0] >= bad[1]
            if lo.ndim == 0 and hi.ndim == 0:
                if bad_mask:
                    raise ParameterError(
                        f"Parameter {name!r}: lower bound {float(lo)!r} must be below "
                        f"upper bound {float(hi)!r}"
                    )
            elif bad_mask.any():
                raise ParameterError(
                    f"Parameter {name!r}: lower bound must be below upper bound in every "
                    f"pixel, but lower >= upper in {int(bad_mask.sum())} of "
                    f"{bad_mask.size} pixels"
                )
        if isinstance(value, float):
            lo_s = lower if (lower is None or isinstance(lower, float)) else _UNSET
            hi_s = upper if (upper is None or isinstance(upper, float)) else _UNSET
            if lo_s is not _UNSET and hi_s is not _UNSET:
                lo_v = -np.inf if lo_s is None else lo_s
                hi_v = np.inf if hi_s is None else hi_s
                if not lo_v <= value <= hi_v:
                    raise ParameterError(
                        f"Parameter {name!r}: starting value {value!r} is outside its bounds "
                        f"[{lo_v!r}, {hi_v!r}]; give a starting value inside the bounds or "
                        "change both with Parameter.update(value=..., bounds=...)"
                    )

    def update(
        self,
        *,
        value: Any = _UNSET,
        bounds: Any = _UNSET,
        fixed: Any = _UNSET,
        tied: Any = _UNSET,
    ) -> None:
        """Set several attributes at once, checking the result once.

        Parameters
        ----------
        value, bounds, fixed, tied
            As in the constructor; attributes not given keep their values.

        Raises
        ------
        ParameterError
            If the resulting parameter is inconsistent; the parameter is then
            left unchanged.

        Examples
        --------
        >>> p = Parameter("x_0", 1.0, bounds=(0.0, 2.0))
        >>> p.update(value=5.0, bounds=(4.0, 6.0))
        >>> p
        Parameter('x_0', value=5.0, bounds=(4.0, 6.0))
        """
        saved_unit = self._unit
        try:
            new_value = self._value if value is _UNSET else self._convert("value", value)
            if bounds is _UNSET:
                lower, upper = self._lower, self._upper
            else:
                lower, upper = self._parse_bounds(bounds)
            new_fixed = self._fixed if fixed is _UNSET else self._parse_fixed(fixed)
            new_tied = self._tied if tied is _UNSET else self._parse_tied(tied)
            self._check(new_value, lower, upper, new_fixed, new_tied)
        except ParameterError:
            self._unit = saved_unit
            raise
        self._value = new_value
        self._lower = lower
        self._upper = upper
        self._fixed = new_fixed
        self._tied = new_tied

    def validate(self) -> None:
        """Re-check the parameter (see the class docstring).

        Examples
        --------
        >>> Parameter("a", 1.0).validate()
        """
        self._check(self._value, self._lower, self._upper, self._fixed, self._tied)

    # ------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Parameter name."""
        return self._name

    @property
    def value(self) -> float | np.ndarray:
        """Starting value: ``float`` or float64 array (per-pixel map)."""
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self.update(value=value)

    @property
    def bounds(self) -> tuple[Any, Any]:
        """``(lower, upper)``; ``None`` where unbounded."""
        return (self._lower, self._upper)

    @bounds.setter
    def bounds(self, bounds: Any) -> None:
        self.update(bounds=bounds)

    @property
    def lower(self) -> float | np.ndarray | None:
        """Lower bound, ``None`` if unbounded."""
        return self._lower

    @lower.setter
    def lower(self, value: Any) -> None:
        self.update(bounds=(value, self._upper))

    @property
    def upper(self) -> float | np.ndarray | None:
        """Upper bound, ``None`` if unbounded."""
        return self._upper

    @upper.setter
    def upper(self, value: Any) -> None:
        self.update(bounds=(self._lower, value))

    @property
    def fixed(self) -> bool:
        """Whether the parameter is held constant."""
        return self._fixed

    @fixed.setter
    def fixed(self, value: Any) -> None:
        self.update(fixed=value)

    @property
    def tied(self) -> str | None:
        """Tied expression or ``None``."""
        return self._tied

    @tied.setter
    def tied(self, value: Any) -> None:
        self.update(tied=value)

    @property
    def unit(self) -> u.UnitBase | None:
        """Unit of value and bounds, or ``None``."""
        return self._unit

    @unit.setter
    def unit(self, unit: Any) -> None:
        self._unit = _to_unit(self._name, unit)

    @property
    def quantity(self) -> u.Quantity | None:
        """Value as a Quantity, or ``None`` if the parameter has no unit."""
        if self._unit is None:
            return None
        return u.Quantity(self._value, self._unit)

    @property
    def is_array(self) -> bool:
        """Whether the value is a per-pixel array."""
        return isinstance(self._value, np.ndarray)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the value (``()`` for scalars)."""
        return self._value.shape if isinstance(self._value, np.ndarray) else ()

    # ------------------------------------------------------------------
    def copy(self, name: str | None = None) -> Parameter:
        """Return an independent copy, optionally renamed.

        Examples
        --------
        >>> Parameter("mean", 1.0).copy(name="mean_0")
        Parameter('mean_0', value=1.0, bounds=(None, None))
        """
        new = object.__new__(Parameter)
        new.__dict__.update(self.__dict__)
        if name is not None:
            if not _is_parameter_name(name):
                raise ParameterError(
                    f"parameter name must be a Python identifier (or '<dataset>.<identifier>' "
                    f"in a joint model), got {name!r}"
                )
            new._name = name
        for attr in ("_value", "_lower", "_upper"):
            val = getattr(self, attr)
            if isinstance(val, np.ndarray):
                setattr(new, attr, val.copy())
        return new

    def __copy__(self) -> Parameter:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameter:
        return self.copy()

    def __repr__(self) -> str:
        def fmt_bound(b: Any) -> str:
            return "None" if b is None else _format_value(b)

        parts = [
            repr(self._name),
            f"value={_format_value(self._value)}",
            f"bounds=({fmt_bound(self._lower)}, {fmt_bound(self._upper)})",
        ]
        if self._fixed:
            parts.append("fixed=True")
        if self._tied is not None:
            parts.append(f"tied={self._tied!r}")
        if self._unit is not None:
            parts.append(f"unit={self._unit.to_string()!r}")
        return f"Parameter({', '.join(parts)})"


class Parameters(Mapping[str, Parameter]):
    """Ordered mapping of parameter name to :class:`Parameter`.

    Parameters
    ----------
    parameters : iterable of Parameter
        In order; names must be unique.

    Examples
    --------
    >>> ps = Parameters([Parameter("a", 1.0), Parameter("b", 2.0)])
    >>> ps.names
    ('a', 'b')
    >>> ps["b"].value
    2.0
    """

    def __init__(self, parameters: Iterable[Parameter] = ()) -> None:
        self._params: dict[str, Parameter] = {}
        for p in parameters:
            if not isinstance(p, Parameter):
                raise ParameterError(f"Parameters holds Parameter objects, got {p!r}")
            if p.name in self._params:
                raise ParameterError(f"duplicate parameter name {p.name!r}")
            self._params[p.name] = p

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._params[name]
        except KeyError:
            raise KeyError(
                f"no parameter named {name!r}; parameters are: {', '.join(self._params)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in order."""
        return tuple(self._params)

    def copy(self) -> Parameters:
        """Deep copy (every Parameter copied).

        Examples
        --------
        >>> Parameters([Parameter("a", 1.0)]).copy().names
        ('a',)
        """
        return Parameters(p.copy() for p in self._params.values())

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self._params.values())
        return f"Parameters([{inner}])"
