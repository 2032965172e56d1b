"""The background warm-up of the compiled kernel (parfit.fitters.warmup).

What a fresh process loads, and that a fit right after ``import parfit``
finds the kernel loaded, are checked in fresh interpreters in
tests/test_architecture.py.
"""

import threading

import pytest

from parfit.fitters import warmup


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("1", True), ("yes", True), ("0", False), ("off", False), (" False ", False)],
)
def test_enabled_follows_parfit_warmup(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("PARFIT_WARMUP", raising=False)
    else:
        monkeypatch.setenv("PARFIT_WARMUP", value)
    assert warmup.enabled() is expected


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
