"""The ``likelihood`` section of a config: statistic, null hypothesis, profiles.

Through ``parfit run`` / ``parfit validate`` / ``parfit inspect`` (in
subprocesses, as a user runs them) on a small counts cube with a line in a
disk (:func:`parfit.datasets.counts_cube`) written as netCDF with its energy
axis in keV, and through the Python API for the config's own checks
(every refusal names its YAML path).  ``fitter: minuit`` in a config too.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import parfit
from parfit import Status
from parfit.analysis import Analysis
from parfit.config import parse_config, template, validate_config
from parfit.datasets import counts_cube
from parfit.diagnostics import summarize
from parfit.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent
SHAPE, SEED = (41, 8, 10), 3


def parfit_cmd(*args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "parfit.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def counts_yaml():
    """The ``counts.yaml`` example of docs/config.rst (what the module's run fits)."""
    text = (ROOT / "docs" / "config.rst").read_text()
    block = text.split(":caption: counts.yaml\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("   "):
            break
        lines.append(line[3:])
    return textwrap.dedent("\n".join(lines)).strip("\n") + "\n"


def write_counts(folder):
    """The counts cube as netCDF (energy in keV, counts in ct); returns the cube."""
    cube = counts_cube(SHAPE, seed=SEED)
    xr.Dataset(
        {"counts": (("energy", "y", "x"), cube.data, {"units": "ct"})},
        coords={"energy": ("energy", cube.world[0], {"units": "keV"})},
    ).to_netcdf(folder / "counts.nc")
    return cube


@pytest.fixture(scope="module")
def counts_run(tmp_path_factory):
    """``parfit run counts.yaml`` on the counts cube: (folder, cube, run output)."""
    folder = tmp_path_factory.mktemp("counts")
    cube = write_counts(folder)
    text = counts_yaml().replace(
        "output: {path: counts-results}",
        "run: {scheduler: synchronous, progress: false}\noutput: {path: counts-results}",
    )
    (folder / "counts.yaml").write_text(text)
    out = parfit_cmd("run", "counts.yaml", cwd=folder)
    assert out.returncode == 0, out.stderr
    return folder, cube, out


def store_maps(folder):
    group = zarr.open_group(str(folder / "counts-results" / "maps.zarr"), mode="r")
    return {name: np.asarray(group[name][...]) for name in group.array_keys()}


# --- parfit run ------------------------------------------------------------------------------


def test_run_writes_ts_and_upper_limit_maps(counts_run):
    folder, cube, out = counts_run
    maps = store_maps(folder)
    for name in ("ts", "sqrt_ts", "amplitude_0_lo", "amplitude_0_hi", "amplitude_0_ul"):
        assert maps[name].shape == SHAPE[1:], name
    assert (maps["status"] == Status.OK).all()
    inside = cube.truth["amplitude_0"] > 0
    assert 20 < inside.sum() < 60
    ts = maps["ts"]
    # The line is found where it is, and not where it is not.
    assert np.median(ts[inside]) > 25 and np.count_nonzero(ts[inside] > 9) >= 0.8 * inside.sum()
    assert np.median(ts[~inside]) < 2 and np.count_nonzero(ts[~inside] > 9) <= 3
    # sqrt(TS), signed by the amplitude (bounded at 0, the null value): never negative.
    np.testing.assert_allclose(np.abs(maps["sqrt_ts"]), np.sqrt(ts))
    assert (maps["sqrt_ts"] >= 0).all()
    # Intervals hold the best fit; upper limits lie above it, and are small without a line.
    amp, lo, hi, ul = (maps[f"amplitude_0{end}"] for end in ("", "_lo", "_hi", "_ul"))
    both = np.isfinite(lo) & np.isfinite(hi)
    assert both.mean() > 0.9
    assert (lo[both] <= amp[both] + 1e-9).all() and (amp[both] <= hi[both] + 1e-9).all()
    finite = np.isfinite(ul)
    assert finite.mean() > 0.9 and (ul[finite] >= hi[finite] - 1e-9).all()
    assert np.median(ul[~inside & finite]) < 0.5 * np.median(cube.truth["amplitude_0"][inside])
    # The fits minimised the Cash statistic, 2 sum(mu - n ln mu).
    energy = cube.world[0]
    for pixel in ((3, 4), (0, 0)):
        params = np.array([[maps[n][pixel] for n in cube.model.param_names]])
        mu = cube.model.evaluate(energy, params)[0]
        n = cube.data[(slice(None), *pixel)]
        cash = 2 * np.sum(mu - np.where(n > 0, n * np.log(mu), 0.0))
        assert maps["statistic"][pixel] == pytest.approx(cash, rel=1e-9)
    # What parfit run printed of the TS map.
    ok = ts[np.isfinite(ts)]
    assert (
        f"TS against amplitude_0=0 over {ok.size} OK fits: median {np.median(ok):.4g}, max "
        f"{ok.max():.4g}; TS > 9: {int((ok > 9).sum())}, TS > 25: {int((ok > 25).sum())}"
    ) in out.stdout.splitlines()


def test_run_records_the_likelihood_section_and_read_restores_it(counts_run, tmp_path):
    folder, _, _ = counts_run
    analysis = Analysis.read(folder / "counts-results")
    section = analysis.config.likelihood
    assert (section.statistic, section.null, section.profile) == (
        "cash",
        {"amplitude_0": 0.0},
        ["amplitude_0"],
    )
    result = analysis.result
    assert result.statistic_name == "cash"
    assert result.likelihood.null == (("amplitude_0", 0.0),)
    assert result.likelihood.profile == ("amplitude_0",)
    maps = store_maps(folder)
    np.testing.assert_array_equal(result.ts, maps["ts"])
    np.testing.assert_array_equal(result.upper_limits["amplitude_0"], maps["amplitude_0_ul"])
    # A store of the to_xarray layout keeps them too.
    result.to_xarray().to_zarr(tmp_path / "x.zarr", consolidated=False)
    again = parfit.read_result(tmp_path / "x.zarr")
    assert again.likelihood == result.likelihood
    np.testing.assert_array_equal(again.sqrt_ts, maps["sqrt_ts"])
    assert summarize(tmp_path / "x.zarr").ts == summarize(folder / "counts-results").ts


def test_fit_pixel_minimises_the_statistic_of_the_run(counts_run):
    folder, _, _ = counts_run
    analysis = Analysis.read(folder / "counts-results")
    maps = store_maps(folder)
    fit = analysis.fit_pixel((3, 4))
    assert fit["status"] == Status.OK
    for name, value in fit["parameters"].items():
        assert value == pytest.approx(maps[name][3, 4], rel=1e-6, abs=1e-9), name


# --- parfit inspect -------------------------------------------------------------------------


def test_inspect_reports_the_statistic_ts_and_profiles(counts_run):
    folder, _, _ = counts_run
    maps = store_maps(folder)
    out = parfit_cmd("inspect", "counts-results", cwd=folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.endswith(", statistic cash") for line in lines)
    stat = maps["statistic"]
    assert f"median statistic (Cash) over the OK fits: {np.median(stat):.5g}" in lines
    ts = maps["ts"][np.isfinite(maps["ts"])]
    n_ok = int((maps["status"] == Status.OK).sum())
    i = lines.index(f"TS against the null hypothesis (amplitude_0=0), over the {n_ok} OK fits:")
    assert lines[i + 1] == (
        f"  median {np.median(ts):.4g}, max {ts.max():.4g}; TS > 9: {int((ts > 9).sum())}, "
        f"TS > 25: {int((ts > 25).sum())}"
    )
    width = maps["amplitude_0_hi"] - maps["amplitude_0_lo"]
    width = width[np.isfinite(width)]
    ul = maps["amplitude_0_ul"][np.isfinite(maps["amplitude_0_ul"])]
    assert lines[i + 2] == (
        f"profile of amplitude_0: 1-sigma intervals for {width.size} of the {n_ok} OK fits "
        f"(median width {np.median(width):.4g}); 2-sigma upper limits for {ul.size} "
        f"(median {np.median(ul):.4g})"
    )


def test_inspect_json_and_plot(counts_run):
    folder, _, _ = counts_run
    maps = store_maps(folder)
    out = parfit_cmd("inspect", "counts-results", "--json", "--plot", cwd=folder)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["statistic"] == "cash"
    ts = maps["ts"][np.isfinite(maps["ts"])]
    assert data["ts"] == {
        "null": {"amplitude_0": 0.0},
        "n": ts.size,
        "median": pytest.approx(float(np.median(ts))),
        "max": pytest.approx(float(ts.max())),
        "n_above_9": int((ts > 9).sum()),
        "n_above_25": int((ts > 25).sum()),
    }
    profile = data["profiles"]["amplitude_0"]
    ul = maps["amplitude_0_ul"]
    assert (profile["n_sigma"], profile["n_sigma_ul"]) == (1.0, 2.0)
    assert profile["n_upper_limits"] == int(np.isfinite(ul).sum())
    assert profile["median_upper_limit"] == pytest.approx(float(np.nanmedian(ul)))
    plots = folder / "counts-results" / "plots"
    assert f"wrote 7 PNG(s) to {Path('counts-results') / 'plots'}" in out.stderr
    names = sorted(p.name for p in plots.glob("*.png"))
    assert names == sorted(
        ["amplitude_0.png", "mean_0.png", "stddev_0.png", "amplitude_1.png"]
        + ["sqrt_ts.png", "amplitude_0_ul.png", "status.png"]
    )
    for name in names:
        assert (plots / name).read_bytes()[:8] == PNG


def test_sqrt_ts_map_is_diverging_and_centred_on_zero(counts_run):
    from parfit.diagnostics.plots import _map_figures

    folder, _, _ = counts_run
    figures = dict(_map_figures(folder / "counts-results" / "maps.zarr", dpi=40))
    assert list(figures) == [
        "amplitude_0",
        "mean_0",
        "stddev_0",
        "amplitude_1",
        "sqrt_ts",
        "amplitude_0_ul",
        "status",
    ]
    ax, bar = figures["sqrt_ts"].axes
    image = ax.images[0]
    assert image.get_cmap().name == "RdBu_r"
    vmin, vmax = image.get_clim()
    assert vmin == -vmax and vmax > 5
    assert bar.get_ylabel() == "sqrt(TS)"
    assert ax.get_title() == "sqrt(TS) against amplitude_0=0 (signed)"
    ax, bar = figures["amplitude_0_ul"].axes
    assert ax.get_title() == "2-sigma upper limit of amplitude_0"
    assert bar.get_ylabel() == "amplitude_0 upper limit"


def test_a_chi_square_store_has_no_likelihood_panels(tmp_path):
    from parfit.datasets import gaussian_cube
    from parfit.diagnostics.plots import _map_figures

    cube = gaussian_cube((20, 3, 4), seed=0)
    parfit.parallel_fit(
        cube.model, cube.data, world=cube.world, scheduler="synchronous", output=tmp_path / "m"
    )
    assert [name for name, _ in _map_figures(tmp_path / "m", dpi=30)] == [
        "amplitude",
        "mean",
        "stddev",
        "status",
    ]
    summary = summarize(tmp_path / "m")
    assert (summary.statistic, summary.ts, summary.profiles) == ("chi2", None, {})
    assert "median statistic (chi-square) over the OK fits" in summary.text()
    assert "TS against" not in summary.text()


# --- the config: template, validate, refusals -------------------------------------------------

BASE = """\
input: {path: counts.nc, variable: counts, fitting_axes: energy}
model:
  components:
    - {type: Gaussian1D, amplitude: {value: 4, bounds: [0, null]}}
    - type: Const1D
"""


def refusal(text):
    """The problem lines of ``text`` (after BASE) refused by parse_config."""
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + text + "output: {path: out}\n", source="fit.yaml", check_files=False)
    return str(info.value).splitlines()[1:]


def test_likelihood_values_are_refused_at_their_yaml_path():
    assert refusal("likelihood: {statistic: poisson}\n") == [
        "  fit.yaml:6: likelihood.statistic: Input should be 'chi2', 'cash' or 'cstat'; "
        "got 'poisson'"
    ]
    assert refusal("likelihood: {statistic: Cash}\n") == [
        "  fit.yaml:6: likelihood.statistic: Input should be 'chi2', 'cash' or 'cstat'; "
        "got 'Cash' (did you mean 'cash'?)"
    ]
    assert refusal("likelihood:\n  null: amplitude_0\n") == [
        "  fit.yaml:7: likelihood.null: null must be a mapping of parameter names to their "
        "values under the null hypothesis, such as {amplitude_0: 0}; got 'amplitude_0'"
    ]
    assert refusal("likelihood:\n  null: [0]\n") == [
        "  fit.yaml:7: likelihood.null: null must be a mapping of parameter names to their "
        "values under the null hypothesis, such as {amplitude_0: 0}; got [0]"
    ]
    assert refusal("likelihood:\n  null:\n    amplitude_0: zero\n") == [
        "  fit.yaml:8: likelihood.null.amplitude_0: must be a number (the parameter's value "
        "under the null hypothesis); got 'zero'"
    ]
    assert refusal("likelihood:\n  null: {amplitude_0: .nan}\n") == [
        "  fit.yaml:7: likelihood.null.amplitude_0: must be a finite number; got nan"
    ]
    assert refusal("likelihood:\n  null: {}\n") == [
        "  fit.yaml:7: likelihood.null: null is empty: give the parameters held under the null "
        "hypothesis, such as {amplitude_0: 0}, or leave null out (no TS maps)"
    ]
    assert refusal("likelihood:\n  n_sigma: -1\n") == [
        "  fit.yaml:7: likelihood.n_sigma: Input should be greater than 0; got -1"
    ]
    assert refusal("likelihood:\n  n_sigma_ul: .inf\n") == [
        "  fit.yaml:7: likelihood.n_sigma_ul: Input should be a finite number; got inf"
    ]
    assert refusal("likelihood:\n  profile: {amplitude_0: 1}\n") == [
        "  fit.yaml:7: likelihood.profile: profile must be a list of parameter names, such as "
        "[amplitude_0]; got {'amplitude_0': 1}"
    ]
    assert refusal("likelihood:\n  profile: [amplitude_0, amplitude_0]\n") == [
        "  fit.yaml:7: likelihood.profile[1]: 'amplitude_0' is named twice"
    ]
    assert refusal("likelihood:\n  nul: {amplitude_0: 0}\n") == [
        "  fit.yaml:7: likelihood.nul: unknown key 'nul' (did you mean 'null'?) (allowed here: "
        "statistic, null, profile, n_sigma, n_sigma_ul)"
    ]


def test_likelihood_is_checked_against_the_model_fitter_and_input():
    params = "'amplitude_0', 'mean_0', 'stddev_0', 'amplitude_1'"
    text = BASE.replace("    - type: Const1D", "    - {type: Const1D, amplitude: {fixed: true}}")
    with pytest.raises(ConfigError) as info:
        parse_config(
            text + "likelihood:\n"
            "  null: {amplitude: 0}\n"
            "  profile: [mean_0, amplitude_1]\n"
            "output: {path: out}\n",
            source="fit.yaml",
            check_files=False,
        )
    assert str(info.value).splitlines() == [
        "2 problems in fit.yaml:",
        f"  fit.yaml:7: likelihood.null.amplitude: 'amplitude' is not a parameter of the "
        f"model; its parameters are {params}",
        "  fit.yaml:8: likelihood.profile[1]: 'amplitude_1' is fixed or tied; only free "
        "parameters can be tested or profiled",
    ]
    weighted = BASE.replace("fitting_axes: energy", "fitting_axes: energy, weights: w.nc")
    with pytest.raises(ConfigError) as info:
        parse_config(
            weighted + "fitter: {name: lm}\nlikelihood: {statistic: cstat}\noutput: {path: o}\n",
            source="fit.yaml",
            check_files=False,
        )
    assert str(info.value).splitlines()[1:] == [
        "  fit.yaml:1: input.weights: likelihood.statistic cstat fits counts, whose Poisson "
        "likelihood has no weights (the variance is the model itself): leave weights out "
        "(input.mask leaves samples out), or fit with likelihood.statistic: chi2",
        "  fit.yaml:7: likelihood.statistic: cstat cannot be minimised by fitter.name lm, "
        "which minimises chi2 only; set fitter.name to batched, trf, dogbox or minuit",
    ]


def test_joint_configs_name_the_parameters_of_their_datasets():
    def dataset(path):
        return {
            "input": {"path": path},
            "model": {"components": [{"type": "Gaussian1D"}, {"type": "Const1D"}]},
        }

    config = {
        "datasets": {"co10": dataset("a.fits"), "co21": dataset("b.fits")},
        "output": {"path": "out"},
    }
    config["datasets"]["co21"]["model"]["components"][0]["mean"] = {"tied": "co10.mean_0"}
    ok = validate_config(
        {
            **config,
            "likelihood": {"null": {"co10.amplitude_0": 0}, "profile": ["co21.amplitude_0"]},
        },
        check_files=False,
    )
    assert ok.likelihood.null == {"co10.amplitude_0": 0.0}
    with pytest.raises(ConfigError) as info:
        validate_config(
            {**config, "likelihood": {"null": {"amplitude_0": 0}, "profile": ["co21.mean_0"]}},
            check_files=False,
        )
    lines = str(info.value).splitlines()
    assert lines[1].startswith(
        "  likelihood.null.amplitude_0: 'amplitude_0' is not a parameter of the model; its "
        "parameters are 'co10.amplitude_0', 'co10.mean_0', "
    )
    assert lines[2] == (
        "  likelihood.profile[0]: 'co21.mean_0' is fixed or tied; only free parameters can be "
        "tested or profiled"
    )


def test_validate_prints_the_problems_and_the_likelihood(tmp_path):
    write_counts(tmp_path)
    good = counts_yaml()
    (tmp_path / "good.yaml").write_text(good)
    (tmp_path / "bad.yaml").write_text(
        good.replace("statistic: cash", "statistic: poisson").replace("n_sigma: 1 ", "n_sigma: -1")
    )
    out = parfit_cmd("validate", "good.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        "  likelihood: statistic cash; TS against amplitude_0=0; profiles of amplitude_0 "
        "(1-sigma intervals, 2-sigma upper limits)"
    ) in out.stdout.splitlines()
    out = parfit_cmd("validate", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        "2 problems in bad.yaml:",
        "  bad.yaml:11: likelihood.statistic: Input should be 'chi2', 'cash' or 'cstat'; got "
        "'poisson'",
        "  bad.yaml:14: likelihood.n_sigma: Input should be greater than 0; got -1",
    ]


def test_template_shows_the_likelihood_section():
    text = template()
    body = text.split("\nlikelihood:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    keys = [line.split(":")[0].strip() for line in body if not line.lstrip().startswith("#")]
    assert keys == ["statistic", "null", "profile", "n_sigma", "n_sigma_ul"]
    assert "  #   e.g. null: {amplitude_0: 0}" in body
    assert "  #   e.g. profile: [amplitude_0]" in body
    # The examples, uncommented, are a valid config.
    filled = text.replace("  null: null\n", "  null: {amplitude_0: 0}\n").replace(
        "  profile: []\n", "  profile: [amplitude_0]\n"
    )
    cfg = parse_config(filled, check_files=False)
    assert cfg.likelihood.arguments()["profile"] == ("amplitude_0",)
    joint = parse_config(template(joint=True), check_files=False)
    assert joint.likelihood.statistic == "chi2" and joint.likelihood.is_default


# --- fitter: minuit -----------------------------------------------------------------------------


def test_minuit_options_in_a_config():
    from parfit.fitters import MinuitFitter

    cfg = parse_config(
        BASE + "fitter: {name: minuit, tol: 0.01, strategy: 2, ncall: 500, "
        "scale_covariance: false}\noutput: {path: out}\n",
        check_files=False,
    )
    fitter = cfg.fitter.fitter()
    assert isinstance(fitter, MinuitFitter)
    assert fitter.options == {"tol": 0.01, "strategy": 2, "ncall": 500, "scale_covariance": False}
    assert refusal("fitter: {name: minuit, ftol: 1.0e-6, max_nfev: 10}\n") == [
        "  fit.yaml:6: fitter.ftol: ftol applies to the least-squares fitters, not to name: "
        "minuit; give minuit's tol instead",
        "  fit.yaml:6: fitter.max_nfev: max_nfev applies to the least-squares fitters, not to "
        "name: minuit; give minuit's ncall instead",
    ]
    assert refusal("fitter: {tol: 0.01}\n") == [
        "  fit.yaml:6: fitter.tol: tol applies only to name: minuit, not 'batched'"
    ]
    assert refusal("fitter: {name: minuit, strategy: 3}\n") == [
        "  fit.yaml:6: fitter.strategy: Input should be less than or equal to 2; got 3"
    ]
    assert refusal("fitter: {name: minuit, strategy: true}\n") == [
        "  fit.yaml:6: fitter.strategy: Input should be a valid integer; got True"
    ]


def test_minuit_runs_a_config_with_the_cash_statistic(tmp_path):
    pytest.importorskip("iminuit")
    cube = write_counts(tmp_path)
    config = parse_config(counts_yaml(), base_dir=tmp_path)
    data = config.model_dump(mode="json")
    data["likelihood"] = {"statistic": "cash"}
    data["fitter"] = {"name": "minuit", "tol": 0.01}
    data["run"] = {"scheduler": "synchronous", "progress": False}
    data["diagnostics"] = {"mode": "none"}
    runs = {}
    for name in ("minuit", "batched"):
        data["fitter"] = {"name": "minuit", "tol": 0.01} if name == "minuit" else {}
        data["output"] = {"path": name}
        analysis = Analysis(data, base_dir=tmp_path)
        runs[name] = analysis.run()
    assert "MIGRAD" in runs["minuit"].run.fitter
    assert runs["minuit"].statistic_name == "cash"
    both = (runs["minuit"].status == Status.OK) & (runs["batched"].status == Status.OK)
    assert both.mean() > 0.9
    # The same maximum of the same likelihood (but for a few fits that end in other local
    # minima of a line that is not there).
    diff = np.abs(runs["minuit"].statistic[both] - runs["batched"].statistic[both])
    assert np.median(diff) < 1e-3 and (diff < 0.02).mean() > 0.75
    inside = cube.truth["amplitude_0"] > 0
    amp = runs["minuit"].parameters["amplitude_0"]
    assert np.median(amp[inside & both]) > 3 and np.median(amp[~inside & both]) < 1
