"""Starts, neighbour refits and per-pixel model selection from a config.

The ``strategy`` section (``min_snr``, ``refit``, ``max_passes``,
``outlier``, ``order_components``), ``model.initial: mean`` with
``initial_region``, and the ``select`` section (candidate models chosen per
pixel), each checked against what :func:`parfit.parallel_fit` does with the
same keywords on two small synthetic cubes written as FITS
(:func:`parfit.datasets.velocity_field_cube`,
:func:`parfit.datasets.components_cube`); ``parfit run`` (a subprocess, as a
user runs it) and ``parfit validate`` / ``parfit inspect`` (through the click
entry point) on their folders; and the config's refusals, each at its YAML
path.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import parfit
from parfit import Status
from parfit.analysis import Analysis
from parfit.cli import main
from parfit.config import build_model, open_input, parse_config, template
from parfit.datasets import components_cube, velocity_field_cube
from parfit.diagnostics import summarize
from parfit.errors import ConfigError, InputError, OutputExistsError
from parfit.selection import SelectionResult, read_selection

PNG = b"\x89PNG\r\n\x1a\n"

REFIT_YAML = """\
input: {path: disk.fits, fitting_axes: spectral}
model:
  components:
    - type: Gaussian1D
      amplitude: 1.5
      mean: "0 km/s"
      stddev: {value: "2.5 km/s", bounds: ["0.5 km/s", "20 km/s"]}
  initial: mean
strategy: {min_snr: 12, refit: neighbours, max_passes: 3, outlier: 1.2}
run: {scheduler: synchronous, progress: false}
output: {path: refit}
"""


def select_yaml(n=3, *, cube="lines.fits", head="criterion: aicc", output="{path: chosen}"):
    """A selection's config: candidates of one to ``n`` lines on a baseline."""
    lines = [f"input: {{path: {cube}, fitting_axes: spectral}}", "select:", f"  {head}"]
    lines.append("  candidates:")
    for k in range(1, n + 1):
        lines.append(f"    - components: [{'{type: Gaussian1D}, ' * k}{{type: Const1D}}]")
        lines.append("      initial: guess")
    lines += ["run: {scheduler: synchronous, progress: false}", f"output: {output}"]
    return "\n".join(lines) + "\n"


SELECT_YAML = select_yaml()


