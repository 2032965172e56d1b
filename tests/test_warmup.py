"""The background warm-up of the compiled kernel (parfit.fitters.warmup).

What a fresh process loads, and that a fit right after ``import parfit``
finds the kernel loaded, are checked in fresh interpreters in
tests/test_architecture.py.
"""

import threading

import pytest

from parfit.fitters import warmup


@pytest.mark.parametrize(
    ("value", "session", "expected"),
    [
        (None, False, False),
        (None, True, True),
        ("1", False, True),
        ("yes", False, True),
        ("0", True, False),
        ("off", True, False),
        (" False ", True, False),
    ],
)
def test_enabled_follows_parfit_warmup_else_the_session(monkeypatch, value, session, expected):
    # Unset, only an interactive session (Jupyter, IPython, python -i) warms up.
    if value is None:
        monkeypatch.delenv("PARFIT_WARMUP", raising=False)
    else:
        monkeypatch.setenv("PARFIT_WARMUP", value)
    monkeypatch.setattr(warmup, "interactive", lambda: session)
    assert warmup.enabled() is expected


def test_a_script_is_not_an_interactive_session():
    import subprocess
    import sys

    code = "from parfit.fitters import warmup; print(warmup.interactive())"
    env = {k: v for k, v in __import__("os").environ.items() if k != "PARFIT_WARMUP"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
    out = subprocess.run(
        [sys.executable, "-i", "-c", code], capture_output=True, text=True, env=env, input=""
    )
    assert out.stdout.strip().startswith("True")


def test_start_is_off_with_parfit_warmup_0(monkeypatch):
    monkeypatch.setenv("PARFIT_WARMUP", "0")
    monkeypatch.setattr(warmup, "_thread", None)
    assert warmup.start() is False
    assert warmup._thread is None
    warmup.wait()  # nothing to wait for


def test_errors_in_the_background_never_surface(monkeypatch):
    def broken(kinds):
        raise RuntimeError("no compiler today")

    seen = []
    monkeypatch.setattr(warmup, "warm", broken)
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args))
    monkeypatch.setenv("PARFIT_WARMUP", "1")
    monkeypatch.setattr(warmup, "_thread", None)
    assert warmup.start() is True
    assert warmup.start() is False  # once per process
    warmup.wait()
    assert seen == []


def test_warm_loads_the_kernel_here():
    assert warmup.warm(["chi2"]) in (True, False)  # False only without numba


def test_unknown_kinds_are_refused(capsys):
    with pytest.raises(ValueError, match="unknown warm-up kind"):
        warmup.warm(["fast"])
    with pytest.raises(SystemExit):
        warmup.main(["fast"])
    assert "unknown kind(s) fast" in capsys.readouterr().err


def test_main_compiles_what_it_is_asked(capsys):
    assert warmup.main(["chi2"]) == 0
    out = capsys.readouterr()
    assert "ready (chi2)" in out.out or "numba is not installed" in out.err
