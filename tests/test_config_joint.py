"""Joint configs: a ``datasets`` section in place of ``input`` and ``model`` (issue 13).

Validation (every problem with its file, line and YAML path, per-dataset
paths such as ``datasets.co21.model.components[0].mean.tied``), the shared
grid of the cubes checked from their headers, the config hash and
round trip, the template and reference, and ``parfit run`` end to end on two
small synthetic FITS cubes: co10 with its spectral axis first, co21 on
another spectral grid with its spectral axis last, sharing centre and width.
"""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.io import fits
from test_cli_config import parfit_cmd
from test_cli_config import problems as cli_problems
from test_config import problems_of

import parfit
from parfit.analysis import Analysis
from parfit.config import build_model, config_hash, load_config, open_input, parse_config
from parfit.config.validate import config_to_yaml
from parfit.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
NOISE = {"co10": 0.1, "co21": 0.12}
SHAPE = (8, 9)
V10 = np.linspace(-40.0, 40.0, 41)  # km/s
V21 = np.linspace(-35.0, 45.0, 33)

# Line numbers below refer to this text (line 1 is "datasets:").
JOINT = """\
datasets:
  co10:
    input: {path: co10.fits, fitting_axes: spectral}
    model:
      initial: guess
      components:
        - type: Gaussian1D
          mean: {value: "0 km/s", bounds: ["-30 km/s", "30 km/s"]}
          stddev: {value: "5 km/s", bounds: ["0.5 km/s", "20 km/s"]}
        - type: Const1D
  co21:
    input: {path: co21.fits, fitting_axes: 2}
    model:
      initial: model
      components:
        - type: Gaussian1D
          amplitude: 1.0
          mean: {tied: co10.mean_0}         # co10's unit (km/s), not the header's
          stddev: {tied: co10.stddev_0}
        - type: Const1D
run: {scheduler: synchronous, progress: false}
output: {path: results, cubes: [model, residual]}
"""


# --- two synthetic cubes with known truth ---------------------------------------------------


def _header(n_spec, ny, nx, v, spectral_first, spectral=("VRAD", "m/s", 1000.0)):
    """A FITS header: RA/Dec tangent plane and a spectral axis (``spectral``: its type,
    unit, and the factor from ``v``, in km/s, to that unit; default VRAD in m/s).

    ``spectral_first``: the spectral axis is the first numpy axis (FITS axis
    3); otherwise the last numpy axis (FITS axis 1).
    """
    ctype, cunit, scale = spectral
    celestial = [("RA---TAN", nx, 83.8, -1 / 3600), ("DEC--TAN", ny, -5.4, 1 / 3600)]
    axes = [(ctype, n_spec, v[0] * scale, (v[1] - v[0]) * scale)]
    axes = celestial + axes if spectral_first else axes + celestial
    header = fits.Header()
    for i, (name, n, crval, cdelt) in enumerate(axes, start=1):
        header[f"CTYPE{i}"] = name
        header[f"CUNIT{i}"] = cunit if name == ctype else "deg"
        header[f"CRPIX{i}"] = 1.0 if name == ctype else (n + 1) / 2
        header[f"CRVAL{i}"] = crval
        header[f"CDELT{i}"] = cdelt
    header["SPECSYS"] = "LSRK"
    header["BUNIT"] = "K"
    return header


