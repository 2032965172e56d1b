"""The fused compiled path of the batched trust-region reflective solver (numba).

The same algorithm as :mod:`parfit.fitters.trf`, step for step (the very
same compiled step functions of :mod:`parfit.fitters._kernel`), with the
model evaluated inside one loop per fit so that no intermediate array of
the block is ever built.  It covers models made of built-in 1-D components (Gaussian1D,
Lorentz1D, Const1D, Linear1D, Polynomial1D, PowerLaw1D) joined with ``+``
and ``-``, with fixed parameters and bounds but no ties; everything else
runs on the numpy solver.  The kernel releases the GIL, so dask's threaded
scheduler runs blocks truly in parallel.

Without numba, :data:`AVAILABLE` is False and :func:`solve` returns None:
parfit then uses the numpy solver, which gives the same answers, only
slower.
"""

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _kernel, lm, trf
from ._kernel import AVAILABLE

if TYPE_CHECKING:
    from .batched import _ModelProblem

__all__ = ["AVAILABLE", "solve", "unsupported_reason", "component_codes"]

_GAUSSIAN, _LORENTZ, _CONST, _LINEAR, _POLY, _POWERLAW = range(6)

#: What :func:`component_codes` returns: ``(codes, offsets, signs)`` or ``(None, reason)``.
ComponentCodes = tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[None, str]


def component_codes(model: Any) -> ComponentCodes:
    """The kernel's description of ``model``, or a reason why there is none.

    Returns
    -------
    tuple
        ``(codes, offsets, signs)`` int64/int64/float64 arrays, one entry per
        component, or ``(None, reason)`` when the model is not supported.

    Examples
    --------
    >>> from parfit.models import Gaussian1D, Linear1D
    >>> codes, offsets, signs = component_codes(Gaussian1D() + Gaussian1D() - Linear1D())
    >>> codes.tolist(), offsets.tolist(), signs.tolist()
    ([0, 0, 3], [0, 3, 6], [1.0, 1.0, -1.0])
    """
    from ..models import Const1D, Gaussian1D, Linear1D, Lorentz1D, Polynomial1D, PowerLaw1D
    from ..models.compound import CompoundModel

    kinds = {
        Gaussian1D: _GAUSSIAN,
        Lorentz1D: _LORENTZ,
        Const1D: _CONST,
        Linear1D: _LINEAR,
        Polynomial1D: _POLY,
        PowerLaw1D: _POWERLAW,
    }
    if any(getattr(model, n).tied for n in model.param_names):
        return None, "tied parameters are handled by the numpy solver"
    if isinstance(model, CompoundModel):
        leaves: list[Any] = []
        signs: list[float] = []

        def walk(node: Any, sign: float) -> bool:
            if isinstance(node, int):
                leaves.append(model._templates[node])
                signs.append(sign)
                return True
            op, left, right = node
            if op not in "+-":
                return False
            return walk(left, sign) and walk(right, -sign if op == "-" else sign)

        if not walk(model._tree, 1.0):
            return None, "only sums and differences of components are compiled"
    else:
        leaves, signs = [model], [1.0]
    codes, offsets = [], []
    offset = 0
    for leaf in leaves:
        code = kinds.get(type(leaf))
        if code is None:
            return None, f"{type(leaf).__name__} has no compiled form"
        codes.append(code)
        offsets.append(offset)
        offset += len(type(leaf).param_specs) if code != _POLY else leaf.degree + 1
    return (
        np.array(codes, dtype=np.int64),
        np.array(offsets, dtype=np.int64),
        np.array(signs, dtype=np.float64),
    )


def unsupported_reason(model: Any) -> str:
    """Why the compiled kernel cannot fit ``model`` (empty when it can)."""
    if not AVAILABLE:
        return "numba is not installed"
    described = component_codes(model)
    return described[1] if described[0] is None else ""


def solve(
    model: Any,
    problem: "_ModelProblem",
    p0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    options: lm.LMOptions,
    required: bool = False,
) -> lm.LMOutcome | None:
    """Run the compiled kernel on ``problem``; None when it cannot be used.

    Parameters
    ----------
    model : parfit model
    problem : parfit.fitters.batched._ModelProblem
        Supplies the prepared data (``y``, ``w``, ``xs``, ``template``,
        ``free``, ``rms``, ``x_scale``).
    p0, lower, upper : ndarray
        ``(n_fits, n_free)``.
    options : parfit.fitters.lm.LMOptions
    required : bool
        Raise instead of returning None when the kernel cannot be used.

    Returns
    -------
    parfit.fitters.lm.LMOutcome or None
    """
    described = component_codes(model) if AVAILABLE else (None, "numba is not installed")
    if described[0] is None:
        if required:
            raise RuntimeError(f"the compiled kernel cannot fit this model: {described[1]}")
        return None
    codes, offsets, signs = described
    lower, upper, scale, gtol, state, out = trf.prepare(p0, lower, upper, problem.rms, options)
    _kernel.fit_all(
        codes,
        offsets,
        signs,
        np.ascontiguousarray(problem.xs[0], dtype=np.float64),
        np.ascontiguousarray(problem.y),
        np.ascontiguousarray(problem.w, dtype=np.float64),
        np.ascontiguousarray(problem.template, dtype=np.float64),
        np.flatnonzero(problem.free).astype(np.int64),
        lower,
        upper,
        scale,
        problem.x_scale,
        float(options.ftol),
        float(options.xtol),
        gtol,
        options.nfev_limit(p0.shape[1]),
        float(options.factor),
        *state.arrays(),
    )
    state.finish(out, scale)
    return out
