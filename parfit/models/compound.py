"""Compound models: trees of ``+ - * /`` over leaf models.

Parameter names follow astropy: leaves are numbered left to right over the
flattened tree and every parameter name gets the suffix ``_<leaf index>``
(``amplitude_0, mean_0, stddev_0, amplitude_1, ...``).
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy import units as u

from parfit.errors import ModelError, ParameterError
from parfit.models._estimators import clip_round
from parfit.models._expr import expression_names, rename_expression
from parfit.models._guess import merge_guess
from parfit.models.base import Model, _fmt
from parfit.models.parameters import Parameter, Parameters

__all__ = ["CompoundModel", "OPERATORS"]

#: Supported operators.
OPERATORS = ("+", "-", "*", "/")

_Tree = Any  # int (leaf index) or (op, left, right)

#: Rounds of outlier rejection when guessing a baseline under peaks.
_CLIP_ROUNDS = 10
#: Samples further than this many robust standard deviations from a baseline
#: are taken to belong to a peak.
_CLIP_SIGMA = 2.0
#: Passes over the components when guessing a sum (baselines, then peaks).
_GUESS_PASSES = 2
#: A baseline is fitted to at least this fraction of the valid samples.
_MIN_BASELINE_FRACTION = 0.25


def _shift(tree: _Tree, offset: int) -> _Tree:
    if isinstance(tree, int):
        return tree + offset
    op, left, right = tree
    return (op, _shift(left, offset), _shift(right, offset))


def _take_rows(a: np.ndarray, rows: Any) -> np.ndarray:
    """``a[rows]``, still a broadcast view where every row of ``a`` is the same one."""
    if a.ndim == 2 and a.shape[0] > 1 and a.strides[0] == 0:
        n = a[rows].shape[0] if isinstance(rows, slice) else len(rows)
        return np.broadcast_to(a[0], (n, a.shape[1]))
    return a[rows]


def _strip(leaf: Model) -> Model:
    """Structure-only copy of a leaf model: no parameter state."""
    tmpl = _copy.copy(leaf)
    tmpl.__dict__["_params"] = None
    tmpl.__dict__["_tie_cache"] = None
    return tmpl


class CompoundModel(Model):
    """A model combining two models with ``+``, ``-``, ``*`` or ``/``.

    Usually built with the operators (``g1 + g2``).  The operands are
    copied; the compound owns its parameters, named like astropy's.

    Parameters
    ----------
    op : {'+', '-', '*', '/'}
        Operator.
    left, right : Model
        Operands with the same number of inputs.
    name : str, optional
        Label of the compound.

    Notes
    -----
    Tied expressions written on a leaf in its own names are renamed to the
    compound names (``"stddev"`` on the second leaf becomes ``"stddev_1"``).
    Units (:meth:`_parameter_units`): both sides of ``+``/``-`` get the
    data units; for ``*``/``/`` the left operand gets the output unit and the
    right operand is dimensionless.

    Examples
    --------
    >>> from parfit.models import Gaussian1D, Const1D
    >>> m = Gaussian1D(mean=-1.0) + Gaussian1D(mean=1.0) + Const1D(0.5)
    >>> m.param_names
    ('amplitude_0', 'mean_0', 'stddev_0', 'amplitude_1', 'mean_1', 'stddev_1', 'amplitude_2')
    >>> m.mean_1.tied = "mean_0 + 2"
    >>> float(m(0.0)) == float(2 * Gaussian1D()(1.0) + 0.5)
    True
    """

    _templates: list[Model]
    _tree: Any
    _leaf_of: list[tuple[int, str]]

    def __init__(self, op: str, left: Model, right: Model, *, name: str | None = None) -> None:
        if op not in OPERATORS:
            raise ModelError(f"unknown operator {op!r}; supported: {', '.join(OPERATORS)}")
        for side in (left, right):
            if not isinstance(side, Model):
                raise ModelError(f"operands of a compound model must be models, got {side!r}")
        if left.n_inputs != right.n_inputs:
            raise ModelError(
                f"cannot combine {type(left).__name__} ({left.n_inputs}-D, "
                f"n_inputs={left.n_inputs}) with {type(right).__name__} ({right.n_inputs}-D, "
                f"n_inputs={right.n_inputs}) using {op!r}: both operands must take the same "
                "number of inputs"
            )
        if name is not None and not isinstance(name, str):
            raise ModelError(f"CompoundModel: name must be a string or None, got {name!r}")
        self.__dict__["n_inputs"] = left.n_inputs
        self.name = name
        templates: list[Model] = []
        trees = []
        leaf_of: list[tuple[int, str]] = []
        params: list[Parameter] = []
        for side in (left, right):
            offset = len(templates)
            if isinstance(side, CompoundModel):
                side_templates = side._templates
                side_tree = side._tree
                side_entries = list(zip(side._leaf_of, side._params.values(), strict=True))
            else:
                side_templates = [_strip(side)]
                side_tree = 0
                side_entries = [((0, p.name), p) for p in side._params.values()]
            mapping = {p.name: f"{local}_{idx + offset}" for (idx, local), p in side_entries}
            for (idx, local), p in side_entries:
                new = p.copy(name=mapping[p.name])
                if new.tied is not None:
                    new.update(tied=rename_expression(new.tied, mapping))
                params.append(new)
                leaf_of.append((idx + offset, local))
            templates.extend(side_templates)
            trees.append(_shift(side_tree, offset))
        self._templates = templates
        self._tree = (op, trees[0], trees[1])
        self._leaf_of = leaf_of
        slices = []
        start = 0
        for t in range(len(templates)):
            n = sum(1 for idx, _ in leaf_of if idx == t)
            slices.append(slice(start, start + n))
            start += n
        self._slices = slices
        self._ranges: dict[Any, slice] = {}
        self._index_ranges(self._tree)
        try:
            self._params = Parameters(params)
        except ParameterError as exc:
            raise ModelError(f"cannot build compound model: {exc}") from None
        self._tie_cache = None

    def _index_ranges(self, node: _Tree) -> slice:
        if isinstance(node, int):
            return self._slices[node]
        _, left, right = node
        a = self._index_ranges(left)
        b = self._index_ranges(right)
        sl = slice(a.start, b.stop)
        self._ranges[node] = sl
        return sl

    def _range(self, node: _Tree) -> slice:
        if isinstance(node, int):
            return self._slices[node]
        return self._ranges[node]

    # ------------------------------------------------------------------
    @property
    def operator(self) -> str:
        """Operator at the root of the tree."""
        return self._tree[0]

    @property
    def n_leaves(self) -> int:
        """Number of leaf models."""
        return len(self._templates)

    @property
    def has_analytic_jacobian(self) -> bool:  # type: ignore[override]
        """True when every leaf has an analytic Jacobian."""
        return all(type(t).has_analytic_jacobian for t in self._templates)

    def _leaf_parameters(self, index: int) -> list[tuple[str, Parameter]]:
        """``(local name, compound Parameter)`` pairs of leaf ``index``."""
        return [
            (local, p)
            for (idx, local), p in zip(self._leaf_of, self._params.values(), strict=True)
            if idx == index
        ]

    def _leaf(self, index: int) -> Model:
        pairs = self._leaf_parameters(index)
        back = {p.name: local for local, p in pairs}
        own = []
        for local, p in pairs:
            new = p.copy(name=local)
            if new.tied is not None:
                used = expression_names(new.tied)
                if all(n in back for n in used):
                    new.update(tied=rename_expression(new.tied, back))
                else:
                    new.update(tied=None)
            own.append(new)
        leaf = _copy.copy(self._templates[index])
        leaf.__dict__["_params"] = Parameters(own)
        leaf.__dict__["_tie_cache"] = None
        return leaf

    @property
    def leaves(self) -> list[Model]:
        """Copies of the leaf models with the compound's current parameters.

        Tied expressions that refer to other leaves cannot be written in a
        leaf's own names and are dropped on the copies.

        Examples
        --------
        >>> from parfit.models import Gaussian1D, Const1D
        >>> m = Gaussian1D() + Const1D(3.0)
        >>> m.leaves
        [<Gaussian1D(amplitude=1.0, mean=0.0, stddev=1.0)>, <Const1D(amplitude=3.0)>]
        """
        return [self._leaf(i) for i in range(len(self._templates))]

    def _subtree(self, node: _Tree) -> Model:
        if isinstance(node, int):
            return self._leaf(node)
        op, left, right = node
        return CompoundModel(op, self._subtree(left), self._subtree(right))

    @property
    def left(self) -> Model:
        """Copy of the left operand (ties across operands dropped)."""
        return self._subtree(self._tree[1])

    @property
    def right(self) -> Model:
        """Copy of the right operand (ties across operands dropped)."""
        return self._subtree(self._tree[2])

    # ------------------------------------------------------------------
    def _declared_specs(self) -> tuple[Any, ...]:
        return ()

    def _value(self, xs: Sequence[np.ndarray], params: np.ndarray) -> Any:
        return self._node_value(self._tree, xs, params)

    def _node_value(self, node: _Tree, xs: Sequence[np.ndarray], params: np.ndarray) -> Any:
        if isinstance(node, int):
            return self._templates[node]._value(xs, params[:, self._slices[node]])
        op, left, right = node
        a = self._node_value(left, xs, params)
        b = self._node_value(right, xs, params)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b

    def _jac_into(self, xs: Sequence[np.ndarray], params: np.ndarray, out: np.ndarray) -> Any:
        return self._node_jac(self._tree, xs, params, out)

    def _node_jac(
        self, node: _Tree, xs: Sequence[np.ndarray], params: np.ndarray, out: np.ndarray
    ) -> Any:
        if isinstance(node, int):
            sl = self._slices[node]
            return self._templates[node]._jac_into(xs, params[:, sl], out[..., sl])
        op, left, right = node
        a = np.asarray(self._node_jac(left, xs, params, out))
        b = np.asarray(self._node_jac(right, xs, params, out))
        ls = self._range(left)
        rs = self._range(right)
        if op == "+":
            return a + b
        if op == "-":
            out[..., rs] *= -1.0
            return a - b
        if op == "*":
            out[..., ls] *= b[..., np.newaxis]
            out[..., rs] *= a[..., np.newaxis]
            return a * b
        out[..., ls] /= b[..., np.newaxis]
        out[..., rs] *= (-a / b**2)[..., np.newaxis]
        return a / b

    # ------------------------------------------------------------------
    # starting values
    def _operators(self, node: _Tree) -> set[str]:
        if isinstance(node, int):
            return set()
        op, left, right = node
        return {op} | self._operators(left) | self._operators(right)

    def _cannot_guess_detail(self) -> str:
        others = sorted(self._operators(self._tree) - {"+"})
        if others:
            return f"; this one combines models with {', '.join(map(repr, others))}"
        for t in self._templates:
            if not t.can_guess:
                return f"; its component {type(t).__name__} cannot guess"
        return ""

    @property
    def can_guess(self) -> bool:
        """True when only ``+`` combines leaves that can all guess.

        Examples
        --------
        >>> from parfit.models import Gaussian1D, Linear1D
        >>> (Gaussian1D() + Linear1D()).can_guess, (Gaussian1D() - Linear1D()).can_guess
        (True, False)
        """
        return self._cannot_guess_detail() == ""

    def _leaf_local_names(self, index: int) -> list[str]:
        return [local for idx, local in self._leaf_of if idx == index]

    def _guess_leaf(
        self,
        index: int,
        xs: list[np.ndarray],
        resid: np.ndarray,
        mask: np.ndarray,
        start: np.ndarray,
        out: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        """Guess of leaf ``index`` on ``resid``: its columns of ``out``, updated."""
        sl = self._slices[index]
        names = self._leaf_local_names(index)
        template = self._templates[index]
        block = out[:, sl].copy()
        cols = {n: start[:, sl.start + i] for i, n in enumerate(names)}
        guesses = template._guess(xs, resid, mask, cols)
        merge_guess(template, block, guesses, names, self.free_mask[sl], lower[:, sl], upper[:, sl])
        return block

    def _leaf_model(
        self, index: int, xs: list[np.ndarray], out: np.ndarray, block: np.ndarray
    ) -> np.ndarray:
        """Value of leaf ``index`` with ``block`` as its columns (ties applied)."""
        sl = self._slices[index]
        params = out.copy()
        params[:, sl] = block
        params = self.apply_ties(params)
        value = self._templates[index]._value(xs, params[:, sl])
        return np.broadcast_to(value, xs[0].shape)

    def _guess_baseline(
        self,
        index: int,
        xs: list[np.ndarray],
        resid: np.ndarray,
        use: np.ndarray,
        start: np.ndarray,
        out: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        # Peaks pull a plain fit up (or down) and need not leave any edge free, and
        # the lowest quantile is biased by the noise; so the baseline is fitted to
        # all samples, then refitted without those further than 2 robust standard
        # deviations (1.4826 MAD) from it, i.e. the peaks, keeping at least a quarter
        # of the samples (sigma clipping, two-sided: emission and absorption alike).
        n_min = np.maximum(
            self._slices[index].stop - self._slices[index].start + 1,
            np.ceil(_MIN_BASELINE_FRACTION * use.sum(axis=1)),
        )
        floor = 1e-12 * np.where(use, np.abs(resid), 0.0).max(axis=1)
        mask = use
        block = self._guess_leaf(index, xs, resid, mask, start, out, lower, upper)
        # Each fit is clipped on its own, so a fit whose mask no longer changes has
        # converged: its later rounds would repeat the same numbers; only the fits
        # still changing are carried into the next round.
        rows: Any = slice(None)
        for _ in range(_CLIP_ROUNDS):
            xs_r = [_take_rows(x, rows) for x in xs]
            r = resid[rows] - self._leaf_model(index, xs_r, out[rows], block[rows])
            new, changed = clip_round(
                r, mask[rows], use[rows], floor[rows], n_min[rows], _CLIP_SIGMA
            )
            if not changed.any():
                break
            if isinstance(rows, slice):
                rows = np.flatnonzero(changed)
                mask = mask.copy()
            else:
                rows = rows[changed]
            mask[rows] = new[changed]
            block[rows] = self._guess_leaf(
                index,
                [_take_rows(x, rows) for x in xs],
                resid[rows],
                mask[rows],
                start[rows],
                out[rows],
                lower[rows],
                upper[rows],
            )
        return block

    def _guess_array(
        self,
        xs: list[np.ndarray],
        y: np.ndarray,
        valid: np.ndarray,
        start: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        # Baselines first, robustly, from the data; then each peak, in leaf order, on
        # what the baselines and the previous peaks leave.  A second pass refits the
        # baselines to the data minus the peaks (backfitting), which removes most of
        # the bias faint or wide peaks leave in the first baseline, and the peaks again.
        out = start.copy()
        n = len(self._templates)
        baselines = [t for t in range(n) if self._templates[t]._guess_role == "baseline"]
        peaks = [t for t in range(n) if t not in baselines]
        values: dict[int, np.ndarray] = {}

        def minus(data: np.ndarray, use: np.ndarray, leaves: list[int]):
            for t in leaves:
                finite = np.isfinite(values[t])
                use = use & finite
                data = np.where(finite, data - values[t], data)
            return data, use

        def guess_leaf(t: int, data: np.ndarray, use: np.ndarray, baseline: bool):
            if baseline:
                block = self._guess_baseline(t, xs, data, use, start, out, lower, upper)
            else:
                block = self._guess_leaf(t, xs, data, use, start, out, lower, upper)
            out[:, self._slices[t]] = block
            values[t] = self._leaf_model(t, xs, out, block)
            return minus(data, use, [t])

        for _ in range(_GUESS_PASSES if baselines and peaks else 1):
            data, use = minus(y, valid, [t for t in peaks if t in values])
            for t in baselines:
                data, use = guess_leaf(t, data, use, True)
            data, use = minus(y, valid, baselines)
            for t in peaks:
                data, use = guess_leaf(t, data, use, False)
        self._order_peaks(peaks, out)
        return out

    def _order_peaks(self, peaks: list[int], out: np.ndarray) -> None:
        """Number peaks of one kind by increasing position, in place.

        Peaks are found strongest first, so without this the first Gaussian of
        a sum would hold the bluest line in one pixel and the reddest in the
        next.  Only peaks of the same class whose parameters are all free
        (not fixed, not tied) are reordered; the position is the first
        parameter measured in units of x (``mean``, ``x_0``).
        """
        groups: dict[type[Model], list[int]] = {}
        for t in peaks:
            names = [name for name, (idx, _) in zip(self.param_names, self._leaf_of) if idx == t]
            if any(getattr(self, name).fixed or getattr(self, name).tied for name in names):
                continue
            groups.setdefault(type(self._templates[t]), []).append(t)
        for cls, leaves in groups.items():
            units = [spec.unit for spec in cls.param_specs]
            if len(leaves) < 2 or "x" not in units:
                continue
            pos = units.index("x")
            blocks = np.stack([out[:, self._slices[t]] for t in leaves], axis=1)
            key = np.where(np.isfinite(blocks[:, :, pos]), blocks[:, :, pos], np.inf)
            order = np.argsort(key, axis=1, kind="stable")
            blocks = np.take_along_axis(blocks, order[:, :, np.newaxis], axis=1)
            for k, t in enumerate(leaves):
                out[:, self._slices[t]] = blocks[:, k]

    def order_components(
        self,
        names: Sequence[str],
        params: np.ndarray,
        *others: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> None:
        """Number the peaks of each kind by increasing position, fit by fit, in place.

        Fitted components of one kind come out in whatever order the solver
        left them, so ``mean_0`` could be the blue line in one pixel and the
        red one in the next.  This sorts, in every row, the peaks of each
        class by their position (the first parameter in units of x:
        ``mean``, ``x_0``), moving their parameters (columns ``names`` of
        ``params``) and the same columns of ``others`` (errors) together.
        Only a pure sum is ordered, and only peaks whose parameters are all
        free, untied and fitted (in ``names``); a row whose peaks of a kind
        have different bounds (``lower``, ``upper``, same columns) keeps its
        order, as would rows with a NaN position.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D, Const1D
        >>> m = Gaussian1D() + Gaussian1D() + Const1D()
        >>> p = np.array([[2.0, 5.0, 1.0, 3.0, -1.0, 0.5, 0.1]])
        >>> m.order_components(m.param_names, p)
        >>> p
        array([[ 3. , -1. ,  0.5,  2. ,  5. ,  1. ,  0.1]])
        """
        if self._operators(self._tree) != {"+"}:
            return
        column = {name: k for k, name in enumerate(names)}
        groups: dict[type[Model], list[list[int]]] = {}
        for t, template in enumerate(self._templates):
            if template.peak_parameters is None:
                continue
            leaf = [name for name, (idx, _) in zip(self.param_names, self._leaf_of) if idx == t]
            if any(
                name not in column or getattr(self, name).fixed or getattr(self, name).tied
                for name in leaf
            ):
                continue
            groups.setdefault(type(template), []).append([column[name] for name in leaf])
        for cls, leaves in groups.items():
            units = [spec.unit for spec in cls.param_specs]
            if len(leaves) < 2 or "x" not in units:
                continue
            cols = np.array(leaves)  # (n_leaves, n_leaf_params)
            pos = units.index("x")
            key = params[:, cols[:, pos]]
            key = np.where(np.isfinite(key), key, np.inf)
            order = np.argsort(key, axis=1, kind="stable")
            keep = ~np.isfinite(key).all(axis=1)
            for bound in (lower, upper):
                if bound is not None:
                    b = np.broadcast_to(bound, params.shape)[:, cols]
                    same = (b == b[:, :1]) | (np.isnan(b) & np.isnan(b[:, :1]))
                    keep |= ~same.all(axis=(1, 2))
            order[keep] = np.arange(len(leaves))
            moved = np.flatnonzero((order != np.arange(len(leaves))).any(axis=1))
            if not len(moved):
                continue
            for arr in (params, *others):
                blocks = arr[:, cols]  # (n, n_leaves, n_leaf_params)
                sorted_blocks = np.take_along_axis(blocks[moved], order[moved][:, :, None], axis=1)
                for k in range(len(leaves)):
                    arr[moved[:, None], cols[k][None, :]] = sorted_blocks[:, k]

    def peak_amplitude_indices(self) -> list[int]:
        """Positions of the amplitudes of every peak of the compound (see :class:`Model`)."""
        return [
            sl.start + i
            for template, sl in zip(self._templates, self._slices, strict=True)
            for i in template.peak_amplitude_indices()
        ]

    def collapsed(self, params: Any, lo: Any, hi: Any, step: Any, free: Any = None) -> np.ndarray:
        """Where any fitted peak of the sum has collapsed (see :meth:`Model.collapsed`)."""
        params = np.asarray(params, dtype=np.float64)
        free = self.free_mask if free is None else np.asarray(free, dtype=bool)
        out = np.zeros(params.shape[0], dtype=bool)
        for template, sl in zip(self._templates, self._slices, strict=True):
            out |= template.collapsed(params[:, sl], lo, hi, step, free[sl])
        return out

    # ------------------------------------------------------------------
    def _parameter_units(
        self, input_units: Sequence[Any], output_unit: Any
    ) -> dict[str, u.UnitBase | None]:
        """Units per parameter; see the class Notes for the rules.

        Examples
        --------
        >>> from astropy import units as u
        >>> from parfit.models import Gaussian1D, Const1D
        >>> units = (Gaussian1D() * Const1D())._parameter_units((u.um,), u.Jy)
        >>> units["amplitude_0"], units["amplitude_1"]
        (Unit("Jy"), None)
        """
        per_leaf: dict[int, dict[str, Any]] = {}

        def walk(node: _Tree, out_unit: Any) -> None:
            if isinstance(node, int):
                per_leaf[node] = self._templates[node]._parameter_units(input_units, out_unit)
                return
            op, left, right = node
            if op in ("+", "-"):
                walk(left, out_unit)
                walk(right, out_unit)
            else:
                walk(left, out_unit)
                walk(right, None)

        walk(self._tree, output_unit)
        return {
            p.name: per_leaf[idx][local]
            for (idx, local), p in zip(self._leaf_of, self._params.values(), strict=True)
        }

    def _expression(self, node: _Tree, top: bool = True) -> str:
        if isinstance(node, int):
            return type(self._templates[node]).__name__
        op, left, right = node
        text = f"{self._expression(left, False)} {op} {self._expression(right, False)}"
        return text if top else f"[{text}]"

    def __repr__(self) -> str:
        vals = ", ".join(f"{p.name}={_fmt(p.value)}" for p in self._params.values())
        label = f", name={self.name!r}" if self.name is not None else ""
        return f"<CompoundModel({self._expression(self._tree)}: {vals}{label})>"