def write_pair(folder, shape=SHAPE, seed=3, co21_shape=None, co21_spectral=None):
    """co10.fits ``(41, ny, nx)`` and co21.fits ``(ny, nx, 33)``: one line per pixel,
    the same centre and width in both, a baseline each; returns the truth (km/s, K).

    ``co21_spectral``: co21's spectral axis, as ``_header`` takes it.
    """
    rng = np.random.default_rng(seed)
    truth = {
        "mean": rng.uniform(-10.0, 10.0, shape),
        "stddev": rng.uniform(3.0, 6.0, shape),
        "co10.amplitude_0": rng.uniform(1.0, 3.0, shape),
        "co10.amplitude_1": rng.uniform(-0.2, 0.2, shape),
        "co21.amplitude_0": rng.uniform(0.5, 2.0, shape),
        "co21.amplitude_1": rng.uniform(-0.2, 0.2, shape),
    }
    mean, sd = truth["mean"], truth["stddev"]
    c10 = truth["co10.amplitude_0"] * np.exp(-0.5 * ((V10[:, None, None] - mean) / sd) ** 2)
    c10 = c10 + truth["co10.amplitude_1"] + rng.normal(0.0, NOISE["co10"], c10.shape)
    line = np.exp(-0.5 * ((V21 - mean[..., None]) / sd[..., None]) ** 2)
    c21 = truth["co21.amplitude_0"][..., None] * line + truth["co21.amplitude_1"][..., None]
    c21 = c21 + rng.normal(0.0, NOISE["co21"], c21.shape)
    if co21_shape is not None:
        c21 = c21[: co21_shape[0], : co21_shape[1]]
    ny, nx = shape
    fits.PrimaryHDU(c10.astype(np.float32), _header(len(V10), ny, nx, V10, True)).writeto(
        Path(folder) / "co10.fits"
    )
    ny21, nx21 = c21.shape[:2]
    header = _header(len(V21), ny21, nx21, V21, False, co21_spectral or ("VRAD", "m/s", 1000.0))
    fits.PrimaryHDU(c21.astype(np.float32), header).writeto(Path(folder) / "co21.fits")
    return truth


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("joint")
    truth = write_pair(folder)
    (folder / "fit.yaml").write_text(JOINT)
    return folder, truth


# --- the schema and the two forms ----------------------------------------------------------


def test_a_joint_config_validates_and_builds_each_datasets_model():
    cfg = parse_config(JOINT, check_files=False)
    assert list(cfg.datasets) == ["co10", "co21"]
    assert cfg.datasets["co10"].input.fitting_axes == "spectral"
    assert cfg.datasets["co21"].model.initial == "model"
    assert cfg.output.cubes == ["model", "residual"]
    models = build_model(cfg)
    assert list(models) == ["co10", "co21"]
    assert models["co21"].param_names == ("amplitude_0", "mean_0", "stddev_0", "amplitude_1")
    assert models["co21"].mean_0.tied == "co10.mean_0"
    assert models["co21"].stddev_0.tied == "co10.stddev_0"
    assert models["co10"].mean_0.unit == u.km / u.s
    assert models["co10"].stddev_0.bounds == (0.5, 20.0)
    # A tie across datasets copies a number: the tied parameter is in the unit it names.
    assert models["co21"].mean_0.unit == models["co21"].stddev_0.unit == u.km / u.s


def test_one_unit_per_kind_across_the_datasets():
    text = JOINT.replace(
        "        - type: Const1D\nrun:",
        '        - type: Gaussian1D\n          mean: "3000 m/s"\n'
        "          stddev: {value: 2000, unit: m/s, bounds: [100, 9000]}\nrun:",
    )
    models = build_model(parse_config(text, check_files=False))
    second = models["co21"]
    assert second.mean_1.unit == second.stddev_1.unit == u.km / u.s
    assert (second.mean_1.value, second.stddev_1.value) == (3.0, 2.0)
    assert second.stddev_1.bounds == (0.1, 9.0)


def test_mixing_the_two_forms_is_refused_at_the_one_cube_keys():
    text = "input: {path: cube.fits}\nmodel:\n  components: [{type: Gaussian1D}]\n" + JOINT
    assert problems_of(text) == [
        (
            "input",
            1,
            "input is for a config of one cube, but this config has datasets (a joint fit of "
            "several cubes), where each dataset has its own input: move it into an entry of "
            "datasets (datasets.<name>.input), or remove datasets",
        ),
        (
            "model",
            2,
            "model is for a config of one cube, but this config has datasets (a joint fit of "
            "several cubes), where each dataset has its own model: move it into an entry of "
            "datasets (datasets.<name>.model), or remove datasets",
        ),
    ]
    # The datasets are still checked, so every problem shows at once.
    broken = text.replace("          amplitude: 1.0\n", "          amplitde: 1.0\n")
    problems = problems_of(broken)
    assert [p[:2] for p in problems] == [
        ("input", 1),
        ("model", 2),
        ("datasets.co21.model.components[0].amplitde", 20),
    ]


