"""The benchmark scripts run (smoke tests) and share one recovery criterion.

The slow tests run each script with ``--quick`` in a subprocess and check the
table it prints; they check no timings (the benchmarks report those).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    return _common


def _run(script, *args, timeout=300):
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_throughput_quick_single(tmp_path):
    out_json = tmp_path / "out.json"
    out = _run("bench_throughput.py", "--quick", "--case", "single", "--json", str(out_json))
    for header in (
        "tool",
        "fits",
        "wall s",
        "fits/s",
        "x astropy",
        "x xarray",
        "recovered",
        "rec. (own)",
    ):
        assert header in out, header
    for text in ("cpu_count", "numpy", "dask", "astropy", "== case single", "target (parfit)"):
        assert text in out, text
    lines = [line.split() for line in out.splitlines()]
    assert {"parfit", "astropy", "xarray"} <= {line[0] for line in lines if line}
    payload = json.loads(out_json.read_text())
    results = payload["cases"]["single"]["results"]
    assert {"parfit", "astropy", "xarray"} <= set(results)
    assert results["astropy"]["ratio_vs_astropy"] == pytest.approx(1.0)
    for r in results.values():
        assert r["n_fits"] == 400 and r["fits_per_s"] > 0
        assert 0.5 < r["recovered_common"] <= 1.0
    # each tool's first call in a fresh process, on the same pixels
    assert "-- cold start (single)" in out and "overhead s" in out
    cold = payload["cases"]["single"]["cold"]
    assert set(cold) == set(results)
    for name, c in cold.items():
        assert c["import_s"] > 0 and c["first_call_s"] > 0
        assert c["overhead_s"] == pytest.approx(c["total_s"] - results[name]["wall_s_best"])


@pytest.mark.slow
def test_bench_vs_astropy_quick():
    out = _run("bench_vs_astropy.py", "--quick")
    for header in ("path", "fits/s", "x astropy", "recovered"):
        assert header in out, header
    for path in ("astropy", "parfit-trf", "parfit-astropy", "xarray"):
        assert f"\n{path} " in out, path


def test_cramer_rao_sigma_matches_closed_form(common):
    """The generic (model.jacobian) Fisher matrix equals the Gaussian one written out."""
    from parfit.datasets import gaussian_cube

    cube = gaussian_cube((53, 5, 6), seed=2)
    sigma = common.cramer_rao_sigma(cube.model, cube.world, cube.truth, cube.noise, batch=7)
    v = cube.world[0]
    a, mu, s = (cube.truth[p].reshape(-1, 1) for p in ("amplitude", "mean", "stddev"))
    dx = v[None, :] - mu
    e = np.exp(-0.5 * dx**2 / s**2)
    jac = np.stack([e, a * e * dx / s**2, a * e * dx**2 / s**3], axis=2)
    cov = np.linalg.inv(np.einsum("nci,ncj->nij", jac, jac) / cube.noise**2)
    expected = np.sqrt(np.einsum("nii->ni", cov))
    assert list(sigma) == ["amplitude", "mean", "stddev"]
    for k, p in enumerate(sigma):
        np.testing.assert_allclose(sigma[p], expected[:, k].reshape(5, 6), rtol=1e-10)


def test_recovered_fraction_applies_one_rule_to_every_parameter(common):
    truth = {"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}
    sigma = {"a": np.ones((2, 2)), "b": np.ones((2, 2))}
    maps = {"a": np.array([[0.0, 2.9], [3.1, np.nan]]), "b": np.zeros((2, 2))}
    mask = common.recovered_mask(maps, truth, sigma)
    np.testing.assert_array_equal(mask, [[True, True], [False, False]])
    assert common.recovered_fraction(maps, truth, sigma) == 0.5
    assert common.recovered_fraction(maps, truth, sigma, region=(slice(0, 1),)) == 1.0


@pytest.mark.slow
def test_bench_config_run_quick():
    out = _run("bench_config_run.py", "--quick")
    assert "== parfit run, 64x64 pixels x 60 channels, best of 1" in out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("500", "2000", "auto")
    }
    assert set(rows) == {"500", "2000", "auto"}
    assert rows["500"][1:3] == ["500", "16"]  # block size used, blocks fitted
    assert rows["auto"][1:3] == ["1024", "4"]  # 4096 fits, two blocks per core
    assert all(row[-1] == "4088" for row in rows.values())  # every attempted fit OK
    assert rows["500"][-2] == "1.00"


@pytest.mark.slow
def test_bench_accuracy_small(tmp_path):
    out_json = tmp_path / "accuracy.json"
    out = _run(
        "bench_accuracy.py",
        "--n",
        "40",
        "--kinds",
        "noise_only",
        "blend2",
        "scaled_1e-26",
        "--json",
        str(out_json),
    )
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("noise_only", "blend2", "scaled_1e-26")
    }
    assert set(rows) == {"noise_only", "blend2", "scaled_1e-26"}
    assert all(row[1] == "40" and row[2] == "100.00%" for row in rows.values())
    assert "OK fits with a non-finite error: 0 (target 0)" in out
    data = json.loads(out_json.read_text())
    assert [r["kind"] for r in data["rows"]] == ["noise_only", "blend2", "scaled_1e-26"]
    assert all(r["ok_nonfinite_errors"] == 0 and r["no_worse"] >= 0.995 for r in data["rows"])


@pytest.mark.slow
def test_bench_fingerprint_quick():
    out = _run("bench_fingerprint.py", "--quick")
    assert "cube (53, 50, 50), 2500 fits" in out
    for step in (
        "fit into the store (numpy):",
        "hash every block's input:",
        "resume, complete (dask):",
        "verify_store:",
    ):
        assert step in out


@pytest.mark.slow
def test_bench_streamed_runs_this_tree():
    out = json.loads(
        _run("bench_streamed.py", "--repeat", "1", "--shape", "20", "30", "40").splitlines()[-1]
    )
    assert out["parfit"] == str(ROOT / "parfit" / "__init__.py")
    assert set(out["fits_per_s_median"]) == {"memory", "store", "cluster", "cluster_store"}
    assert all(v > 0 for v in out["fits_per_s_best"].values())
    assert out["ratio_to_memory_median"]["memory"] == 1.0


@pytest.mark.slow
def test_bench_joint_runs_and_agrees_with_scipy():
    report = json.loads(
        _run("bench_joint.py", "--size", "12", "--repeat", "1", "--scipy-pixels", "20")
    )
    assert report["n_fits"] == 144 and report["status"] == {"OK": 144}
    assert set(report["fits_per_s_median"]) == {"joint", "singles", "scipy"}
    assert report["joint_no_worse_than_scipy"] == 1.0
    assert report["max_abs_diff_vs_scipy"] < 1e-5
    assert report["pull_std"]["co10.mean"]["median error joint / single"] < 1.0
    assert report["joint_time_over_singles"] > 0


@pytest.mark.slow
def test_bench_likelihood_quick(tmp_path):
    out_json = tmp_path / "likelihood.json"
    out = _run("bench_likelihood.py", "--quick", "--json", str(out_json))
    for text in (
        "cpu_count",
        "numpy",
        "== 1. Cash vs chi-square",
        "== 2./3. Per-fit tools",
        "no worse than the tool's",
        "== 4. TS map and profile likelihood",
    ):
        assert text in out, text
    report = json.loads(out_json.read_text())
    assert report["n_fits"] == 100
    assert set(report["fits_per_s_cold"]) == {"free-chi2", "free-cash", "fixed-chi2", "fixed-cash"}
    assert all(v > 0 for v in report["fits_per_s_median"].values())
    assert set(report["cash_over_chi2"]) == {"free", "fixed"}
    assert {"scipy-free", "scipy-fixed"} <= set(report["parfit_over"])
    minuit = importlib.util.find_spec("iminuit") is not None
    assert ("minuit-free" in report["parfit_over"]) == minuit
    assert minuit or "iminuit is not installed" in out
    for agreement in report["agreement"].values():
        assert 0.0 <= agreement["no_worse"]["all"] <= 1.0
    # a well-posed fit (amplitude and background, inside the disk): parfit never worse
    assert report["agreement"]["scipy-fixed"]["no_worse"]["inside"] == 1.0
    assert report["cost_over_plain"]["fixed-cash"]["median"] == 1.0
    assert report["max_rel_diff_statistic"] < 1e-9


@pytest.mark.slow
def test_bench_selection_quick(tmp_path):
    out_json = tmp_path / "selection.json"
    out = _run("bench_selection.py", "--quick", "--json", str(out_json))
    for text in (
        "cpu_count",
        "numpy",
        "== 1. Model selection: components_cube((100, 6, 12)), 72 pixels",
        "selected number of components against the truth",
        "per-fit scipy least_squares (TRF) from the same guesses",
        "== 2. Refits: velocity_field_cube((90, 9, 9)), 81 pixels",
        "refit passes (last round)",
    ):
        assert text in out, text
    report = json.loads(out_json.read_text())
    selection, refit = report["selection"], report["refit"]
    assert set(report["cold"]) == {"select"}
    runs = selection["runs"]
    assert set(runs) == {"g1", "g2", "g3", "sum", "select"}
    assert all(r["median_s"] > 0 for r in runs.values())
    assert runs["sum"]["over_sum"]["median"] == 1.0 and runs["g1"]["over_g1"]["median"] == 1.0
    assert runs["select"]["over_sum"]["paired"] > 0
    # well-separated lines at S/N >= 12: nearly every pixel gets the right number
    assert selection["accuracy"]["all"]["correct"] > 0.9
    assert sum(selection["accuracy"]["all"]["chosen"].values()) == 72
    assert set(selection["peers"]) == {"g1", "g2", "g3"}
    assert set(refit["runs"]) == {
        f"{fitter}-{mode}"
        for fitter in ("batched", "function", "trf")
        for mode in ("single", "refit", "mean", "both")
    }
    for name, r in refit["runs"].items():
        assert r["x_single"]["median"] > 0 and 0.0 <= r["recovered"] <= 1.0, name
        assert (r["passes"] != []) == name.endswith(("refit", "both")), name
    # the model that cannot guess loses most pixels from the shared start; refits recover them
    assert refit["runs"]["function-single"]["recovered"] < 0.6
    assert refit["runs"]["function-both"]["recovered"] > 0.95
    assert refit["peer"]["scipy_fits_per_s"] > 0


@pytest.mark.slow
def test_bench_gpufit_quick(tmp_path):
    out_json = tmp_path / "out.json"
    out = _run("bench_gpufit.py", "--quick", "--json", str(out_json))
    for header in ("path", "fits/s", "/core", "/cpu-s", "conv.", "median |error|"):
        assert header in out, header
    assert "Cpufit (pub.)" in out and "59,916-97,087 fits/s" in out
    rows = {r["path"]: r for r in json.loads(out_json.read_text())["results"]}
    assert set(rows) == {"parallel_fit", "fit_block", "numpy engine"}
    assert rows["parallel_fit"]["n_fits"] == rows["fit_block"]["n_fits"] == 2000
    for r in rows.values():
        assert r["fits_per_s"] > 0 and r["converged"] > 0.99
        assert r["median_abs_error"]["x_mean_0"] < 0.1  # pixels


@pytest.mark.slow
def test_bench_coldstart_quick(tmp_path):
    out_json = tmp_path / "coldstart.json"
    out = _run("bench_coldstart.py", "--quick", "--cold-runs", "0", "--json", str(out_json))
    for text in ("numba", "import", "first", "second", "overhead", "warm-up on", "warm-up off"):
        assert text in out, text
    cases = json.loads(out_json.read_text())["cases"]
    assert set(cases) == {"warm cache, warm-up on", "warm cache, warm-up off"}
    for case in cases.values():
        assert len(case["runs"]) == 2
        assert all(run["second"] > 0 and run["cpu"] > 0 for run in case["runs"])
