"""The analysis config in Python: YAML reading, schema, model building, Analysis.

The ``parfit`` command on top of it is tested through subprocesses in
``test_cli_config.py``.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from parfit import Status
from parfit.analysis import Analysis, read_result
from parfit.config import (
    build_model,
    config_hash,
    config_schema,
    load_config,
    parse_config,
    validate_config,
)
from parfit.config._yaml import load_yaml
from parfit.config.docs import field_rows, reference_rst, template
from parfit.config.validate import config_to_yaml
from parfit.datasets import gaussian_cube
from parfit.errors import ConfigError, InputError, OutputExistsError

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
input:
  path: cube.fits
  fitting_axes: spectral
model:
  components:
    - type: Gaussian1D
      amplitude: {value: 2.0, bounds: [0, null]}
      mean: {value: "0 km/s", bounds: ["-40 km/s", "40 km/s"]}
      stddev: {value: "5000 m/s", bounds: ["0.1 km/s", null]}
  initial: guess
run:
  scheduler: synchronous
  progress: false
output:
  path: results
"""


def problems_of(text, **kwargs):
    kwargs.setdefault("check_files", False)
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="fit.yaml", **kwargs)
    return info.value.problems


@pytest.fixture(scope="module")
def cube():
    return gaussian_cube((30, 5, 6), seed=4, n_blank=2)


@pytest.fixture
def folder(tmp_path, cube):
    cube.to_fits(tmp_path / "cube.fits")
    (tmp_path / "fit.yaml").write_text(GOOD)
    return tmp_path


# --- YAML reading ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, meaning",
    [
        ("NO", "boolean false"),
        ("yes", "boolean true"),
        ("Off", "boolean false"),
        ("ON", "boolean true"),
    ],
)
def test_yaml_11_booleans_are_ambiguous(text, meaning):
    data, lines, problems = load_yaml(f"a:\n  b: {text}\n")
    assert data == {"a": {"b": data["a"]["b"]}}
    assert problems == [
        (
            ("a", "b"),
            2,
            f"ambiguous value {text}: YAML 1.1 reads it as the "
            f"{meaning}; write {meaning.split()[1]} for a boolean, or quote it "
            f'("{text}") for text',
        )
    ]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("12:30", "base-60 number"),
        ("0755", "leading 0 as octal"),
        ("2024-01-02", "a date"),
    ],
)
def test_sexagesimal_octal_and_dates_are_ambiguous(text, fragment):
    _, _, problems = load_yaml(f"x: {text}\n")
    assert len(problems) == 1 and problems[0].path == ("x",) and problems[0].line == 1
    assert fragment in problems[0].message


@pytest.mark.parametrize("text", ['"NO"', "'12:30'", "true", "false", "12", "0", "0.5", "y", "x"])
def test_quoted_and_plain_values_are_not_ambiguous(text):
    assert load_yaml(f"x: {text}\n")[2] == []


def test_exponent_without_dot_is_a_float():
    data, _, problems = load_yaml("a: 1e-8\nb: 2E5\nc: -3.5e+2\nd: 1e5x\n")
    assert problems == []
    assert data == {"a": 1e-8, "b": 2e5, "c": -350.0, "d": "1e5x"}


def test_duplicate_keys_and_lines():
    data, lines, problems = load_yaml("a: 1\nb:\n  c: 2\n  c: 3\n")
    assert problems == [
        (("b", "c"), 4, "duplicate key 'c' (first given at line 3); each key may appear only once")
    ]
    assert lines[("b", "c")] == 3 and data["b"]["c"] == 2


def test_yaml_syntax_error_has_its_line():
    problems = problems_of("input:\n  path: [a, b\noutput: {}\n")
    assert len(problems) == 1
    path, line, message = problems[0]
    assert line == 3 and message.startswith("invalid YAML:")


def test_empty_and_non_mapping_documents():
    assert problems_of("") == [
        ("(top level)", 1, "the config is empty; start from `parfit config`")
    ]
    assert problems_of("- a\n- b\n")[0][2].startswith("the config must be a mapping")