def test_neither_form_is_one_problem():
    neither = (
        "give input and model (to fit one cube), input and select (candidate models of one "
        "cube, the best chosen per pixel), or datasets (a joint fit of several cubes, each "
        "with its own input and model); `parfit config`, `parfit config --select` and "
        "`parfit config --joint` write a template of each"
    )
    assert problems_of("output: {path: out}\n") == [("(top level)", 1, neither)]
    assert problems_of("dataset:\n  co10: {}\noutput: {path: out}\n") == [
        ("(top level)", 1, neither),
        (
            "dataset",
            1,
            "unknown key 'dataset' (did you mean 'datasets'?) (allowed here: input, model, "
            "fitter, likelihood, strategy, run, diagnostics, output)",
        ),
    ]
    # One of input and model alone is still the one-cube form, missing the other.
    assert problems_of("input: {path: c.fits}\noutput: {path: out}\n") == [
        ("model", 1, "missing required key 'model'")
    ]


@pytest.mark.parametrize(
    "datasets, path, line, message",
    [
        (
            "datasets:\n  co 21: {input: {path: a.fits}, model: {components: [{type: Const1D}]}}\n",
            "datasets.co 21",
            2,
            "dataset name 'co 21' is not usable; dataset names must be Python identifiers "
            "(letters, digits and underscores, not starting with a digit), such as 'co10' or "
            "'halpha', since parameters are named '<dataset>.<parameter>'",
        ),
        (
            "datasets:\n  21co: {input: {path: a.fits}, model: {components: [{type: Const1D}]}}\n",
            "datasets.21co",
            2,
            "dataset name '21co' is not usable",
        ),
        (
            "datasets: {}\n",
            "datasets",
            1,
            "datasets is empty; a joint fit needs at least one dataset, such as "
            "co10: {input: ..., model: ...}",
        ),
        (
            "datasets: [co10, co21]\n",
            "datasets",
            1,
            "datasets must be a mapping of dataset names to their input and model, such as "
            "co10: {input: ..., model: ...}; got ['co10', 'co21']",
        ),
    ],
    ids=["space", "digit", "empty", "list"],
)
def test_dataset_names_and_the_datasets_mapping(datasets, path, line, message):
    (problem,) = problems_of(datasets + "output: {path: out}\n")
    assert problem[:2] == (path, line)
    assert problem[2].startswith(message)


def test_problems_inside_a_dataset_name_its_path():
    text = (
        JOINT.replace("          amplitude: 1.0\n", "          amplitude: {value: 1, unit: KK}\n")
        .replace("        - type: Const1D\nrun:", "        - type: Konst1D\nrun:")
        .replace("    input: {path: co21.fits, fitting_axes: 2}", "    inptu: {path: co21.fits}")
        .replace(
            '          mean: {value: "0 km/s", bounds:', '          meen: {value: "0 km/s", bounds:'
        )
    )
    problems = problems_of(text)
    assert problems == [
        (
            "datasets.co10.model.components[0].meen",
            8,
            "unknown key 'meen' (did you mean 'mean'?) (allowed here: name, type, amplitude, "
            "mean, stddev)",
        ),
        ("datasets.co21.input", 11, "missing required key 'input'"),
        (
            "datasets.co21.inptu",
            12,
            "unknown key 'inptu' (did you mean 'input'?) (allowed here: input, model)",
        ),
        (
            "datasets.co21.model.components[0].amplitude.unit",
            17,
            "'KK' is not a valid astropy unit (At col 0, KK is not a valid unit. Did you mean "
            "kK or kk?)",
        ),
        ("datasets.co21.model.components[1].type", 20, problems[-1][2]),
    ]
    assert problems[-1][2].startswith("unknown component type 'Konst1D' (did you mean 'Const1D'?)")


