"""Safe compiler for tied-parameter expressions.

A tied expression such as ``"mean_0 + 1200"`` or ``"2 * stddev_0"`` is parsed
with :mod:`ast`, checked against a small whitelist (numbers, known names,
arithmetic, a few numpy functions) and compiled into a tree of closures.
User text is never passed to :func:`eval` or :func:`exec`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from parfit.errors import ParameterError

__all__ = ["CompiledExpression", "compile_expression", "expression_names", "rename_expression"]

#: Functions callable from an expression, with their number of arguments.
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "sqrt": (np.sqrt, 1),
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "log10": (np.log10, 1),
    "log2": (np.log2, 1),
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "arcsin": (np.arcsin, 1),
    "arccos": (np.arccos, 1),
    "arctan": (np.arctan, 1),
    "arctan2": (np.arctan2, 2),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "tanh": (np.tanh, 1),
    "abs": (np.abs, 1),
    "minimum": (np.minimum, 2),
    "maximum": (np.maximum, 2),
    "hypot": (np.hypot, 2),
    "deg2rad": (np.deg2rad, 1),
    "rad2deg": (np.rad2deg, 1),
}

#: Named constants; a parameter of the same name takes precedence.
_CONSTANTS: dict[str, float] = {"pi": float(np.pi), "e": float(np.e)}

_BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.Mod: lambda a, b: a % b,
}

_UNARY_OPS: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: lambda a: +a,
    ast.USub: lambda a: -a,
}

_Node = Callable[[Mapping[str, Any]], Any]


def _segment(text: str, node: ast.AST) -> str:
    seg = ast.get_source_segment(text, node)
    return seg if seg is not None else ast.unparse(node)


def _parse(text: Any) -> ast.Expression:
    if not isinstance(text, str):
        raise ParameterError(
            f"tied expression must be a string such as 'mean_0 + 1200', "
            f"got {text!r} of type {type(text).__name__}"
        )
    if not text.strip():
        raise ParameterError("tied expression is empty; give an expression such as 'mean_0 + 1200'")
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ParameterError(f"tied expression {text!r} is not valid syntax: {exc.msg}") from None


class _Compiler:
    """Walk a parsed expression, validating it and building closures."""

    def __init__(self, text: str, names: tuple[str, ...] | None) -> None:
        self.text = text
        self.names = names
        self.used: list[str] = []

    def _fail(self, what: str) -> ParameterError:
        return ParameterError(f"tied expression {self.text!r} {what}")

    def build(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._fail(
                    f"uses unsupported constant {_segment(self.text, node)!r}; "
                    "only real numbers are allowed"
                )
            const = float(value)
            return lambda ns: const
        if isinstance(node, ast.Name):
            return self._name(node, node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # ``<dataset>.<parameter>``: another dataset's parameter in a joint fit.
            return self._name(node, dotted_name(node))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
            op = _UNARY_OPS[type(node.op)]
            operand = self.build(node.operand)
            return lambda ns: op(operand(ns))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            op2 = _BINARY_OPS[type(node.op)]
            left = self.build(node.left)
            right = self.build(node.right)
            return lambda ns: op2(left(ns), right(ns))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self._fail(
            f"uses unsupported syntax {_segment(self.text, node)!r} "
            f"({type(node).__name__}); allowed are numbers, parameter names, "
            "pi, e, + - * / ** %, parentheses and calls to " + ", ".join(sorted(_FUNCTIONS))
        )

    def _name(self, node: ast.AST, name: str) -> _Node:
        if self.names is None or name in self.names:
            if name not in self.used:
                self.used.append(name)
            return lambda ns: ns[name]
        if name in _CONSTANTS:
            const = _CONSTANTS[name]
            return lambda ns: const
        known = ", ".join(self.names) if self.names else "(none)"
        if "." in name and not any("." in n for n in self.names):
            raise self._fail(
                f"uses {name!r}, a parameter of another dataset; such ties work only in a "
                f"joint fit (parallel_fit with mappings of datasets); known names: {known}"
            )
        raise self._fail(f"uses unknown name {name!r}; known names: {known}")

    def _call(self, node: ast.Call) -> _Node:
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in _FUNCTIONS:
            raise self._fail(
                f"calls {_segment(self.text, func)!r}, which is not an allowed function; "
                "allowed functions: " + ", ".join(sorted(_FUNCTIONS))
            )
        if node.keywords:
            raise self._fail(
                f"passes keyword arguments to {func.id!r}; only positional arguments are allowed"
            )
        fn, nargs = _FUNCTIONS[func.id]
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self._fail(f"uses unsupported syntax '*' unpacking in a call to {func.id!r}")
        if len(node.args) != nargs:
            raise self._fail(
                f"calls {func.id!r} with {len(node.args)} argument(s); it takes {nargs}"
            )
        args = [self.build(a) for a in node.args]
        if nargs == 1:
            (arg,) = args
            return lambda ns: fn(arg(ns))
        first, second = args
        return lambda ns: fn(first(ns), second(ns))


class CompiledExpression:
    """A validated tied expression, callable on a namespace of arrays.

    Build instances with :func:`compile_expression`.

    Parameters
    ----------
    text : str
        The expression source.
    names : iterable of str
        Names the expression may use.

    Attributes
    ----------
    text : str
        The expression source.
    names_used : tuple of str
        Names of ``names`` the expression uses, in order of first use.

    Examples
    --------
    >>> expr = compile_expression("2 * stddev_0", ["stddev_0", "mean_0"])
    >>> expr.names_used
    ('stddev_0',)
    >>> float(expr({"stddev_0": 1.5}))
    3.0
    """

    def __init__(self, text: str, names: Iterable[str]) -> None:
        names = tuple(names)
        tree = _parse(text)
        compiler = _Compiler(text, names)
        self._root = compiler.build(tree)
        self.text = text
        self._names = names
        self.names_used: tuple[str, ...] = tuple(compiler.used)

    def __call__(self, namespace: Mapping[str, Any]) -> Any:
        """Evaluate the expression; values may be floats or numpy arrays."""
        try:
            return self._root(namespace)
        except KeyError as exc:
            raise ParameterError(
                f"tied expression {self.text!r} needs a value for {exc.args[0]!r}"
            ) from None

    def __reduce__(self) -> tuple[Any, ...]:
        # The closures do not pickle; rebuild them from the source text.
        return (CompiledExpression, (self.text, self._names))

    def __repr__(self) -> str:
        return f"CompiledExpression({self.text!r})"


def compile_expression(text: str, names: Iterable[str]) -> CompiledExpression:
    """Validate and compile a tied-parameter expression.

    Parameters
    ----------
    text : str
        Expression such as ``"mean_0 + 1200"``. Allowed: real numbers, the
        given names, the constants ``pi`` and ``e``, unary ``+``/``-``, binary
        ``+ - * / ** %``, parentheses and calls to ``sqrt, exp, log, log10,
        log2, sin, cos, tan, arcsin, arccos, arctan, arctan2, sinh, cosh,
        tanh, abs, minimum, maximum, hypot, deg2rad, rad2deg`` (numpy's).
    names : iterable of str
        Names the expression may refer to (a name shadows the constants).

    Returns
    -------
    CompiledExpression
        Callable on a mapping ``name -> float or ndarray``; vectorised.

    Raises
    ------
    ParameterError
        On syntax errors, unknown names or any construct outside the whitelist,
        with a message naming the expression and the offending part.

    Examples
    --------
    >>> import numpy as np
    >>> f = compile_expression("sqrt(a**2 + b**2)", ["a", "b"])
    >>> f({"a": np.array([3.0, 6.0]), "b": np.array([4.0, 8.0])})
    array([ 5., 10.])
    """
    return CompiledExpression(text, names)


def expression_names(text: str) -> tuple[str, ...]:
    """Check an expression's syntax and return the names it uses.

    Every name is accepted except the constants ``pi`` and ``e``; use
    :func:`compile_expression` to check names against a model.

    Examples
    --------
    >>> expression_names("2 * stddev_0 + pi")
    ('stddev_0',)
    """
    tree = _parse(text)
    compiler = _Compiler(text, None)
    # Names are unrestricted here, but constants must not count as names.
    names: list[str] = []
    compiler.build(tree)
    for name in compiler.used:
        if name not in _CONSTANTS and name not in names:
            names.append(name)
    return tuple(names)


def dotted_name(node: ast.Attribute) -> str:
    """``"<dataset>.<parameter>"`` of an attribute node ``dataset.parameter``."""
    assert isinstance(node.value, ast.Name)
    return f"{node.value.id}.{node.attr}"


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = mapping

    def visit_Call(self, node: ast.Call) -> ast.AST:
        # Function names are not identifiers of parameters: leave node.func.
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        new = self.mapping.get(node.id)
        if new is None:
            return node
        # A dotted new name is emitted as written (``co10.mean_0``).
        return ast.copy_location(ast.Name(id=new, ctx=node.ctx), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name):
            new = self.mapping.get(dotted_name(node))
            if new is not None:
                return ast.copy_location(ast.Name(id=new, ctx=node.ctx), node)
        return node


def rename_expression(text: str, mapping: Mapping[str, str]) -> str:
    """Rename identifiers in an expression.

    Parameters
    ----------
    text : str
        Expression source.
    mapping : mapping of str to str
        Old name to new name; names not in the mapping are kept.

    Returns
    -------
    str
        The re-emitted expression (normalised by :func:`ast.unparse`).

    Examples
    --------
    >>> rename_expression("2*stddev + sqrt(mean)", {"stddev": "stddev_0", "mean": "mean_0"})
    '2 * stddev_0 + sqrt(mean_0)'
    """
    tree = _parse(text)
    tree = _Renamer(mapping).visit(tree)
    return ast.unparse(tree)
