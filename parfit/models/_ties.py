"""Tied and fixed parameters (dependency order, tie application, chain rule) and validation."""

from __future__ import annotations

from typing import Any

import numpy as np

from parfit.errors import ParameterError
from parfit.models._expr import CompiledExpression, compile_expression

__all__ = ["TiesMixin"]

#: Relative step of the central finite differences (cube root of eps).
_FD_STEP = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)


class TiesMixin:
    """Ties part of :class:`parfit.models.Model` (needs ``_params``)."""

    _params: Any
    param_names: Any
    free_mask: Any

    def _tie_plan(self) -> list[tuple[int, CompiledExpression, list[int]]]:
        """Compiled ties in dependency order; validated (cached per tie set)."""
        key = tuple(p.tied for p in self._params.values())
        cache = self.__dict__.get("_tie_cache")
        if cache is not None and cache[0] == key:
            return cache[1]
        names = self.param_names
        index = {n: i for i, n in enumerate(names)}
        compiled: dict[int, CompiledExpression] = {}
        for i, p in enumerate(self._params.values()):
            if p.tied is None:
                continue
            try:
                expr = compile_expression(p.tied, names)
            except ParameterError as exc:
                raise ParameterError(f"Parameter {p.name!r}: {exc}") from None
            if p.name in expr.names_used:
                raise ParameterError(
                    f"Parameter {p.name!r}: tied expression {p.tied!r} refers to the "
                    "parameter itself"
                )
            compiled[i] = expr
        order: list[int] = []
        state: dict[int, int] = {}  # 1 = visiting, 2 = done

        def visit(i: int, path: list[int]) -> None:
            if state.get(i) == 2:
                return
            if state.get(i) == 1:
                cycle = path[path.index(i) :] + [i]
                raise ParameterError(
                    "tied parameters form a cycle: "
                    + " -> ".join(names[j] for j in cycle)
                    + "; at least one parameter in a chain of ties must be free or fixed"
                )
            state[i] = 1
            for dep in compiled[i].names_used:
                j = index[dep]
                if j in compiled:
                    visit(j, path + [i])
            state[i] = 2
            order.append(i)

        for i in compiled:
            visit(i, [])
        plan = [(i, compiled[i], [index[n] for n in compiled[i].names_used]) for i in order]
        self.__dict__["_tie_cache"] = (key, plan)
        return plan

    def apply_ties(self, params: np.ndarray) -> np.ndarray:
        """Recompute tied columns from their expressions.

        Parameters
        ----------
        params : ndarray
            ``(n_fits, n_params)``.

        Returns
        -------
        ndarray
            A copy with tied columns replaced (in dependency order, so chains
            of ties work).  Invalid operations give NaN without warnings.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> m = Gaussian1D() + Gaussian1D()
        >>> m.stddev_1.tied = "2 * stddev_0"
        >>> m.apply_ties(np.array([[1.0, 0.0, 1.5, 1.0, 0.0, 0.0]]))[0, 5]
        np.float64(3.0)
        """
        out = np.array(params, dtype=np.float64, copy=True)
        plan = self._tie_plan()
        if not plan:
            return out
        names = self.param_names
        with np.errstate(all="ignore"):
            for i, expr, deps in plan:
                ns = {names[j]: out[:, j] for j in deps}
                out[:, i] = expr(ns)
        return out

    def tie_jacobian(self, params: np.ndarray) -> np.ndarray:
        """Derivative of all parameters with respect to the free ones.

        Parameters
        ----------
        params : ndarray
            ``(n_fits, n_params)``; ties are applied first.

        Returns
        -------
        ndarray
            ``D`` of shape ``(n_fits, n_params, n_free)``: identity rows for
            free parameters, zero rows for fixed ones, chain-rule rows for
            tied ones (expression derivatives by central differences).  A
            solver gets the free-parameter Jacobian as ``J_full @ D``.

        Examples
        --------
        >>> import numpy as np
        >>> from parfit.models import Gaussian1D
        >>> m = Gaussian1D(tied={"mean": "3 * amplitude"}, fixed={"stddev": True})
        >>> m.tie_jacobian(np.array([[1.0, 3.0, 1.0]]))[0].round(6)
        array([[1.],
               [3.],
               [0.]])
        """
        p = self.apply_ties(params)
        n_fits, n_params = p.shape
        free = np.flatnonzero(self.free_mask)
        d = np.zeros((n_fits, n_params, free.size), dtype=np.float64)
        d[:, free, np.arange(free.size)] = 1.0
        names = self.param_names
        with np.errstate(all="ignore"):
            for i, expr, deps in self._tie_plan():
                ns = {names[j]: p[:, j] for j in deps}
                for j in deps:
                    base = p[:, j]
                    h = _FD_STEP * np.maximum(np.abs(base), 1.0)
                    up = base + h
                    down = base - h
                    ns[names[j]] = up
                    f_up = np.asarray(expr(ns), dtype=np.float64)
                    ns[names[j]] = down
                    f_down = np.asarray(expr(ns), dtype=np.float64)
                    ns[names[j]] = base
                    deriv = (f_up - f_down) / (up - down)
                    d[:, i, :] += deriv[..., np.newaxis] * d[:, j, :]
        return d

    def validate(self) -> None:
        """Check parameters and ties before a fit.

        Raises
        ------
        ParameterError
            For ``lower >= upper``, a scalar starting value outside its
            bounds or not finite, a parameter both fixed and tied, a tied
            expression with bad syntax, unknown names, a reference to itself,
            or a cycle among tied parameters.

        Examples
        --------
        >>> from parfit.models import Gaussian1D
        >>> g = Gaussian1D(tied={"mean": "foo"})
        >>> g.validate()
        Traceback (most recent call last):
        ...
        parfit.errors.ParameterError: Parameter 'mean': tied expression 'foo' uses unknown name
        'foo'; known names: amplitude, mean, stddev
        """
        for p in self._params.values():
            p.validate()
        self._tie_plan()