def test_semantic_problems_of_a_dataset_name_its_path():
    text = JOINT.replace(
        "    input: {path: co21.fits, fitting_axes: 2}",
        "    input: {path: co21.fits, fitting_axes: 2, weights: w.fits, uncertainty: s.fits,\n"
        "            hdu: 0, variable: co}",
    )
    assert problems_of(text) == [
        ("datasets.co21.input.uncertainty", 12, "give weights or uncertainty, not both"),
        ("datasets.co21.input.variable", 13, "give hdu (FITS) or variable (netCDF/zarr), not both"),
    ]


def test_ties_to_an_unknown_dataset_or_parameter_are_refused_at_the_tie():
    assert problems_of(JOINT.replace("tied: co10.mean_0", "tied: co32.mean_0")) == [
        (
            "datasets.co21.model.components[0].mean.tied",
            18,
            "tied expression 'co32.mean_0' names dataset 'co32', which is not one of the "
            "datasets (co10, co21)",
        )
    ]
    assert problems_of(JOINT.replace("tied: co10.stddev_0", "tied: 2 * co10.width")) == [
        (
            "datasets.co21.model.components[0].stddev.tied",
            19,
            "tied expression '2 * co10.width' names 'co10.width', but dataset 'co10' has no "
            "parameter 'width'; its parameters are: amplitude_0, mean_0, stddev_0, amplitude_1",
        )
    ]
    # A tie within the dataset is checked as in a one-cube config.
    assert problems_of(JOINT.replace("tied: co10.mean_0", "tied: mean_7"))[0][:2] == (
        "datasets.co21.model.components[0].mean.tied",
        18,
    )
    # A circle of ties across datasets.
    circle = JOINT.replace(
        '          mean: {value: "0 km/s", bounds: ["-30 km/s", "30 km/s"]}',
        '          mean: {value: "0 km/s", tied: co21.mean_0}',
    )
    ((path, line, message),) = problems_of(circle)
    assert (path, line) == ("datasets.co21.model.components[0].mean.tied", 18)
    assert "cycle" in message or "circular" in message, message


def test_a_tie_to_another_dataset_in_a_one_cube_config_is_refused():
    text = (
        "input: {path: c.fits}\n"
        "model:\n"
        "  components:\n"
        "    - type: Gaussian1D\n"
        "      mean: {tied: co10.mean}\n"
        "output: {path: out}\n"
    )
    ((path, line, message),) = problems_of(text)
    assert (path, line) == ("model.components[0].mean.tied", 5)
    assert "a parameter of another dataset; such ties work only in a joint fit" in message


def test_missing_files_of_every_dataset(tmp_path):
    (tmp_path / "fit.yaml").write_text(JOINT)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "fit.yaml")
    assert info.value.problems == [
        ("datasets.co10.input.path", 3, f"file not found: {tmp_path / 'co10.fits'}"),
        ("datasets.co21.input.path", 12, f"file not found: {tmp_path / 'co21.fits'}"),
    ]


def test_too_many_components_in_a_dataset():
    many = "\n".join(["        - type: Const1D"] * 201) + "\n"
    text = JOINT.replace("        - type: Const1D\nrun:", many + "run:")
    assert problems_of(text) == [
        (
            "datasets.co21.model.components",
            15,
            "202 components; a config's model sums at most 200 (a per-pixel fit of more is not "
            "meaningful): fit fewer components",
        )
    ]


# --- hash and round trip -------------------------------------------------------------------


