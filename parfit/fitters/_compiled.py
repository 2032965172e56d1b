"""The fused compiled path of the batched trust-region reflective solver (numba).

The same algorithm as :mod:`parfit.fitters.trf`, step for step (the very
same compiled step functions of :mod:`parfit.fitters._kernel`), with the
model evaluated inside one loop per fit so that no intermediate array of
the block is ever built.  It covers models made of built-in 1-D components (Gaussian1D,
Lorentz1D, Const1D, Linear1D, Polynomial1D, PowerLaw1D, Voigt1D) or of built-in
2-D ones (Gaussian2D, CircularGaussian2D, Const2D) joined with ``+``, ``-``, ``*``
and ``/``, with fixed parameters, bounds and affine ties (``"mean_0 + 5"``,
``"0.5 * co10.amplitude"``), and joint models of such models (each
dataset's components evaluated on its own samples); everything else runs
on the numpy solver.  The kernel releases the GIL, so dask's threaded
scheduler runs blocks truly in parallel.

Without numba, :data:`AVAILABLE` is False and :func:`solve` returns None:
parfit then uses the numpy solver, which gives the same answers, only
slower.
"""

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _kernel, lm, trf
from ._kernel import AVAILABLE

if TYPE_CHECKING:
    from .batched import _ModelProblem

__all__ = ["AVAILABLE", "solve", "unsupported_reason", "component_codes"]

#: The kernel's codes of the operators of a compound model's program.
_OPERATORS = {"+": 0, "-": 1, "*": 2, "/": 3}

(_GAUSSIAN, _LORENTZ, _CONST, _LINEAR, _POLY, _POWERLAW, _VOIGT, _GAUSSIAN_2D, _CIRCULAR_2D) = (
    range(9)
)

#: Appended to the kernel's description of a model fitted to counts.
_COUNTS = np.zeros(0)


@dataclass(frozen=True)
class KernelModel:
    """The kernel's description of a model: its components, their samples and its ties.

    Attributes
    ----------
    codes, offsets, signs : ndarray
        Per component: its kind, the position of its first parameter, and
        +1 or -1 (a difference).
    segments : ndarray
        Rows ``(first component, end component, first sample, end sample,
        end parameter)``, one per dataset of a joint model; None for a model
        of one dataset.
    tied, source, coef, shift : ndarray
        The affine ties ``p[tied] = coef * p[source] + shift``, in the order
        they are applied.
    roots : dict of int to tuple of (int, float)
        Each tied parameter's free parameter and the chain's total factor
        (absent when the chain ends at a fixed parameter).
    program : ndarray
        For models with ``*`` or ``/``: rows ``(segment, operator, left,
        right, left's first parameter, right's first parameter, right's end
        parameter)`` combining component values in post-order (operators
        :data:`_OPERATORS`; the result replaces ``left``); no rows for sums
        and differences (``signs`` then).
    """

    codes: np.ndarray
    offsets: np.ndarray
    signs: np.ndarray
    segments: np.ndarray | None
    tied: np.ndarray
    source: np.ndarray
    coef: np.ndarray
    shift: np.ndarray
    roots: dict[int, tuple[int, float]]
    program: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 7), np.int64))

    @property
    def plain(self) -> bool:
        """A sum of one dataset without ties: the kernel's plain (fastest) evaluation."""
        return self.segments is None and self.tied.shape[0] == 0 and self.program.shape[0] == 0

    def kernel_model(
        self, free: np.ndarray, n_params: int, n_samples: int, poisson: bool = False
    ) -> tuple[np.ndarray, ...]:
        """The description of the model :func:`parfit.fitters._kernel.fit_all` takes.

        Its length picks the evaluation (:func:`parfit.fitters._kernel.evaluate`);
        ``poisson`` picks the deviance residuals of counts (``statistic="cash"``
        or ``"cstat"``) instead of weighted residuals.
        """
        if self.plain:
            if poisson:  # a fourth element marks counts (see _kernel.evaluate)
                return (self.codes, self.offsets, self.signs, _COUNTS)
            return (self.codes, self.offsets, self.signs)
        segments = self.segments
        if segments is None:
            segments = np.array([[0, len(self.codes), 0, n_samples, n_params]], dtype=np.int64)
        free_idx = np.flatnonzero(free)
        columns, column_coef = [], []
        for q, i in enumerate(free_idx):
            columns.append((q, int(i)))
            column_coef.append(1.0)
            for t, (root, factor) in self.roots.items():
                if root == i:
                    columns.append((q, t))
                    column_coef.append(factor)
        model = (
            self.codes,
            self.offsets,
            self.signs,
            np.ascontiguousarray(segments, dtype=np.int64),
            np.stack([self.tied, self.source], axis=1).astype(np.int64).reshape(-1, 2),
            np.stack([self.coef, self.shift], axis=1).astype(np.float64).reshape(-1, 2),
            np.array(columns, dtype=np.int64).reshape(-1, 2),
            np.array(column_coef, dtype=np.float64),
            np.zeros((len(free_idx), n_samples)),
            np.arange(len(free_idx), dtype=np.int64),
            self.program,
            np.zeros((len(self.codes), n_samples)),
        )
        return (*model, _COUNTS) if poisson else model