# --- schema -----------------------------------------------------------------------------


def test_defaults_of_a_minimal_config():
    cfg = parse_config(template(minimal=True), check_files=False)
    assert cfg.fitter.name == "batched" and cfg.fitter.ftol == 1e-8
    assert cfg.run.scheduler == "threads" and cfg.run.chunk_n_max == "auto"
    assert cfg.run.max_failed_fraction == 0.01
    assert cfg.diagnostics.mode == "error" and cfg.output.format == "zarr"
    assert cfg.model.initial == "guess"


def test_every_problem_is_reported_with_path_and_line():
    text = GOOD.replace("  fitting_axes: spectral\n", "  fitting_axes: spectral\n  hdu: NO\n")
    text = text.replace("      mean: {value", "      meen: {value")
    text = text.replace("run:\n", "run:\n  chunk_nmax: 10\n  memory_limit: 12:30\n")
    text = text.replace(
        'stddev: {value: "5000 m/s", bounds: ["0.1 km/s", null]}', "stddev: {value: 5, unit: km/ss}"
    )
    problems = problems_of(text)
    assert problems == [
        (
            "input.hdu",
            4,
            "ambiguous value NO: YAML 1.1 reads it as the boolean false; write "
            'false for a boolean, or quote it ("NO") for text',
        ),
        (
            "model.components[0].meen",
            9,
            "unknown key 'meen' (did you mean 'mean'?) (allowed "
            "here: name, type, amplitude, mean, stddev)",
        ),
        (
            "model.components[0].stddev.unit",
            10,
            "'km/ss' is not a valid astropy unit (At col 3, ss is not a valid unit. Did you "
            "mean S or s?)",
        ),
        (
            "run.chunk_nmax",
            13,
            "unknown key 'chunk_nmax' (did you mean 'chunk_n_max'?) "
            "(allowed here: chunk_n_max, scheduler, n_workers, "
            "threads_per_worker, memory_limit, dashboard, "
            "preserve_native_chunks, progress, fit_timeout, max_failed_fraction)",
        ),
        (
            "run.memory_limit",
            14,
            "ambiguous value 12:30: YAML 1.1 reads it as a base-60 "
            'number; quote it ("12:30") for text, or write the number '
            "in decimal",
        ),
    ]


def test_the_message_lists_problems_as_file_line_path():
    with pytest.raises(ConfigError) as info:
        parse_config(
            GOOD.replace("initial: guess", "initial: gess"), source="fit.yaml", check_files=False
        )
    assert str(info.value) == (
        "1 problem in fit.yaml:\n"
        "  fit.yaml:10: model.initial: Input should be 'model', 'guess' or 'mean'; got 'gess' "
        "(did you mean 'guess'?)"
    )