def test_config_hash_and_yaml_round_trip(tmp_path):
    cfg = parse_config(JOINT, base_dir=tmp_path, check_files=False)
    back = parse_config(config_to_yaml(cfg), base_dir=tmp_path, check_files=False)
    assert back.model_dump() == cfg.model_dump()
    assert config_hash(back) == config_hash(cfg)
    resolved = parse_config(config_to_yaml(cfg, resolve_paths=True), check_files=False)
    assert resolved.datasets["co21"].input.path == str(tmp_path / "co21.fits")
    assert config_hash(resolved) == config_hash(cfg)
    # Formatting and defaults do not change the hash; another analysis does.
    reformatted = JOINT.replace(
        "    input: {path: co10.fits, fitting_axes: spectral}",
        "    input:\n      path: ./co10.fits\n      fitting_axes: spectral\n      unit: null",
    )
    assert config_hash(parse_config(reformatted, base_dir=tmp_path, check_files=False)) == (
        config_hash(cfg)
    )
    for change in ("tied: co10.mean_0", "path: co21.fits", "initial: model"):
        other = JOINT.replace(
            change,
            {
                "tied: co10.mean_0": "tied: co10.mean_0 + 1",
                "path: co21.fits": "path: co32.fits",
                "initial: model": "initial: guess",
            }[change],
        )
        assert config_hash(parse_config(other, base_dir=tmp_path, check_files=False)) != (
            config_hash(cfg)
        ), change


# --- the cubes against each other (parfit validate) -----------------------------------------


def test_validate_opens_every_cube_and_describes_the_joint_fit(pair):
    folder, _ = pair
    out = parfit_cmd("validate", "fit.yaml", cwd=folder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "fit.yaml: valid",
        "  dataset co10:",
        "    input:  co10.fits, shape (41, 8, 9), fitting along axis 0: 72 fits of 41 samples, "
        "data in K",
        "    model:  Gaussian1D + Const1D (4 parameters, initial: guess)",
        "  dataset co21:",
        "    input:  co21.fits, shape (8, 9, 33), fitting along axis 2: 72 fits of 33 samples, "
        "data in K",
        "    model:  Gaussian1D + Const1D (4 parameters, initial: model)",
        "  joint:  2 datasets fitted together, pixel by pixel: 72 fits of 74 samples",
        "  fitter: batched;  scheduler: synchronous",
        "  output: results",
    ]
    opened = open_input(load_config(folder / "fit.yaml"))
    assert {n: (o["shape"], o["fitting_axes"]) for n, o in opened.items()} == {
        "co10": ((41, 8, 9), (0,)),
        "co21": ((8, 9, 33), (2,)),
    }


def test_validate_refuses_cubes_on_different_grids(tmp_path):
    write_pair(tmp_path, co21_shape=(8, 7))
    (tmp_path / "fit.yaml").write_text(JOINT)
    body = cli_problems(parfit_cmd("validate", "fit.yaml", cwd=tmp_path), "fit.yaml")
    assert body == [
        "fit.yaml:12: datasets.co21.input: dataset 'co21' has iterating shape (8, 7) (its cube "
        "(8, 7, 33) without fitting axis 2) but dataset 'co10' has (8, 9) (its cube "
        "(41, 8, 9) without fitting axis 0); the cubes of a joint fit must have the same shape "
        "along their iterating axes (one fit per pixel of all of them)"
    ]
    # A wrong fitting axis (co21's first axis, Dec) is caught on that cube alone.
    (tmp_path / "axis.yaml").write_text(JOINT.replace("co21.fits, fitting_axes: 2", "co21.fits"))
    assert deep_problems(tmp_path / "axis.yaml") == [
        (
            "datasets.co21.model.components",
            15,
            "the model does not suit the input: the WCS has 2 world axes along the fitting "
            "axes (0,), but there are 1 fitting axes; they must match",
        )
    ]
    # Checking the files reads the cubes' headers too, to compare their grids ...
    import yaml

    from parfit.config import validate_config

    with pytest.raises(ConfigError) as info:
        validate_config(yaml.safe_load(JOINT), base_dir=tmp_path, check_files=True)
    ((path, line, message),) = info.value.problems
    assert (path, line) == ("datasets.co21.input", None)
    assert message.startswith("dataset 'co21' has iterating shape (8, 7) (its cube (8, 7, 33)")
    # ... and parfit validate --no-input neither opens them nor looks for them.
    load_config(tmp_path / "fit.yaml", check_files=False)


def deep_problems(path):
    with pytest.raises(ConfigError) as info:
        load_config(path, deep=True)
    return info.value.problems


