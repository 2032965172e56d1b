"""Value types of the analysis config: what a quantity, a unit, bounds, a source are.

Each accepted YAML form is checked by a plain function raising ``ValueError``
with the message the user sees; :mod:`parfit.config.schema` attaches them to
the schema's fields with pydantic's ``PlainValidator``.  Nothing here knows the
schema, so the template and the reference can name these types by their
``type_label``.  :func:`target_unit` and :func:`in_unit` read a parameter's
value and bounds in one unit, for the schema's checks and for the model
that :mod:`parfit.config.build` makes.

Examples
--------
>>> from pydantic import TypeAdapter
>>> TypeAdapter(Bounds).validate_python(["0 km/s", None])
['0 km/s', None]
>>> from astropy import units as u
>>> in_unit("4 km/s", u.Unit("m/s"), "value")
4000.0
"""

import difflib
import re
from typing import Annotated

from astropy import units as u
from pydantic import Field, PlainValidator

from parfit.engine.request import SCHEDULER_NAMES

__all__ = [
    "QuantityLike",
    "UnitStr",
    "Bounds",
    "Axes",
    "Source",
    "Scheduler",
    "ChunkSize",
    "MemoryLimit",
    "SCHEDULERS",
    "did_you_mean",
    "target_unit",
    "in_unit",
]

#: The config's schedulers: dask's own (names the engine accepts, without
#: their aliases) and ``local``, a LocalCluster that parfit starts.
SCHEDULERS = tuple(
    name for name in SCHEDULER_NAMES if name in ("synchronous", "threads", "processes")
) + ("local",)
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|inproc|ws|wss)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")


# --- value types -----------------------------------------------------------------


def _quantity(text, what):
    """Parse ``text`` (number or string) as an astropy Quantity, or raise ValueError."""
    if isinstance(text, bool):
        raise ValueError(f'{what} must be a number or a quantity such as "4000 m/s"; got {text!r}')
    if isinstance(text, (int, float)):
        try:
            return u.Quantity(float(text))
        except OverflowError:
            digits = len(str(abs(text)))
            raise ValueError(
                f"{what} {str(text)[:8]}... ({digits} digits) is too large for "
                f"a floating-point number (at most about 1.8e308)"
            ) from None
    if not isinstance(text, str):
        raise ValueError(f'{what} must be a number or a quantity such as "4000 m/s"; got {text!r}')
    try:
        q = u.Quantity(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} {text!r} is not a number with an optional unit, such as "
            f'"4000 m/s" ({_unit_problem(exc)})'
        ) from None
    if not q.isscalar:
        raise ValueError(f"{what} must be a single number, got {text!r}")
    return q