#: What :func:`component_codes` returns: a :class:`KernelModel` or ``(None, reason)``.
ComponentCodes = KernelModel | tuple[None, str]


def _affine(expr: Any) -> tuple[float, float] | None:
    """``(a, b)`` when the one-name expression ``expr`` is ``a * name + b``, else None."""
    (name,) = expr.names_used
    probes = (0.0, 1.0, -3.7, 2.5, 1234.5, -0.01)
    try:
        with np.errstate(all="ignore"):
            values = [float(expr({name: v})) for v in probes]
    except Exception:  # e.g. a function undefined somewhere: not affine
        return None
    b = values[0]
    a = values[1] - b
    for v, got in zip(probes, values):
        want = a * v + b
        if not (np.isfinite(got) and abs(got - want) <= 1e-12 * max(1.0, abs(got), abs(b))):
            return None
    return a, b


def _ties(model: Any) -> tuple[np.ndarray, ...] | str:
    """The model's ties as affine maps in dependency order, or why they are not affine."""
    plan = model._tie_plan()
    tied, source, coef, shift = [], [], [], []
    for i, expr, used in plan:
        if len(used) != 1:
            return "ties on no parameter or on several are handled by the numpy solver"
        found = _affine(expr)
        if found is None:
            return (
                f"the tie {expr.text!r} is not affine (a * parameter + b); such ties are "
                f"handled by the numpy solver"
            )
        tied.append(i)
        source.append(used[0])
        coef.append(found[0])
        shift.append(found[1])
    return (
        np.array(tied, dtype=np.int64),
        np.array(source, dtype=np.int64),
        np.array(coef, dtype=np.float64),
        np.array(shift, dtype=np.float64),
    )


def component_codes(model: Any) -> ComponentCodes:
    """The kernel's description of ``model``, or a reason why there is none.

    Returns
    -------
    KernelModel or tuple
        The description, or ``(None, reason)`` when the model is not
        supported.

    Examples
    --------
    >>> from parfit.models import Gaussian1D, Linear1D
    >>> described = component_codes(Gaussian1D() + Gaussian1D() - Linear1D())
    >>> described.codes.tolist(), described.offsets.tolist(), described.signs.tolist()
    ([0, 0, 3], [0, 3, 6], [1.0, 1.0, -1.0])
    >>> model = Gaussian1D() + Gaussian1D()
    >>> model.stddev_1.tied = "2 * stddev_0"
    >>> described = component_codes(model)
    >>> described.tied.tolist(), described.source.tolist(), described.coef.tolist()
    ([5], [2], [2.0])
    """
    from ..models.joint import JointModel

    joint = isinstance(model, JointModel)
    if joint:
        parts = [
            (member, model.param_slice(name), model.sample_slice(name))
            for name, member in model._members.items()
        ]
    else:
        parts = [(model, slice(0, model.n_params), slice(0, 0))]  # its segment: unused
    codes: list[int] = []
    offsets: list[int] = []
    signs: list[float] = []
    segments: list[tuple[int, int, int, int, int]] = []
    program: list[tuple[int, ...]] = []
    for member, params, samples in parts:
        described = _components(member)
        if isinstance(described, str):
            return None, described
        first = len(codes)
        member_codes, member_offsets, member_signs, member_program = described
        for code, offset, sign in zip(member_codes, member_offsets, member_signs):
            codes.append(code)
            offsets.append(params.start + offset)
            signs.append(sign)
        for op, a, b, pa, pb, pe in member_program:
            program.append(
                (len(segments), op, first + a, first + b, *(params.start + q for q in (pa, pb, pe)))
            )
        segments.append((first, len(codes), samples.start, samples.stop, params.stop))
    ties = _ties(model)
    if isinstance(ties, str):
        return None, ties
    tied, source, coef, shift = ties
    free = model.free_mask
    resolved: dict[int, tuple[int, float] | None] = {}
    for t, src, a in zip(tied.tolist(), source.tolist(), coef.tolist()):
        if free[src]:
            resolved[t] = (src, a)
        elif src in resolved and resolved[src] is not None:
            root, factor = resolved[src]  # type: ignore[misc]
            resolved[t] = (root, factor * a)
        else:
            resolved[t] = None  # ends at a fixed parameter: a constant
    roots = {t: r for t, r in resolved.items() if r is not None}
    return KernelModel(
        codes=np.array(codes, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.int64),
        signs=np.array(signs, dtype=np.float64),
        segments=np.array(segments, dtype=np.int64) if joint else None,
        tied=tied,
        source=source,
        coef=coef,
        shift=shift,
        roots=roots,
        program=np.array(program, dtype=np.int64).reshape(-1, 7),
    )