def test_validate_checks_each_cube_against_its_model(tmp_path):
    write_pair(tmp_path)
    text = JOINT.replace("co21.fits, fitting_axes: 2", "co21.fits, fitting_axes: 3")
    (tmp_path / "fit.yaml").write_text(text)
    assert deep_problems(tmp_path / "fit.yaml") == [
        (
            "datasets.co21.input.fitting_axes",
            12,
            "fitting_axes value 3 is out of range for 3-dimensional data (valid: -3 to 2)",
        )
    ]
    # Units: a baseline in Jy on a cube in K.
    text = JOINT.replace(
        "        - type: Const1D\nrun:", '        - {type: Const1D, amplitude: "1 Jy"}\nrun:'
    )
    (tmp_path / "unit.yaml").write_text(text)
    ((path, line, message),) = deep_problems(tmp_path / "unit.yaml")
    assert (path, line) == ("datasets.co21.model.components", 15)
    assert message.startswith("the model does not suit the input: ")
    assert "Jy" in message and "K" in message


def test_validate_refuses_a_tie_between_parameters_fitted_in_other_units(tmp_path):
    # No unit in the config: each model is fitted in its cube's units, m/s for co10
    # and Hz for co21 (a frequency axis), and a tie would copy a velocity into a frequency.
    write_pair(tmp_path, co21_spectral=("FREQ", "Hz", 1e5))
    text = JOINT.replace(
        '{value: "0 km/s", bounds: ["-30 km/s", "30 km/s"]}', "{value: 0, bounds: [-30000, 30000]}"
    ).replace(
        '{value: "5 km/s", bounds: ["0.5 km/s", "20 km/s"]}', "{value: 5000, bounds: [500, null]}"
    )
    (tmp_path / "fit.yaml").write_text(text)
    assert deep_problems(tmp_path / "fit.yaml") == [
        (
            f"datasets.co21.model.components[0].{name}.tied",
            line,
            f"co21.{name}_0 would be fitted in Hz but co10.{name}_0, which its tie names, "
            f"in m / s; a tie across datasets copies the number, so both must be in one unit: "
            f"give this parameter unit: m / s",
        )
        for name, line in (("mean", 18), ("stddev", 19))
    ]


# --- parfit run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joint_run(pair):
    folder, truth = pair
    out = parfit_cmd("run", "fit.yaml", cwd=folder)
    return folder, truth, out


def _in_kms(ds, name):
    return (ds[name].values * u.Unit(ds[name].attrs["units"])).to_value(u.km / u.s)


def test_run_fits_the_cubes_together_into_one_store(joint_run):
    folder, truth, out = joint_run
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "fitting co10 (co10.fits), co21 (co21.fits) jointly -> " in out.stderr
    assert "72 fits in " in out.stdout and ": OK=72\n" in out.stdout
    results = folder / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "config.yaml",
        "diagnostics",
        "maps.zarr",
        "run.json",
    ]
    ds = xr.open_zarr(results / "maps.zarr", consolidated=False)
    assert (ds["status"].values == parfit.Status.OK).all()
    # The shared parameters: one value per pixel under both names.
    for shared in ("mean_0", "stddev_0"):
        np.testing.assert_array_equal(ds[f"co21.{shared}"].values, ds[f"co10.{shared}"].values)
        np.testing.assert_array_equal(
            ds[f"co21.{shared}_error"].values, ds[f"co10.{shared}_error"].values
        )
    # The truth, within the errors: pulls of unit width and no bias.
    fitted = {
        "mean": _in_kms(ds, "co10.mean_0"),
        "stddev": _in_kms(ds, "co10.stddev_0"),
        **{n: ds[n].values for n in truth if n.startswith("co")},
    }
    errors = {
        "mean": _in_kms(ds, "co10.mean_0_error"),
        "stddev": _in_kms(ds, "co10.stddev_0_error"),
        **{n: ds[f"{n}_error"].values for n in truth if n.startswith("co")},
    }
    for name, true in truth.items():
        pulls = (fitted[name] - true) / errors[name]
        assert 0.6 < np.std(pulls) < 1.5, (name, np.std(pulls))
        assert abs(np.mean(pulls)) < 0.4, (name, np.mean(pulls))
    assert np.abs(fitted["mean"] - truth["mean"]).max() < 1.0
    # Each dataset's share of the statistic; model and residual cubes in its own layout.
    np.testing.assert_allclose(
        ds["statistic.co10"].values + ds["statistic.co21"].values, ds["statistic"].values
    )
    assert ds["model.co10"].shape == (41, 8, 9) and ds["residual.co21"].shape == (8, 9, 33)
    c21 = fits.getdata(folder / "co21.fits").astype(np.float64)
    np.testing.assert_allclose(
        ds["model.co21"].values + ds["residual.co21"].values, c21, rtol=0, atol=1e-9
    )