def test_config_error_pickles_with_its_problems():
    with pytest.raises(ConfigError) as info:
        parse_config("input: {}\n", check_files=False)
    again = pickle.loads(pickle.dumps(info.value))
    assert again.problems == info.value.problems and str(again) == str(info.value)
    assert isinstance(again, ValueError)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            ('bounds: ["-40 km/s", "40 km/s"]', 'bounds: ["40 km/s", "-40 km/s"]'),
            (
                "model.components[0].mean.bounds",
                8,
                "lower bound must be below upper bound; got ['40 km/s', '-40 km/s']",
            ),
        ),
        (
            ('bounds: ["-40 km/s", "40 km/s"]', 'bounds: ["1 km/s", "2 K"]'),
            (
                "model.components[0].mean.bounds",
                8,
                "lower bound '1 km/s' and upper bound '2 K' have incompatible units",
            ),
        ),
        (
            ('value: "0 km/s"', 'value: "0 K"'),
            ("model.components[0].mean", 8, "bound '-40 km/s' is not convertible to K"),
        ),
        (
            ('value: "0 km/s"', 'value: "50 km/s"'),
            (
                "model.components[0].mean",
                8,
                "starting value '50 km/s' is outside its bounds ['-40 km/s', '40 km/s']",
            ),
        ),
        (
            ('value: "0 km/s"', 'value: "4000 m/ss"'),
            (
                "model.components[0].mean.value",
                8,
                "value '4000 m/ss' is not a number with an "
                'optional unit, such as "4000 m/s" (At col 2, ss is not a valid unit. Did you mean S '
                "or s?)",
            ),
        ),
        (
            ("type: Gaussian1D", "type: Gausian1D"),
            (
                "model.components[0].type",
                6,
                "unknown component type 'Gausian1D' (did you mean "
                "'Gaussian1D'?) (known types: CircularGaussian2D, Const1D, Const2D, Gaussian1D, "
                "Gaussian2D, Linear1D, Lorentz1D, Polynomial1D, PowerLaw1D, Voigt1D; register "
                "your own with @parfit.models.register_model)",
            ),
        ),
        (
            ("fitting_axes: spectral", "fitting_axes: [0, 1.5]"),
            (
                "input.fitting_axes",
                3,
                "fitting_axes must be an axis number, a dimension name, "
                "'spectral', or a list of them; got 1.5",
            ),
        ),
        (
            ("scheduler: synchronous", "scheduler: thread"),
            (
                "run.scheduler",
                12,
                "unknown scheduler 'thread' (did you mean 'threads'?); expected "
                "one of synchronous, threads, processes, local or a scheduler address such as "
                "tcp://127.0.0.1:8786",
            ),
        ),
        (
            ("scheduler: synchronous", "scheduler: synchronous\n  n_workers: 2"),
            ("run.n_workers", 13, "n_workers applies only to scheduler: local, not 'synchronous'"),
        ),
        (
            ("initial: guess", "initial: guess\nfitter: {name: trf, engine: numpy}"),
            ("fitter.engine", 11, "engine applies only to name: batched, not 'trf'"),
        ),
        (
            ("path: results", "path: results\n  overwrite: true\n  resume: true"),
            (
                "output.resume",
                17,
                "overwrite and resume exclude each other: resume continues the results "
                "in the folder, overwrite replaces them",
            ),
        ),
        (
            ("  progress: false\n", "  progress: false\n  max_failed_fraction: 1.5\n"),
            ("run.max_failed_fraction", 14, "Input should be less than or equal to 1; got 1.5"),
        ),
        (
            ("output:\n  path: results\n", "output: {}\n"),
            ("output.path", 14, "missing required key 'path'"),
        ),
        (
            (
                "fitting_axes: spectral",
                "fitting_axes: spectral\n  weights: w.fits\n  uncertainty: s.fits",
            ),
            ("input.uncertainty", 5, "give weights or uncertainty, not both"),
        ),
    ],
)
def test_bad_values(edit, expected):
    text = GOOD.replace(*edit)
    assert text != GOOD
    assert problems_of(text) == [expected]