def _components(
    model: Any,
) -> tuple[list[int], list[int], list[float], list[tuple[int, ...]]] | str:
    """``(codes, offsets, signs, program)`` of a model of built-in components, or why not.

    ``program`` (see :class:`KernelModel`, without its segment column) is
    empty for sums and differences, whose ``signs`` say which are subtracted.
    """
    from ..models import (
        CircularGaussian2D,
        Const1D,
        Const2D,
        Gaussian1D,
        Gaussian2D,
        Linear1D,
        Lorentz1D,
        Polynomial1D,
        PowerLaw1D,
        Voigt1D,
    )
    from ..models.compound import CompoundModel

    kinds = {
        Gaussian1D: _GAUSSIAN,
        Lorentz1D: _LORENTZ,
        Const1D: _CONST,
        Linear1D: _LINEAR,
        Polynomial1D: _POLY,
        PowerLaw1D: _POWERLAW,
        Voigt1D: _VOIGT,
        Gaussian2D: _GAUSSIAN_2D,
        CircularGaussian2D: _CIRCULAR_2D,
        Const2D: _CONST,  # a constant does not read its inputs
    }
    compound = isinstance(model, CompoundModel)
    leaves = list(model._templates) if compound else [model]
    tree = model._tree if compound else 0
    codes, offsets = [], []
    offset = 0
    for leaf in leaves:
        code = kinds.get(type(leaf))
        if code is None:
            return f"{type(leaf).__name__} has no compiled form"
        codes.append(code)
        offsets.append(offset)
        offset += len(type(leaf).param_specs) if code != _POLY else leaf.degree + 1
    ends = [*offsets[1:], offset]
    signs = [1.0] * len(leaves)

    def signed(node: Any, sign: float) -> bool:
        """Each leaf's sign when the tree only adds and subtracts (False otherwise)."""
        if isinstance(node, int):
            signs[node] = sign
            return True
        op, left, right = node
        return op in "+-" and signed(left, sign) and signed(right, -sign if op == "-" else sign)

    program: list[tuple[int, ...]] = []

    def emit(node: Any) -> tuple[int, int, int]:
        """Post-order rows of ``node``; its value's row and its parameters' range."""
        if isinstance(node, int):
            return node, offsets[node], ends[node]
        op, left, right = node
        a, b = emit(left), emit(right)
        program.append((_OPERATORS[op], a[0], b[0], a[1], b[1], b[2]))
        return a[0], a[1], b[2]

    if not signed(tree, 1.0):
        signs = [1.0] * len(leaves)
        emit(tree)
    return codes, offsets, signs, program


def unsupported_reason(model: Any) -> str:
    """Why the compiled kernel cannot fit ``model`` (empty when it can)."""
    if not AVAILABLE:
        return "numba is not installed"
    described = component_codes(model)
    return described[1] if isinstance(described, tuple) else ""


def _inputs(xs: list[np.ndarray]) -> np.ndarray:
    """The model inputs as the kernel takes them.

    Each of ``xs`` is ``(1 or n_fits, n_samples)``.  One input is passed as
    it is; several are stacked to ``(1 or n_fits, n_inputs, n_samples)``
    (each fit's inputs one contiguous block), those of different leading
    sizes (one shared, one per fit) broadcast to the larger.
    """
    if len(xs) == 1:
        return np.ascontiguousarray(xs[0], dtype=np.float64)
    lead = max(xk.shape[0] for xk in xs)
    shape = (lead, xs[0].shape[1])
    stacked = np.stack([np.broadcast_to(xk, shape) for xk in xs], axis=1)
    return np.ascontiguousarray(stacked, dtype=np.float64)


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
    if isinstance(described, tuple):
        if required:
            raise RuntimeError(f"the compiled kernel cannot fit this model: {described[1]}")
        return None
    kernel_model = described.kernel_model(
        problem.free, problem.template.shape[1], problem.y.shape[1], problem.poisson
    )
    lower, upper, scale, gtol, state, out = trf.prepare(p0, lower, upper, problem.rms, options)
    _kernel.fit_all(
        kernel_model,
        _inputs(problem.xs),
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