def test_run_record_names_every_dataset(joint_run):
    folder, _, _ = joint_run
    results = folder / "results"
    record = json.loads((results / "run.json").read_text())
    assert "input" not in record
    assert list(record["datasets"]) == ["co10", "co21"]
    for name, entry in record["datasets"].items():
        assert entry["path"] == str(folder / f"{name}.fits")
        assert isinstance(entry["fingerprint"], str) and len(entry["fingerprint"]) == 32
    assert record["datasets"]["co10"]["fingerprint"] != record["datasets"]["co21"]["fingerprint"]
    assert len(record["input_fingerprint"]) == 32 and record["complete"] is True
    assert record["status_counts"] == {"OK": 72} and record["exit_status"] == "ok"
    assert record["config_hash"] == config_hash(load_config(folder / "fit.yaml"))
    # config.yaml is the config as run: valid, with absolute paths and the same hash.
    as_run = load_config(results / "config.yaml")
    assert as_run.datasets["co21"].input.path == str(folder / "co21.fits")
    assert config_hash(as_run) == record["config_hash"]


def test_analysis_read_of_a_joint_folder(joint_run):
    folder, _, _ = joint_run
    analysis = Analysis.read(folder / "results")
    assert analysis.joint
    assert analysis.result.shape == SHAPE
    assert analysis.result.param_names[:3] == ("co10.amplitude_0", "co10.mean_0", "co10.stddev_0")
    assert repr(analysis).startswith(
        f"<Analysis of datasets co10 ({str(folder / 'co10.fits')!r}), co21 "
    )
    # A pixel fitted again, per dataset (tests/test_joint_pixel.py tests it through).
    fit = analysis.fit_pixel((0, 0))
    assert fit["datasets"] == ("co10", "co21")
    assert {name: len(x) for name, x in fit["x"].items()} == {"co10": 41, "co21": 33}


def test_resume_of_a_joint_run(joint_run, tmp_path):
    folder, _, _ = joint_run
    again = parfit_cmd("run", "--resume", "fit.yaml", cwd=folder)
    assert again.returncode == 0, again.stderr
    record = json.loads((folder / "results" / "run.json").read_text())
    assert record["resumed"] is True and record["blocks_fitted"] == 0
    # Another model is refused: the store's maps would not be of this analysis.
    (folder / "other.yaml").write_text(
        JOINT.replace("tied: co10.mean_0", "tied: co10.mean_0 + 1").replace(
            "cubes: [model, residual]}", "cubes: [model, residual], resume: true}"
        )
    )
    with pytest.raises(ConfigError) as info:
        Analysis.from_yaml(folder / "other.yaml").run()
    assert str(info.value).startswith(f"output.resume: the run in {str(folder / 'results')!r}")
    assert str(info.value).endswith(
        "used a different 'datasets' section; resume needs the same datasets, fitter, "
        "likelihood and strategy (set output.overwrite: true to start again)"
    )