def _unit_problem(exc):
    """astropy's reason for refusing a unit, without its advice on custom units."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split(" If this is meant")[0].split("did not parse as unit: ")[-1]
    return text.strip()


def _check_quantity_like(value):
    _quantity(value, "value")
    return float(value) if isinstance(value, int) else value


def _check_unit(value):
    if not isinstance(value, str):
        raise ValueError(f'a unit must be a string such as "km/s"; got {value!r}')
    try:
        u.Unit(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a valid astropy unit ({_unit_problem(exc)})") from None
    return value


def _check_bounds(value):
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"bounds must be a list [lower, upper] (null for none); got {value!r}")
    lo, hi = (None if b is None else _quantity(b, "bound") for b in value)
    # A plain number is in the parameter's unit, known only to the parameter as a
    # whole: the order of a plain and a unit-ful bound is checked there.
    if lo is not None and hi is not None and (lo.unit == u.one) == (hi.unit == u.one):
        try:
            hi_in_lo = hi.to_value(lo.unit)
        except u.UnitConversionError:
            raise ValueError(
                f"lower bound {value[0]!r} and upper bound {value[1]!r} have incompatible units"
            ) from None
        if not lo.value < hi_in_lo:
            raise ValueError(f"lower bound must be below upper bound; got {value!r}")
    return [float(b) if isinstance(b, int) and not isinstance(b, bool) else b for b in value]


def _check_axes(value):
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("fitting_axes is empty; name at least one axis")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(
                f"fitting_axes must be an axis number, a dimension name, "
                f"'spectral', or a list of them; got {item!r}"
            )
    return value


def _check_source(value):
    if isinstance(value, str):
        return {"path": value, "hdu": None, "variable": None}
    if not isinstance(value, dict):
        raise ValueError(f"must be a file path or a mapping {{path, hdu, variable}}; got {value!r}")
    unknown = sorted(set(value) - {"path", "hdu", "variable"})
    if unknown:
        hint = did_you_mean(unknown[0], ("path", "hdu", "variable"))
        raise ValueError(f"unknown key {unknown[0]!r}{hint}; allowed: path, hdu, variable")
    if value.get("path") is not None and not isinstance(value["path"], str):
        raise ValueError(f"path must be a string; got {value['path']!r}")
    hdu = value.get("hdu")
    if hdu is not None and (isinstance(hdu, bool) or not isinstance(hdu, (int, str))):
        raise ValueError(f"hdu must be an HDU number or name; got {hdu!r}")
    var = value.get("variable")
    if var is not None and not isinstance(var, str):
        raise ValueError(f"variable must be a string; got {var!r}")
    if value.get("path") is None and hdu is None and var is None:
        raise ValueError("give a path, or the hdu or variable of the input file holding it")
    return {"path": value.get("path"), "hdu": hdu, "variable": var}


def _check_scheduler(value):
    if not isinstance(value, str):
        raise ValueError(f"scheduler must be a string; got {value!r}")
    if value in SCHEDULERS or _ADDRESS.match(value):
        return value
    hint = did_you_mean(value, SCHEDULERS)
    raise ValueError(
        f"unknown scheduler {value!r}{hint}; expected one of "
        f"{', '.join(SCHEDULERS)} or a scheduler address such as "
        f"tcp://127.0.0.1:8786"
    )


def _check_chunk(value):
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"chunk_n_max must be a whole number >= 1 or 'auto'; got {value!r}")
    return value


def _check_memory(value):
    from dask.utils import parse_bytes

    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f'memory_limit must be a size such as "4GiB"; got {value!r}')
    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f'memory_limit {value!r} is not a size such as "4GiB"') from None
    return value


# ``type_label`` documents the accepted YAML for the template and the reference.
QuantityLike = Annotated[
    float | str,
    PlainValidator(_check_quantity_like),
    Field(json_schema_extra={"type_label": "number or quantity"}),
]
UnitStr = Annotated[
    str, PlainValidator(_check_unit), Field(json_schema_extra={"type_label": "unit"})
]
Bounds = Annotated[
    list, PlainValidator(_check_bounds), Field(json_schema_extra={"type_label": "[lower, upper]"})
]
Axes = Annotated[
    int | str | list,
    PlainValidator(_check_axes),
    Field(json_schema_extra={"type_label": "int, name or list"}),
]
Source = Annotated[
    dict,
    PlainValidator(_check_source),
    Field(json_schema_extra={"type_label": "path or {path, hdu, variable}"}),
]
Scheduler = Annotated[
    str,
    PlainValidator(_check_scheduler),
    Field(json_schema_extra={"type_label": "name or address"}),
]
ChunkSize = Annotated[
    int | str, PlainValidator(_check_chunk), Field(json_schema_extra={"type_label": "int or auto"})
]
MemoryLimit = Annotated[
    str | int, PlainValidator(_check_memory), Field(json_schema_extra={"type_label": "size"})
]


def did_you_mean(word, choices) -> str:
    """`` (did you mean 'x'?)`` naming the choice closest to ``word``, or ``""``.

    Examples
    --------
    >>> did_you_mean("treads", SCHEDULERS)
    " (did you mean 'threads'?)"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def target_unit(pc):
    """The unit a parameter's plain numbers are in: ``unit``, else the value's or a bound's."""
    if pc.unit is not None:
        return u.Unit(pc.unit)
    for raw in [pc.value] + list(pc.bounds or ()):
        if raw is not None:
            q = _quantity(raw, "value")
            if q.unit != u.one:
                return q.unit
    return None


def in_unit(raw, target, what) -> float:
    """``raw`` (number or quantity text) as a float in ``target`` (plain numbers as given)."""
    q = _quantity(raw, what)
    if q.unit == u.one or target is None:
        return float(q.value)
    try:
        return float(q.to_value(target))
    except u.UnitConversionError:
        raise ValueError(f"{what} {raw!r} is not convertible to {target}") from None