def parfit_cmd(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "parfit.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli(*args, cwd, monkeypatch):
    """``parfit ARGS`` through the click entry point, in ``cwd``."""
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, [str(a) for a in args])


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``parfit run`` of both configs: (folder, run outputs by name)."""
    folder = tmp_path_factory.mktemp("starts")
    velocity_field_cube((60, 10, 10)).to_fits(folder / "disk.fits")
    components_cube((60, 6, 9)).to_fits(folder / "lines.fits")
    (folder / "refit.yaml").write_text(REFIT_YAML)
    (folder / "select.yaml").write_text(SELECT_YAML)
    out = {}
    for name in ("refit", "select"):
        out[name] = parfit_cmd("run", f"{name}.yaml", cwd=folder)
        assert out[name].returncode == 0, out[name].stderr
    return folder, out


def direct(cfg, **keywords):
    """``parallel_fit`` of the model(s) and input of ``cfg`` with ``keywords`` as given."""
    opened = open_input(cfg)
    return parfit.parallel_fit(
        build_model(cfg),
        opened["data"],
        fitting_axes=opened["fitting_axes"],
        scheduler="synchronous",
        **keywords,
    )


# --- the config gives parallel_fit's keywords ---------------------------------------------


def test_strategy_and_mean_start_are_parallel_fits(runs):
    folder, out = runs
    analysis = Analysis.read(folder / "refit")
    expected = direct(
        analysis.config,
        initial="mean",
        min_snr=12,
        refit="neighbours",
        refit_options={"max_passes": 3, "outlier": 1.2},
    )
    result = analysis.result
    for name in ("amplitude", "mean", "stddev", "statistic", "status", "refits", "origin"):
        field = result.parameters[name] if name in result.parameters else getattr(result, name)
        wanted = (
            expected.parameters[name] if name in expected.parameters else getattr(expected, name)
        )
        same(field, wanted)
    skipped = int((np.asarray(result.status) == Status.SKIPPED).sum())
    assert 0 < skipped < result.n_fits
    record = analysis.record
    assert record["status_counts"] == {"OK": result.n_fits - skipped, "SKIPPED": skipped}
    assert record["n_attempted"] == result.n_fits - skipped
    assert record["mean_start"] == json.loads(json.dumps(expected.run.mean_start))
    assert record["refit"] == expected.run.refit == result.run.refit
    # Components ordered by default with a refit, as parallel_fit does.
    store = zarr.open_group(str(folder / "refit" / "maps.zarr"), mode="r")
    options = dict(store.attrs["parfit"])["options"]
    assert options["refit"] == {"method": "neighbours", "max_passes": 3, "outlier": 1.2}
    assert (options["min_snr"], options["order_components"]) == (12.0, True)
    assert "neighbour refits: " in out["refit"].stdout


def test_fit_pixel_starts_where_the_run_started(runs):
    folder, _ = runs
    analysis = Analysis.read(folder / "refit")
    status = np.asarray(analysis.result.status)
    origin = np.asarray(analysis.result.origin)
    ok = tuple(np.argwhere((status == Status.OK) & (origin == 0))[0])
    fit = analysis.fit_pixel(ok)
    for name, value in fit["parameters"].items():
        assert value == pytest.approx(analysis.result.parameters[name][ok], rel=1e-6), name
    skipped = tuple(np.argwhere(status == Status.SKIPPED)[0])
    assert analysis.fit_pixel(skipped)["status"] == Status.SKIPPED
    with pytest.raises(InputError, match="candidate=1 is for a config that selects"):
        analysis.fit_pixel(ok, candidate=1)


def test_initial_region_from_npy_and_fits(runs, tmp_path):
    folder, _ = runs
    region = np.zeros((10, 10), dtype=bool)
    region[:, :4] = True
    np.save(tmp_path / "region.npy", region)
    from astropy.io import fits

    fits.PrimaryHDU(np.where(region, 1.0, np.nan)).writeto(tmp_path / "region.fits")
    expected = None
    for name in ("region.npy", "region.fits"):
        text = REFIT_YAML.replace("disk.fits", str(folder / "disk.fits"))
        text = text.replace("  initial: mean\n", f"  initial: mean\n  initial_region: {name}\n")
        text = text.split("strategy:")[0] + "run:" + text.split("run:")[1]
        (tmp_path / "fit.yaml").write_text(text.replace("path: refit", f"path: {name}-out"))
        analysis = Analysis.from_yaml(tmp_path / "fit.yaml")
        analysis.run()
        mean = analysis.record["mean_start"]
        assert mean["pixels"] == 40
        if expected is None:
            expected = direct(analysis.config, initial="mean", initial_region=region)
        assert mean == json.loads(json.dumps(expected.run.mean_start))
        same(analysis.result.parameters["mean"], expected.parameters["mean"])


def test_selection_is_parallel_fits(runs):
    folder, out = runs
    analysis = Analysis.read(folder / "chosen")
    result = analysis.result
    assert isinstance(result, SelectionResult) and result.criterion == "aicc"
    expected = direct(analysis.config, initial="guess", select="aicc")
    same(result.selected, expected.selected)
    same(result.delta, expected.delta)
    same(result.criteria, expected.criteria)
    # The folder is a selection's output folder: read_selection reads it.
    same(read_selection(folder / "chosen").selected, expected.selected)
    truth = components_cube((60, 6, 9)).truth["n_components"]
    assert (np.asarray(result.selected) == truth - 1).mean() > 0.9
    selection = analysis.record["selection"]
    assert [c["chosen"] for c in selection["candidates"]] == [
        int((np.asarray(result.selected) == k).sum()) for k in range(3)
    ]
    assert selection["candidates"][1]["model"] == "Gaussian1D + Gaussian1D + Const1D"
    assert analysis.record["maps"] == "selection.zarr"
    assert "model selection by aicc: candidate 0 (Gaussian1D + Const1D) " in out["select"].stdout
    # fit_pixel fits the candidate chosen at the pixel, or the one asked for.
    pixel = (2, 4)
    chosen = int(result.selected[pixel])
    fit = analysis.fit_pixel(pixel)
    assert fit["candidate"] == chosen and fit["status"] == Status.OK
    for name, value in fit["parameters"].items():
        wanted = result.candidates[chosen].parameters[name][pixel]
        assert value == pytest.approx(wanted, rel=1e-6, abs=1e-9), name
    assert analysis.fit_pixel(pixel, candidate=0)["candidate"] == 0
    with pytest.raises(InputError) as info:
        analysis.fit_pixel(pixel, candidate=3)
    assert str(info.value) == (
        "candidate must be the index of one of the 3 candidate models (0 to 2); got 3"
    )


def test_selection_criterion_and_threshold(runs, tmp_path):
    folder, _ = runs
    head = "criterion: bic\n  threshold: 40"
    text = select_yaml(2, cube=folder / "lines.fits", head=head, output="{path: out}")
    (tmp_path / "fit.yaml").write_text(text)
    analysis = Analysis.from_yaml(tmp_path / "fit.yaml")
    assert [len(c.components) for c in analysis.config.select.candidates] == [2, 3]
    result = analysis.run()
    expected = direct(analysis.config, initial="guess", select="bic", select_threshold=40.0)
    assert (result.criterion, result.threshold) == ("bic", 40.0)
    same(result.selected, expected.selected)
    same(result.delta, expected.delta)


# --- parfit validate, inspect -------------------------------------------------------------------


def test_validate_describes_the_strategy_and_the_candidates(runs, monkeypatch):
    folder, _ = runs
    out = cli("validate", "refit.yaml", cwd=folder, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert "  model:  Gaussian1D (3 parameters, initial: mean)" in out.stdout.splitlines()
    assert (
        "  strategy: pixels with a peak below 12 times their noise skipped; refit from the "
        "neighbours: failed fits, fits on a bound and fits whose statistic exceeds 1.2 times their "
        "neighbours', at most 3 passes"
    ) in out.stdout.splitlines()
    out = cli("validate", "select.yaml", cwd=folder, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    i = lines.index("  select: 3 candidate models, the best per pixel by aicc")
    assert lines[i + 1 : i + 3] == [
        "    candidate 0: Gaussian1D + Const1D (4 parameters, initial: guess)",
        "    candidate 1: Gaussian1D + Gaussian1D + Const1D (7 parameters, initial: guess)",
    ]


def test_inspect_a_refit_run(runs, monkeypatch):
    folder, _ = runs
    result = Analysis.read(folder / "refit").result
    refits, origin = np.asarray(result.refits), np.asarray(result.origin)
    passes = result.run.refit
    n_skipped = int((np.asarray(result.status) == Status.SKIPPED).sum())
    out = cli("inspect", "refit", "--plot", cwd=folder, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert any(line.startswith("  SKIPPED ") for line in lines)
    assert (
        f"starts: initial mean (every fit from a fit of the mean spectrum); min_snr 12 "
        f"({n_skipped} pixels skipped); components ordered by position"
    ) in lines
    i = lines.index(
        f"neighbour refits (at most 3 passes, outlier 1.2): {len(passes)} passes, "
        f"{int((refits > 0).sum())} fits refitted ({int(refits.sum())} refits), "
        f"{int((origin > 0).sum())} hold a solution found from their neighbours"
    )
    assert lines[i + 1].startswith(f"  pass  1: {passes[0]['refitted']:>8d} refitted ")
    assert any(line.startswith("  initial mean: the mean spectrum of 100 pixels") for line in lines)
    plots = folder / "refit" / "plots"
    names = sorted(p.name for p in plots.glob("*.png"))
    assert names == [
        "amplitude.png",
        "mean.png",
        "origin.png",
        "refits.png",
        "status.png",
        "stddev.png",
    ]
    assert all((plots / n).read_bytes()[:8] == PNG for n in names)
    data = json.loads(cli("inspect", "refit", "--json", cwd=folder, monkeypatch=monkeypatch).stdout)
    assert data["status_counts"]["SKIPPED"] == n_skipped == data["n_not_attempted"]
    assert data["starts"] == {"initial": "mean", "min_snr": 12.0, "order_components": True}
    assert data["refit"]["passes"] == passes
    assert (data["refit"]["max_passes"], data["refit"]["outlier"]) == (3, 1.2)
    assert data["refit"]["n_from_neighbours"] == int((origin > 0).sum())
    assert sum(data["refit"]["origin_counts"].values()) == result.n_fits


def test_inspect_a_selection_run(runs, monkeypatch):
    folder, _ = runs
    result = read_selection(folder / "chosen")
    selected, delta = np.asarray(result.selected), np.asarray(result.delta)
    out = cli("inspect", "chosen", "--plot", "--pixel", "2,4", cwd=folder, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "parfit analysis folder: chosen"
    i = lines.index("model selection by AICC over 3 candidates, 54 pixels:")
    n = [int((selected == k).sum()) for k in range(3)]
    won = delta[(selected == 1) & np.isfinite(delta)]
    assert lines[i + 1] == (
        f"  candidate 0: Gaussian1D + Const1D (4 free): chosen for {n[0]} pixels "
        f"({100 * n[0] / 54:.1f}%)"
        + (
            f", median margin {np.median(delta[(selected == 0) & np.isfinite(delta)]):.4g}"
            if np.isfinite(delta[selected == 0]).any()
            else ""
        )
    )
    assert lines[i + 2] == (
        f"  candidate 1: Gaussian1D + Gaussian1D + Const1D (7 free): chosen for {n[1]} pixels "
        f"({100 * n[1] / 54:.1f}%), median margin {np.median(won):.4g}"
    )
    assert f"  no candidate succeeded: {int((selected < 0).sum())} pixels" in lines
    assert "status of the chosen fits (the first candidate's where none succeeded):" in lines
    for k in range(3):
        assert any(line.startswith(f"--- candidate {k}: ") for line in lines)
        assert f"parfit output store: chosen/candidate_{k}.zarr (streamed layout)" in lines
    assert any(line.startswith(f"pixel (2, 4): OK, candidate {selected[2, 4]}; ") for line in lines)
    plots = folder / "chosen" / "plots"
    assert (plots / "selected.png").read_bytes()[:8] == PNG
    assert (plots / "delta.png").read_bytes()[:8] == PNG
    for k in range(3):
        assert (plots / f"candidate_{k}" / "status.png").read_bytes()[:8] == PNG
    data = json.loads(
        cli("inspect", "chosen", "--json", cwd=folder, monkeypatch=monkeypatch).stdout
    )
    sel = data["selection"]
    assert (sel["criterion"], sel["threshold"], sel["n_candidates"]) == ("aicc", 0.0, 3)
    assert [c["chosen"] for c in sel["candidates"]] == n
    assert sel["median_delta"] == pytest.approx(float(np.median(delta[np.isfinite(delta)])))
    assert [c["store"] for c in data["candidates"]] == [
        f"chosen/candidate_{k}.zarr" for k in range(3)
    ]
    assert data["status_counts"] == {s.name: c for s, c in _counts(result.status).items()}


def _counts(status):
    codes, n = np.unique(np.asarray(status), return_counts=True)
    return {Status(int(c)): int(k) for c, k in zip(codes, n)}


def test_the_selected_map_is_categorical_with_none_grey(tmp_path):
    from parfit.diagnostics.plots import _map_figures
    from parfit.models import Const1D, Gaussian1D

    cube = components_cube((60, 4, 6), seed=2)
    cube.data[:, 0, 0] = np.nan  # no candidate anywhere: -1
    parfit.parallel_fit(
        [Gaussian1D() + Const1D(), Gaussian1D() + Gaussian1D() + Const1D()],
        cube.data,
        world=cube.world,
        initial="guess",
        select="aicc",
        scheduler="synchronous",
        output=tmp_path / "sel",
    )
    summary = summarize(tmp_path / "sel")
    assert summary.kind == "selection" and summary.selection["n_none"] == 1
    assert summary.status_counts["NO_VALID_DATA"] == 1
    figures = dict(_map_figures(tmp_path / "sel", dpi=30))
    assert list(figures)[:2] == ["selected", "delta"]
    assert "candidate_1/status" in figures
    ax, bar = figures["selected"].axes
    labels = [t.get_text() for t in bar.get_yticklabels()]
    assert labels == ["-1 none", "0 Gaussian1D + Const1D", "1 Gaussian1D + Gaussian1D + Const1D"]
    colors = ax.images[0].get_cmap().colors
    assert colors[0] == "#9e9e9e"  # none: grey


# --- templates and refusals -----------------------------------------------------------------


def test_templates_hold_the_new_sections(monkeypatch, tmp_path):
    text = template()
    body = text.split("\nstrategy:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    keys = [line.split(":")[0].strip() for line in body if not line.lstrip().startswith("#")]
    assert keys == ["min_snr", "refit", "max_passes", "outlier", "order_components"]
    cfg = parse_config(template(select=True), check_files=False)
    assert cfg.select.criterion == "aicc" and len(cfg.select.candidates) == 3
    assert cfg.strategy.arguments() == {
        "min_snr": None,
        "refit": None,
        "refit_options": None,
        "order_components": None,
    }
    minimal = parse_config(template(select=True, minimal=True), check_files=False)
    assert [len(c.components) for c in minimal.select.candidates] == [2, 3]
    out = cli("config", "--select", "--joint", cwd=tmp_path, monkeypatch=monkeypatch)
    assert out.exit_code == 2 and "--joint and --select exclude each other" in out.output


BASE = "input: {path: cube.fits}\n"
ONE = "model: {components: [{type: Gaussian1D}]}\n"
TWO = (
    "select:\n"
    "  candidates:\n"
    "    - {components: [{type: Gaussian1D}], initial: guess}\n"
    "    - {components: [{type: Gaussian1D}, {type: Gaussian1D}], initial: guess}\n"
)


def refusal(text, **kwargs):
    """The problem lines of ``text`` (then ``output``) refused by parse_config."""
    kwargs.setdefault("check_files", False)
    with pytest.raises(ConfigError) as info:
        parse_config(text + "output: {path: out}\n", source="fit.yaml", **kwargs)
    return str(info.value).splitlines()[1:]


def test_strategy_values_are_refused_at_their_yaml_path():
    assert refusal(
        BASE + ONE + "strategy: {refit: nearest, max_passes: 0, outlier: 1, min_snr: -1, "
        "order_components: 1}\n"
    ) == [
        "  fit.yaml:3: strategy.max_passes: Input should be greater than or equal to 1; got 0",
        "  fit.yaml:3: strategy.min_snr: Input should be greater than 0; got -1",
        "  fit.yaml:3: strategy.order_components: Input should be a valid boolean; got 1",
        "  fit.yaml:3: strategy.outlier: Input should be greater than 1; got 1",
        "  fit.yaml:3: strategy.refit: Input should be 'neighbours'; got 'nearest'",
    ]
    assert refusal(BASE + ONE + "strategy: {refit: neighbors}\n") == [
        "  fit.yaml:3: strategy.refit: Input should be 'neighbours'; got 'neighbors' (did you "
        "mean 'neighbours'?)"
    ]
    assert refusal(BASE + ONE + "strategy: {min_snr: .inf}\n") == [
        "  fit.yaml:3: strategy.min_snr: Input should be a finite number; got inf"
    ]
    assert refusal(BASE + ONE + "strategy:\n  max_passes: 5\n  outlier: null\n") == [
        "  fit.yaml:4: strategy.max_passes: max_passes applies only to refit: neighbours, not null",
        "  fit.yaml:5: strategy.outlier: outlier applies only to refit: neighbours, not null",
    ]
    assert refusal(BASE + ONE + "strategy: {refit_options: {max_passes: 5}}\n") == [
        "  fit.yaml:3: strategy.refit_options: unknown key 'refit_options' (allowed here: "
        "min_snr, refit, max_passes, outlier, order_components)"
    ]


def test_starts_are_refused_at_their_yaml_path(tmp_path):
    assert refusal(
        BASE + "model: {components: [{type: Gaussian1D}], initial: guess, initial_region: r.fits}\n"
    ) == [
        "  fit.yaml:2: model.initial_region: initial_region applies only to initial: mean, "
        "not 'guess' (it says whose mean spectrum gives the start)"
    ]
    assert refusal(BASE + "model: {components: [{type: Gaussian1D}], initial: middle}\n") == [
        "  fit.yaml:2: model.initial: Input should be 'model', 'guess' or 'mean'; got 'middle'"
    ]
    joint = (
        "datasets:\n"
        "  a: {input: {path: a.fits}, model: {components: [{type: Gaussian1D}], "
        "initial: mean}}\n"
    )
    assert refusal(joint) == [
        "  fit.yaml:2: datasets.a.model.initial: initial: mean is not available for a joint "
        "fit (one mean spectrum cannot start the models of several cubes); use model or guess"
    ]
    # The region's file must exist, and its map must be of the maps' shape.
    velocity_field_cube((30, 4, 5)).to_fits(tmp_path / "cube.fits")
    region = "model: {components: [{type: Gaussian1D}], initial: mean, initial_region: r.npy}\n"
    assert refusal(BASE + region, check_files=True, base_dir=tmp_path) == [
        f"  fit.yaml:2: model.initial_region: file not found: {tmp_path / 'r.npy'}"
    ]
    np.save(tmp_path / "r.npy", np.ones((5, 4)))
    assert refusal(BASE + region, deep=True, base_dir=tmp_path) == [
        "  fit.yaml:2: model.initial_region: has shape (5, 4), which does not broadcast to the "
        "shape of the maps (4, 5) (the cube (30, 4, 5) without its fitting axes)"
    ]
    np.save(tmp_path / "r.npy", np.zeros((4, 5)))
    assert refusal(BASE + region, deep=True, base_dir=tmp_path) == [
        "  fit.yaml:2: model.initial_region: selects no pixel: it needs at least one nonzero value"
    ]


def test_select_values_are_refused_at_their_yaml_path():
    text = TWO.replace("  candidates:", "  criterion: chi2\n  threshold: -1\n  candidates:")
    assert refusal(BASE + text) == [
        "  fit.yaml:3: select.criterion: Input should be 'aic', 'aicc' or 'bic'; got 'chi2'",
        "  fit.yaml:4: select.threshold: Input should be greater than or equal to 0; got -1",
    ]
    assert refusal(BASE + "select:\n  candidates:\n    - {components: [{type: Gaussian1D}]}\n") == [
        "  fit.yaml:3: select.candidates: a selection needs at least two candidate models; got 1"
    ]
    assert refusal(BASE + "select: {candidates: {components: []}}\n") == [
        "  fit.yaml:2: select.candidates: candidates must be a list of models, each with "
        "components (as the model section); got {'components': []}"
    ]
    assert refusal(BASE + TWO.replace("}], initial: guess}\n    - {comp", "}]}\n    - {comp")) == [
        "  fit.yaml:5: select.candidates[1].initial: every candidate starts the same way (one "
        "initial for them all): candidates[0] has initial: model, this one guess; give every "
        "candidate the same initial"
    ]
    assert refusal(
        BASE + TWO.replace("[{type: Gaussian1D}], initial", "[{type: Gausian1D}], initial")
    ) == [
        "  fit.yaml:4: select.candidates[0].components[0].type: unknown component type "
        "'Gausian1D' (did you mean 'Gaussian1D'?) (known types: CircularGaussian2D, Const1D, "
        "Const2D, Gaussian1D, Gaussian2D, Linear1D, Lorentz1D, Polynomial1D, PowerLaw1D, "
        "Voigt1D; register your own with @parfit.models.register_model)"
    ]
    assert refusal(BASE + ONE + TWO) == [
        "  fit.yaml:2: model: model is for a config of one model, but this config has select "
        "(candidate models, the best chosen per pixel), where each candidate has the keys of the "
        "model section: move it into select.candidates, or remove select"
    ]
    assert refusal(BASE + TWO + "likelihood: {null: {amplitude_1: 0}}\n") == [
        "  fit.yaml:6: likelihood.null.amplitude_1: 'amplitude_1' is not a parameter of "
        "select.candidates[0]; its parameters are 'amplitude', 'mean', 'stddev'"
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(
            BASE + TWO + "output: {path: out, format: fits}\n", source="fit.yaml", check_files=False
        )
    assert str(info.value).splitlines()[1:] == [
        "  fit.yaml:6: output.format: a selection has no single set of maps to write as FITS "
        "(each candidate's are in candidate_<k>.zarr, the choice in selection.zarr); use format: "
        "zarr or netcdf (maps.nc: the chosen maps)"
    ]
    assert refusal(
        "datasets:\n  a: {input: {path: a.fits}, model: {components: [{type: Const1D}]}}\n" + TWO
    ) == [
        "  fit.yaml:3: select: select chooses between candidate models of one cube; a joint fit "
        "(datasets) has no per-pixel model selection: remove select, or fit one cube (input) "
        "with it"
    ]


def test_a_folder_of_an_earlier_run_is_refused_then_replaced(runs, tmp_path):
    folder, _ = runs
    cube = folder / "lines.fits"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "selection.zarr").mkdir()  # not parfit's
    (tmp_path / "fit.yaml").write_text(select_yaml(2, cube=cube, output="{path: out}"))
    with pytest.raises(OutputExistsError, match="holds selection.zarr, which parfit did not"):
        Analysis.from_yaml(tmp_path / "fit.yaml").run()
    (tmp_path / "out" / "selection.zarr").rmdir()
    Analysis.from_yaml(tmp_path / "fit.yaml").run()
    # Three candidates now: the two stores of the earlier run are refused, then replaced.
    (tmp_path / "fit.yaml").write_text(select_yaml(3, cube=cube, output="{path: out}"))
    with pytest.raises(OutputExistsError) as info:
        Analysis.from_yaml(tmp_path / "fit.yaml").run()
    assert "(run.json, config.yaml, selection.zarr, candidate_0.zarr, candidate_1.zarr)" in str(
        info.value
    )
    (tmp_path / "fit.yaml").write_text(
        select_yaml(3, cube=cube, output="{path: out, overwrite: true}")
    )
    again = Analysis.from_yaml(tmp_path / "fit.yaml")
    again.run()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.zarr")) == [
        "candidate_0.zarr",
        "candidate_1.zarr",
        "candidate_2.zarr",
        "selection.zarr",
    ]
    assert len(read_selection(tmp_path / "out").candidates) == 3