def test_analysis_runs_a_joint_config_dict(pair, tmp_path):
    import yaml

    folder, truth = pair
    data = yaml.safe_load(JOINT)
    data["output"] = {"path": str(tmp_path / "dict-run"), "format": "netcdf"}
    data["datasets"]["co10"]["model"]["initial"] = "guess"
    data["datasets"]["co21"]["model"]["initial"] = "guess"
    data["diagnostics"] = {"mode": "none"}
    analysis = Analysis(data, base_dir=folder)
    result = analysis.run()
    assert result.success.all()
    np.testing.assert_array_equal(
        result.parameters["co21.mean_0"], result.parameters["co10.mean_0"]
    )
    assert list(result.models) == ["co10", "co21"]
    assert analysis.record["datasets"]["co21"]["path"] == str(folder / "co21.fits")
    assert analysis.record["exports"] == ["maps.nc"]
    with xr.open_dataset(tmp_path / "dict-run" / "maps.nc") as nc:
        np.testing.assert_array_equal(nc["co21.mean_0"].values, result.parameters["co21.mean_0"])
    # Written elsewhere and read back: the same config, record and maps.
    copy = Analysis.read(analysis.write(tmp_path / "copy"))
    assert copy.joint and copy.record["datasets"] == analysis.record["datasets"]
    np.testing.assert_array_equal(
        copy.result.parameters["co10.stddev_0"], result.parameters["co10.stddev_0"]
    )


# --- template, reference, docs -------------------------------------------------------------


def test_joint_template_is_valid_and_documents_every_key(tmp_path):
    from parfit.config.docs import field_rows, template
    from parfit.config.schema import InputSection

    out = parfit_cmd("config", "--joint", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = parse_config(out.stdout, check_files=False)
    assert list(cfg.datasets) == ["co10", "co21"]
    models = build_model(cfg)
    assert models["co21"].mean_0.tied == "co10.mean_0"
    lines = out.stdout.splitlines()
    for key, *_ in field_rows(InputSection):
        assert any(line.strip().startswith(f"{key}:") for line in lines), key
    assert out.stdout == template(joint=True)
    minimal = template(minimal=True, joint=True)
    keys = [line for line in minimal.splitlines() if line and not line.startswith("#")]
    assert len(keys) <= 20, keys
    assert list(parse_config(minimal, check_files=False).datasets) == ["co10", "co21"]
    # The one-cube template points to the joint form.
    assert "`parfit config --joint` writes" in template()


def test_reference_documents_the_datasets_section():
    from parfit.config.docs import reference_rst

    text = reference_rst()
    head = "``datasets``\n------------\n"
    assert head in text
    part = text.split(head)[1].split("\n----")[0]
    for key in ("input", "model"):
        assert f"   * - ``{key}``\n" in part


def _rst_yaml_block(caption):
    text = (ROOT / "docs" / "config.rst").read_text()
    marker = f".. code-block:: yaml\n   :caption: {caption}\n"
    assert text.count(marker) == 1, caption
    body = text.split(marker)[1].lstrip("\n")
    lines = []
    for line in body.splitlines():
        if line and not line.startswith("   "):
            break
        lines.append(line[3:])
    return textwrap.dedent("\n".join(lines)).strip("\n") + "\n"


def test_docs_joint_example_is_valid():
    cfg = parse_config(_rst_yaml_block("joint.yaml"), check_files=False)
    assert len(cfg.datasets) >= 2
    models = build_model(cfg)
    assert any("." in (p.tied or "") for m in models.values() for p in m.parameters.values()), (
        "the docs example shares no parameter across datasets"
    )


def test_docs_joint_example_runs_and_recovers_the_shared_centre(tmp_path):
    (tmp_path / "data").mkdir()
    truth = write_pair(tmp_path / "data")
    (tmp_path / "joint.yaml").write_text(_rst_yaml_block("joint.yaml"))
    analysis = Analysis.from_yaml(tmp_path / "joint.yaml")
    result = analysis.run(progress=False)
    assert result.success.all()
    mean = result.parameters["co21.mean_0"]
    assert result.to_xarray()["co21.mean_0"].attrs["units"] == "km / s"
    np.testing.assert_array_equal(mean, result.parameters["co10.mean_0"])
    assert np.abs(mean - truth["mean"]).max() < 1.0
    amplitude = result.parameters["co21.amplitude_0"]
    assert np.abs(amplitude - truth["co21.amplitude_0"]).max() < 0.3