def test_missing_files_are_reported(tmp_path):
    (tmp_path / "fit.yaml").write_text(GOOD.replace("spectral\n", "spectral\n  mask: m.fits\n"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "fit.yaml")
    assert info.value.problems == [
        ("input.path", 2, f"file not found: {tmp_path / 'cube.fits'}"),
        ("input.mask", 4, f"file not found: {tmp_path / 'm.fits'}"),
    ]
    with pytest.raises(ConfigError, match="config file .*nothere.yaml' does not exist"):
        load_config(tmp_path / "nothere.yaml")


def test_deep_checks_open_the_input(folder):
    text = GOOD.replace("fitting_axes: spectral", "fitting_axes: 3")
    (folder / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(folder / "bad.yaml", deep=True)
    assert info.value.problems == [
        (
            "input.fitting_axes",
            3,
            "fitting_axes value 3 is out of range for 3-dimensional data (valid: -3 to 2)",
        )
    ]
    load_config(folder / "bad.yaml")  # without deep checks the file itself is fine
    (folder / "hdu.yaml").write_text(GOOD.replace("spectral\n", "spectral\n  hdu: 4\n"))
    with pytest.raises(ConfigError, match=r"hdu.yaml:4: input.hdu: "):
        load_config(folder / "hdu.yaml", deep=True)


def test_deep_checks_the_model_units_against_the_world_of_the_cube(folder):
    # A width in kg cannot be fitted on a velocity axis: refused by validation, not
    # only once the run has started (the check uses the cube's WCS, not pixel numbers).
    text = GOOD.replace('stddev: {value: "5000 m/s"', 'stddev: {value: "5 kg"').replace(
        'bounds: ["0.1 km/s", null]', "bounds: [0, null]"
    )
    (folder / "kg.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(folder / "kg.yaml", deep=True)
    ((path, line, message),) = info.value.problems
    assert (path, line) == ("model.components", 5)
    assert message.startswith("the model does not suit the input: ")
    assert "kg" in message


def test_tied_expression_naming_an_unknown_parameter():
    text = GOOD.replace("initial: guess", "initial: model").replace(
        "amplitude: {value: 2.0, bounds: [0, null]}", "amplitude: {value: 2.0, tied: 'amp_9 * 2'}"
    )
    (problem,) = problems_of(text)
    assert problem[:2] == ("model.components[0].amplitude.tied", 7)
    assert "amp_9" in problem[2]


def test_polynomial_parameters_follow_its_degree():
    base = "input: {path: c.fits}\noutput: {path: o}\nmodel:\n  components:\n"
    cfg = parse_config(
        base + "    - {type: Polynomial1D, degree: 2, c2: {value: 3, fixed: true}}\n",
        check_files=False,
    )
    model = build_model(cfg)
    assert model.param_names == ("c0", "c1", "c2")
    assert model.c2.value == 3.0 and model.c2.fixed
    (problem,) = problems_of(base + "    - {type: Polynomial1D, degree: 1, c2: 1}\n")
    assert problem == (
        "model.components[0].c2",
        5,
        "Polynomial1D with {'degree': 1} has no parameter 'c2'; its parameters are c0, c1",
    )
    (problem,) = problems_of(base + "    - {type: Polynomial1D}\n")
    assert problem == ("model.components[0].degree", 5, "missing required key 'degree'")
    # A coefficient's own keys are checked like any parameter's, and named as such.
    (problem,) = problems_of(base + "    - {type: Polynomial1D, degree: 1, c0: {fixd: true}}\n")
    assert problem == (
        "model.components[0].c0.fixd",
        5,
        "unknown key 'fixd' (did you mean 'fixed'?) (allowed here: value, unit, bounds, "
        "fixed, tied)",
    )
    (problem,) = problems_of(base + "    - {type: Polynomial1D, degree: 1, c0: {bounds: [1]}}\n")
    assert problem == (
        "model.components[0].c0.bounds",
        5,
        "bounds must be a list [lower, upper] (null for none); got [1]",
    )


def test_build_model_units_bounds_fixed_tied():
    cfg = validate_config(
        {
            "input": {"path": "c.fits"},
            "output": {"path": "o"},
            "model": {
                "components": [
                    {
                        "type": "Gaussian1D",
                        "mean": "4000 m/s",
                        "stddev": {"value": 2, "unit": "km/s", "bounds": [0.5, "5000 m/s"]},
                    },
                    {
                        "type": "Gaussian1D",
                        "mean": {"value": "4 km/s", "tied": "mean_0 + 1.2"},
                        "amplitude": {"value": 0.5, "fixed": True},
                        "name": "wing",
                    },
                    {"type": "Const1D", "amplitude": 0.1},
                ]
            },
        },
        check_files=False,
    )
    model = build_model(cfg)
    assert model.param_names == (
        "amplitude_0",
        "mean_0",
        "stddev_0",
        "amplitude_1",
        "mean_1",
        "stddev_1",
        "amplitude_2",
    )
    assert (model.mean_0.value, str(model.mean_0.unit)) == (4000.0, "m / s")
    # One unit per kind: the first speed given (m/s) is the unit of every speed.
    assert str(model.stddev_0.unit) == "m / s" and model.stddev_0.value == 2000.0
    assert model.stddev_0.bounds == (500.0, 5000.0)
    assert (model.mean_1.value, str(model.mean_1.unit)) == (4000.0, "m / s")
    assert model.amplitude_1.fixed and model.mean_1.tied == "mean_0 + 1.2"
    assert model.amplitude_2.value == 0.1


def test_registered_models_join_the_schema():
    from parfit.models import MODEL_REGISTRY, Model, ParameterSpec, register_model

    @register_model
    class Step1D(Model):
        param_specs = (ParameterSpec("height", 1.0, unit="y", description="Step height"),)

        def _evaluate(self, x, height):
            return height * (x > 0)

    try:
        from parfit.config.schema import component_classes

        assert "Step1D" in component_classes()
        cfg = parse_config(
            "input: {path: c.fits}\noutput: {path: o}\nmodel:\n  components:\n"
            "    - {type: Step1D, height: 3}\n",
            check_files=False,
        )
        assert build_model(cfg).height.value == 3.0
        assert "``Step1D``" in reference_rst()
    finally:
        del MODEL_REGISTRY["Step1D"]
    assert "Step1D" not in reference_rst()


def test_config_hash_ignores_formatting_but_not_content(tmp_path):
    a = parse_config(GOOD, base_dir=tmp_path, check_files=False)
    reformatted = GOOD.replace(
        "amplitude: {value: 2.0, bounds: [0, null]}",
        "amplitude:\n        value: 2\n        bounds: [0.0, ~]",
    )
    b = parse_config(
        reformatted + "fitter: {name: batched}\n", base_dir=tmp_path, check_files=False
    )
    assert config_hash(a) == config_hash(b)
    c = parse_config(GOOD.replace("value: 2.0", "value: 2.5"), base_dir=tmp_path, check_files=False)
    assert config_hash(c) != config_hash(a)
    d = parse_config(GOOD, base_dir=tmp_path / "elsewhere", check_files=False)
    assert config_hash(d) != config_hash(a)  # another cube.fits


def test_config_round_trips_through_yaml(tmp_path):
    cfg = parse_config(GOOD, base_dir=tmp_path, check_files=False)
    again = parse_config(config_to_yaml(cfg), base_dir=tmp_path, check_files=False)
    assert config_hash(again) == config_hash(cfg)
    resolved = parse_config(
        config_to_yaml(cfg, resolve_paths=True), base_dir="/", check_files=False
    )
    assert resolved.input.path == str(tmp_path / "cube.fits")
    assert config_hash(resolved) == config_hash(cfg)


# --- template and reference --------------------------------------------------------


def test_template_has_every_key_with_a_comment_and_is_valid():
    text = template()
    cfg = parse_config(text, check_files=False)
    assert [c.type for c in cfg.model.components] == ["Gaussian1D", "Const1D"]
    lines = text.splitlines()
    schema = config_schema()
    for section, field in schema.model_fields.items():
        assert f"{section}:" in lines
        cls = field.annotation
        for key, *_ in field_rows(cls):
            (i,) = [
                k
                for k, line in enumerate(lines)
                if line.startswith(f"  {key}:") and _section_of(lines, k) == section
            ]
            assert lines[i - 1].lstrip().startswith("#"), key
    for name in ("Gaussian1D: amplitude, mean, stddev", "Polynomial1D: degree, c0 ... c<degree>"):
        assert f"  #   {name}" in lines


def _section_of(lines, k):
    while not lines[k][:1].isalpha():
        k -= 1
    return lines[k].rstrip(":")


def test_minimal_template_is_short_and_valid():
    text = template(minimal=True)
    assert len([line for line in text.splitlines() if line and not line.startswith("#")]) < 15
    parse_config(text, check_files=False)


def test_reference_page_is_generated_from_the_schema():
    page = ROOT / "docs" / "config_reference.rst"
    assert page.read_text() == reference_rst(), (
        "docs/config_reference.rst is out of date; regenerate it with "
        "`parfit config --reference -o docs/config_reference.rst --force`"
    )
    text = reference_rst()
    for section, field in config_schema().model_fields.items():
        for key, *_ in field_rows(field.annotation):
            assert f"``{key}``" in text, (section, key)


# --- Analysis ------------------------------------------------------------------------


def test_analysis_run_write_read(folder, cube):
    analysis = Analysis.from_yaml(folder / "fit.yaml")
    result = analysis.run()
    out = folder / "results"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "diagnostics",
        "maps.zarr",
        "run.json",
    ]
    rec = json.loads((out / "run.json").read_text())
    assert rec == analysis.record
    assert rec["status_counts"] == {"OK": 28, "NO_VALID_DATA": 2}
    assert (rec["n_fits"], rec["n_attempted"], rec["n_failed"]) == (30, 28, 0)
    assert rec["exit_status"] == "ok" and rec["complete"] is True
    assert rec["config_hash"] == config_hash(analysis.config)
    assert rec["input_fingerprint"] == rec["input"]["fingerprint"] and rec["input_fingerprint"]
    assert set(rec["timings"]) == {"open_s", "fit_s", "export_s", "total_s"}
    ok = result.status == Status.OK
    assert np.allclose(result.parameters["mean"][ok], cube.truth["mean"][ok], atol=0.5)
    assert str(result.units["mean"]) == "km / s"

    again = Analysis.read(out)
    assert config_hash(again.config) == config_hash(analysis.config)
    assert again.record == rec
    for name in result.param_names:
        np.testing.assert_array_equal(again.result.parameters[name], result.parameters[name])
        np.testing.assert_array_equal(again.result.errors[name], result.errors[name])
    np.testing.assert_array_equal(again.result.status, result.status)
    assert again.result.units == result.units
    assert again.result.wcs.has_celestial

    copy = analysis.write(folder / "copy")
    assert sorted(p.name for p in copy.iterdir()) == ["config.yaml", "maps.zarr", "run.json"]
    restored = Analysis.read(copy)
    np.testing.assert_array_equal(restored.result.parameters["mean"], result.parameters["mean"])
    assert restored.result.units == result.units
    with pytest.raises(OutputExistsError, match="already holds config.yaml, run.json, maps.zarr"):
        analysis.write(folder / "copy")
    analysis.write(folder / "copy", overwrite=True)


def test_second_run_is_refused_and_overwrite_keeps_foreign_files(folder):
    Analysis.from_yaml(folder / "fit.yaml").run()
    (folder / "results" / "notes.txt").write_text("mine")
    with pytest.raises(
        OutputExistsError,
        match=r"output.path '.*results' holds the results "
        r"of an earlier run \(run.json, config.yaml, maps.zarr\); set "
        r"output.overwrite: true",
    ):
        Analysis.from_yaml(folder / "fit.yaml").run()
    (folder / "fit.yaml").write_text(GOOD + "  overwrite: true\n")
    Analysis.from_yaml(folder / "fit.yaml").run()
    assert (folder / "results" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "name, content",
    [
        ("config.yaml", "input: {path: mine.fits}\n"),
        ("run.json", '{"mine": true}'),
        ("maps.nc", "not parfit's"),
    ],
)
def test_files_parfit_did_not_write_are_never_replaced(folder, name, content):
    (folder / "results").mkdir()
    (folder / "results" / name).write_text(content)
    (folder / "fit.yaml").write_text(GOOD + "  overwrite: true\n")
    with pytest.raises(
        OutputExistsError,
        match=rf"output.path '.*results' holds {name}, which "
        r"parfit did not write; parfit never replaces such files",
    ):
        Analysis.from_yaml(folder / "fit.yaml").run()
    assert (folder / "results" / name).read_text() == content
    assert sorted(p.name for p in (folder / "results").iterdir()) == [name]


def test_a_foreign_maps_store_is_never_replaced(folder):
    import zarr

    zarr.open_group(str(folder / "results" / "maps.zarr"), mode="w").create_array(
        "mine", shape=(2,), dtype="f8"
    )
    (folder / "fit.yaml").write_text(GOOD + "  overwrite: true\n")
    with pytest.raises(OutputExistsError, match="holds maps.zarr, which parfit did not write"):
        Analysis.from_yaml(folder / "fit.yaml").run()
    assert "mine" in zarr.open_group(str(folder / "results" / "maps.zarr"), mode="r")


def test_resume_refuses_a_different_model(folder):
    Analysis.from_yaml(folder / "fit.yaml").run()
    (folder / "fit.yaml").write_text(GOOD.replace("value: 2.0", "value: 3.0") + "  resume: true\n")
    with pytest.raises(
        ConfigError, match="output.resume: the run in .* used a different 'model' section"
    ):
        Analysis.from_yaml(folder / "fit.yaml").run()
    (folder / "fit.yaml").write_text(GOOD + "  resume: true\n")
    analysis = Analysis.from_yaml(folder / "fit.yaml")
    analysis.run()
    assert analysis.record["blocks_fitted"] == 0 and analysis.record["blocks_resumed"] >= 1


def test_fit_pixel_agrees_with_the_maps(folder):
    analysis = Analysis.from_yaml(folder / "fit.yaml")
    result = analysis.run()
    fit = analysis.fit_pixel((2, 3))
    assert fit["status"] == Status.OK
    for name, value in fit["parameters"].items():
        assert value == pytest.approx(result.parameters[name][2, 3], rel=1e-6, abs=1e-9)
    assert fit["x"].shape == fit["data"].shape == fit["fitted"].shape == (30,)
    assert fit["x_unit"] == "km / s" and fit["data_unit"] == "K"
    residual = fit["data"] - fit["fitted"]
    assert np.std(residual) < 0.2  # the cube's noise is 0.1
    blank = analysis.fit_pixel((4, 5))
    assert blank["status"] == Status.NO_VALID_DATA and blank["fitted"] is None
    with pytest.raises(
        InputError,
        match=r"pixel \(9, 0\) is outside the maps, whose shape "
        r"is \(5, 6\)",
    ):
        analysis.fit_pixel((9, 0))
    with pytest.raises(InputError, match="pixel must have 2 indices"):
        analysis.fit_pixel((1,))


def test_mask_uncertainty_and_netcdf_dimension_names(tmp_path, cube):
    sigma = np.full(cube.data.shape, 0.1)
    sigma[:, 0, 0] = 0.0  # no uncertainty: those samples are left out
    mask = np.zeros(cube.data.shape, dtype=np.int8)
    mask[:, 1, 1] = 1
    ds = xr.Dataset(
        {
            "flux": (("velocity", "y", "x"), cube.data, {"units": "K"}),
            "sigma": (("velocity", "y", "x"), sigma),
            "bad": (("velocity", "y", "x"), mask),
        },
        coords={"velocity": ("velocity", cube.world[0], {"units": "km/s"})},
    )
    ds.to_netcdf(tmp_path / "cube.nc")
    analysis = Analysis(
        {
            "input": {
                "path": "cube.nc",
                "variable": "flux",
                "fitting_axes": "velocity",
                "uncertainty": {"variable": "sigma"},
                "mask": {"variable": "bad"},
            },
            "model": {"components": [{"type": "Gaussian1D"}], "initial": "guess"},
            "fitter": {"scale_covariance": False},
            "run": {"scheduler": "synchronous", "progress": False},
            "diagnostics": {"mode": "none"},
            "output": {"path": "out", "format": "netcdf"},
        },
        base_dir=tmp_path,
    )
    result = analysis.run()
    assert result.dims == ("y", "x")
    status = result.status
    assert status[0, 0] == Status.NO_VALID_DATA and status[1, 1] == Status.NO_VALID_DATA
    assert analysis.diagnostics_path is None and not (tmp_path / "out" / "diagnostics").exists()
    # Exact 1/sigma weights: errors are those of a 0.1 noise, not rescaled.
    ok = status == Status.OK
    assert np.median(result.errors["amplitude"][ok]) == pytest.approx(0.05, rel=0.5)
    maps = xr.open_dataset(tmp_path / "out" / "maps.nc")
    np.testing.assert_array_equal(maps["mean"].values, result.parameters["mean"])
    maps.close()
    assert analysis.record["exports"] == ["maps.nc"]


def test_spectral_axis_needs_a_wcs(tmp_path, cube):
    xr.Dataset({"flux": (("v", "y", "x"), cube.data)}).to_netcdf(tmp_path / "c.nc")
    with pytest.raises(
        ConfigError,
        match="input.fitting_axes: 'spectral' needs a FITS cube whose WCS has a spectral axis",
    ):
        Analysis(
            {
                "input": {"path": "c.nc", "fitting_axes": "spectral"},
                "model": {"components": [{"type": "Gaussian1D"}]},
                "output": {"path": "o"},
            },
            base_dir=tmp_path,
        ).run()


def test_analysis_arguments():
    with pytest.raises(InputError, match=r"use Analysis.from_yaml\('fit.yaml'\)"):
        Analysis("fit.yaml")
    with pytest.raises(InputError, match="config must be a dict or a validated parfit config"):
        Analysis(42)
    with pytest.raises(InputError, match="is not a parfit analysis folder"):
        Analysis.read(ROOT)


def test_read_result_of_both_layouts(tmp_path, cube):
    import parfit

    streamed = parfit.parallel_fit(
        cube.model,
        cube.data,
        world=cube.world,
        data_unit=cube.unit,
        scheduler="synchronous",
        output=tmp_path / "s.zarr",
    )
    streamed.to_zarr(tmp_path / "x.zarr")
    for store in ("s.zarr", "x.zarr"):
        back = read_result(tmp_path / store)
        assert back.param_names == ("amplitude", "mean", "stddev")
        for name in back.param_names:
            np.testing.assert_array_equal(back.parameters[name], streamed.parameters[name])
        np.testing.assert_array_equal(back.status, streamed.status)
        assert str(back.units["amplitude"]) == "K"
        assert back.model.mean.value.shape == (5, 6)
    with pytest.raises(InputError, match="does not exist"):
        read_result(tmp_path / "none.zarr")


@pytest.mark.slow
def test_run_on_an_existing_scheduler_address(folder):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        (folder / "fit.yaml").write_text(
            GOOD.replace("scheduler: synchronous", f"scheduler: {cluster.scheduler_address}")
        )
        analysis = Analysis.from_yaml(folder / "fit.yaml")
        result = analysis.run()
        assert analysis.record["scheduler"] == cluster.scheduler_address
        assert analysis.record["status_counts"] == {"OK": 28, "NO_VALID_DATA": 2}
    reference = Analysis(
        {
            **parse_config(GOOD, check_files=False).model_dump(mode="json"),
            "output": {"path": "reference"},
        },
        base_dir=folder,
    ).run()
    for name in result.param_names:
        np.testing.assert_allclose(
            result.parameters[name], reference.parameters[name], rtol=1e-12, equal_nan=True
        )


def test_unreachable_scheduler_address_is_an_error(folder):
    (folder / "fit.yaml").write_text(
        GOOD.replace("scheduler: synchronous", "scheduler: tcp://127.0.0.1:1")
    )
    analysis = Analysis.from_yaml(folder / "fit.yaml")
    with pytest.raises(
        InputError,
        match="run.scheduler: cannot connect to the dask scheduler at 'tcp://127.0.0.1:1'",
    ):  # at once, no retries
        analysis.run()
    record = json.loads((folder / "results" / "run.json").read_text())
    assert record["exit_status"] == "error" and "cannot connect" in record["error"]
    from parfit.diagnostics import summarize

    with pytest.raises(
        InputError,
        match=r"holds the record of a run that wrote no maps \(exit "
        r"status error \(InputError: run.scheduler: cannot "
        r"connect",
    ):
        summarize(folder / "results")
