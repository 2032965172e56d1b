"""Tests of the safe tied-expression compiler."""

import pickle
import re

import numpy as np
import pytest

from parfit.errors import ParameterError
from parfit.models._expr import compile_expression, expression_names, rename_expression

NAMES = ("amplitude_0", "mean_0", "stddev_0", "amplitude_1", "mean_1")


def test_simple_expression_and_names_used():
    expr = compile_expression("mean_0 + 1200", NAMES)
    assert expr.names_used == ("mean_0",)
    assert expr({"mean_0": 3.0}) == 1203.0


def test_vectorised_over_arrays():
    expr = compile_expression("2 * stddev_0 - mean_0 / 4 + amplitude_0 ** 2 % 3", NAMES)
    s = np.array([1.0, 2.0, 3.0])
    m = np.array([4.0, 8.0, 12.0])
    a = np.array([1.0, 2.0, 3.0])
    out = expr({"stddev_0": s, "mean_0": m, "amplitude_0": a})
    np.testing.assert_allclose(out, 2 * s - m / 4 + a**2 % 3, rtol=0, atol=0)
    assert expr.names_used == ("stddev_0", "mean_0", "amplitude_0")


def test_unary_and_parentheses_and_constants():
    expr = compile_expression("-(mean_0 + pi) * +e", NAMES)
    assert expr({"mean_0": 1.0}) == pytest.approx(-(1.0 + np.pi) * np.e, rel=1e-15)
    assert expr.names_used == ("mean_0",)


def test_parameter_name_shadows_constant():
    expr = compile_expression("e * 2", ("e",))
    assert expr({"e": 5.0}) == 10.0
    assert expr.names_used == ("e",)


@pytest.mark.parametrize(
    ("func", "npfunc", "nargs"),
    [
        ("sqrt", np.sqrt, 1),
        ("exp", np.exp, 1),
        ("log", np.log, 1),
        ("log10", np.log10, 1),
        ("log2", np.log2, 1),
        ("sin", np.sin, 1),
        ("cos", np.cos, 1),
        ("tan", np.tan, 1),
        ("arcsin", np.arcsin, 1),
        ("arccos", np.arccos, 1),
        ("arctan", np.arctan, 1),
        ("arctan2", np.arctan2, 2),
        ("sinh", np.sinh, 1),
        ("cosh", np.cosh, 1),
        ("tanh", np.tanh, 1),
        ("abs", np.abs, 1),
        ("minimum", np.minimum, 2),
        ("maximum", np.maximum, 2),
        ("hypot", np.hypot, 2),
        ("deg2rad", np.deg2rad, 1),
        ("rad2deg", np.rad2deg, 1),
    ],
)
def test_whitelisted_functions(func, npfunc, nargs):
    a = np.array([0.1, 0.5, 0.9])
    b = np.array([0.3, 0.2, 0.7])
    text = f"{func}(a)" if nargs == 1 else f"{func}(a, b)"
    out = compile_expression(text, ("a", "b"))({"a": a, "b": b})
    expected = npfunc(a) if nargs == 1 else npfunc(a, b)
    np.testing.assert_array_equal(out, expected)


def test_unknown_name_message():
    with pytest.raises(
        ParameterError,
        match=re.escape(
            "tied expression 'mean_0 + foo' uses unknown name 'foo'; known names: "
            "amplitude_0, mean_0, stddev_0, amplitude_1, mean_1"
        ),
    ):
        compile_expression("mean_0 + foo", NAMES)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("np.sqrt(mean_0)", "calls 'np.sqrt', which is not an allowed function"),
        # One dot names another dataset's parameter (a joint fit); deeper ones are refused.
        ("mean_0.real", "uses 'mean_0.real', a parameter of another dataset; such ties work"),
        ("mean_0.real.imag", "uses unsupported syntax 'mean_0.real.imag' (Attribute)"),
        ("mean_0[0]", "uses unsupported syntax 'mean_0[0]' (Subscript)"),
        ("(lambda: 1)()", "calls 'lambda: 1', which is not an allowed function"),
        ("lambda: 1", "uses unsupported syntax 'lambda: 1' (Lambda)"),
        ("[m for m in mean_0]", "(ListComp)"),
        ("sqrt(x=mean_0)", "passes keyword arguments to 'sqrt'"),
        ("'abc'", "uses unsupported constant \"'abc'\""),
        ("__import__('os')", "calls '__import__', which is not an allowed function"),
        ("eval('1')", "calls 'eval', which is not an allowed function"),
        ("mean_0 if mean_0 else 1", "(IfExp)"),
        ("mean_0 > 1", "(Compare)"),
        ("mean_0 // 2", "(BinOp)"),
        ("True", "uses unsupported constant 'True'"),
        ("1j", "uses unsupported constant '1j'"),
        ("sqrt(mean_0, 2)", "calls 'sqrt' with 2 argument(s); it takes 1"),
        ("sqrt(*mean_0)", "'*' unpacking"),
        ("mean_0(1)", "calls 'mean_0', which is not an allowed function"),
        ("not mean_0", "(UnaryOp)"),
        ("mean_0 and 1", "(BoolOp)"),
    ],
)
def test_rejected_constructs(text, fragment):
    with pytest.raises(ParameterError, match=re.escape(f"tied expression {text!r} ")) as info:
        compile_expression(text, NAMES)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["mean_0 +", "1 = 2", "import os"])
def test_syntax_errors(text):
    with pytest.raises(
        ParameterError, match=re.escape(f"tied expression {text!r} is not valid syntax")
    ):
        compile_expression(text, NAMES)


def test_empty_and_non_string():
    with pytest.raises(ParameterError, match="tied expression is empty"):
        compile_expression("   ", NAMES)
    with pytest.raises(ParameterError, match="must be a string"):
        compile_expression(3.0, NAMES)


def test_missing_value_in_namespace():
    expr = compile_expression("mean_0 + 1", NAMES)
    with pytest.raises(ParameterError, match="needs a value for 'mean_0'"):
        expr({})


def test_compiled_expression_pickles():
    expr = compile_expression("2 * stddev_0 + sqrt(mean_0)", NAMES)
    back = pickle.loads(pickle.dumps(expr))
    assert back.names_used == expr.names_used
    assert back({"stddev_0": 1.0, "mean_0": 4.0}) == 4.0


def test_rename_expression():
    assert rename_expression("2*stddev + sqrt(mean)", {"stddev": "stddev_0", "mean": "mean_0"}) == (
        "2 * stddev_0 + sqrt(mean_0)"
    )
    # function names are not renamed, unknown names kept
    assert rename_expression("sqrt(sqrt) + other", {"sqrt": "s_1"}) == "sqrt(s_1) + other"
    with pytest.raises(ParameterError, match="not valid syntax"):
        rename_expression("a +", {})


def test_expression_names():
    assert expression_names("2 * stddev_0 + pi * mean_1 + stddev_0") == ("stddev_0", "mean_1")
    # "<dataset>.<parameter>" is a name (looked up, never an attribute access).
    assert expression_names("0.5 * co10.amplitude") == ("co10.amplitude",)
    with pytest.raises(ParameterError, match="Attribute"):
        expression_names("os.path.join")
