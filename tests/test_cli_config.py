"""The config-driven workflow, driven as a user drives it: ``python -m parfit.cli ...``.

``parfit config`` (template, reference), ``parfit validate`` (every problem
with its file, line and YAML path; exit code 2), ``parfit run`` (the
analysis folder, exit codes 0 / 1 / 3, overwrite and resume),
``parfit inspect`` (text, JSON, plots, one pixel) and
``parfit demo --config``.  Every command runs in a subprocess; the cubes
are made here with :func:`parfit.datasets.gaussian_cube` and written as FITS.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.io import fits

import parfit
from parfit.datasets import gaussian_cube

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent


def parfit_cmd(*args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "parfit.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(out, name):
    """The problem lines of a refused config, after checking the exit and the header."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    body = [line.strip() for line in lines[1:]]
    n = len(body)
    assert lines[0] == f"{n} problem{'s' if n != 1 else ''} in {name}:", out.stderr
    return body


def run_json(folder):
    return json.loads((Path(folder) / "run.json").read_text())


def open_maps(path):
    return xr.open_zarr(path, consolidated=False)


def status_counts(status):
    codes, counts = np.unique(np.asarray(status), return_counts=True)
    return {parfit.Status(int(c)).name: int(n) for c, n in zip(codes, counts)}


def in_kms(ds, name):
    """A map in km/s, whatever unit the store gives it."""
    return (ds[name].values * u.Unit(ds[name].attrs["units"])).to_value(u.km / u.s)


GAUSSIAN = """\
    - type: Gaussian1D
      mean: {value: "0 km/s", bounds: ["-50 km/s", "50 km/s"]}
      stddev: {value: "5 km/s", bounds: ["0.1 km/s", "30 km/s"]}"""


def config_text(
    input_path="cube.fits",
    output="results",
    fitter="",
    run="",
    extra="",
    initial="guess",
    scheduler="synchronous",
):
    """A small config fitting one Gaussian, as YAML text."""
    return (
        f"input: {{path: {input_path}, fitting_axes: spectral}}\n"
        f"model:\n  components:\n{GAUSSIAN}\n"
        f"  initial: {initial}\n"
        + (f"fitter: {fitter}\n" if fitter else "")
        + f"run: {{scheduler: {scheduler}, progress: false{', ' + run if run else ''}}}\n"
        + extra
        + f"output: {{path: {output}}}\n"
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder holding cube.fits (30 x 8 x 8, three blank pixels) for validate."""
    path = tmp_path_factory.mktemp("validate")
    gaussian_cube((30, 8, 8), seed=1, n_blank=3).to_fits(path / "cube.fits")
    return path


# --- parfit config ------------------------------------------------------------------------


def _sections_of(text):
    """{section: [lines]} of a template (a section runs from 'name:' to the next one)."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")) and line.endswith(":"):
            current = line[:-1]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


@pytest.fixture(scope="module")
def template_text(tmp_path_factory):
    out = parfit_cmd("config", cwd=tmp_path_factory.mktemp("template"))
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_config_template_has_every_key_with_a_comment_and_is_valid(template_text):
    from parfit.config import config_schema, parse_config
    from parfit.config.docs import field_rows
    from parfit.config.schema import (
        SECTIONS,
        ParameterConfig,
        component_classes,
        section_class,
    )

    text = template_text
    cfg = parse_config(text, check_files=False)
    schema = config_schema()
    assert list(schema.model_fields) == list(SECTIONS)
    sections = _sections_of(text)
    assert list(sections) == list(SECTIONS)
    lines = text.splitlines()
    for name in SECTIONS:
        cls = section_class(schema.model_fields[name].annotation)
        body = sections[name]
        for key, *_ in field_rows(cls):
            where = [i for i, line in enumerate(body) if line.startswith(f"  {key}:")]
            assert len(where) == 1, (name, key)
            assert body[where[0] - 1].startswith("  # "), (name, key, body[where[0] - 1])
        # The values the template shows are the defaults (optional sections).
        if name in ("fitter", "run", "diagnostics"):
            assert getattr(cfg, name).model_dump() == cls().model_dump(), name
    assert lines[lines.index("input:") - 1].startswith("# ")
    # The parameter keys and every component type with its parameters are named.
    for key, *_ in field_rows(ParameterConfig):
        assert key in text
    for type_name, cls in component_classes().items():
        params = [k for k in cls.model_fields if k not in ("type", "name")]
        line = next(x for x in lines if x.startswith(f"  #   {type_name}: "))
        assert line.startswith(f"  #   {type_name}: {', '.join(params)}")
    assert [c.type for c in cfg.model.components] == ["Gaussian1D", "Const1D"]


def test_config_minimal_is_short_and_valid(tmp_path):
    from parfit.config import parse_config

    out = parfit_cmd("config", "--minimal", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    keys = [line for line in out.stdout.splitlines() if line and not line.startswith("#")]
    assert len(keys) <= 12, keys
    cfg = parse_config(out.stdout, check_files=False)
    assert (cfg.input.path, cfg.output.path) == ("cube.fits", "results")
    assert [c.type for c in cfg.model.components] == ["Gaussian1D"]
    assert {line.rstrip(":") for line in keys if not line.startswith(" ")} == {
        "input",
        "model",
        "output",
    }


def test_config_output_file_is_not_replaced_without_force(tmp_path, template_text):
    from parfit.config.docs import template

    out = parfit_cmd("config", "-o", "fit.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == "wrote fit.yaml\n"
    assert (tmp_path / "fit.yaml").read_text() == template_text

    (tmp_path / "fit.yaml").write_text("# mine\n")
    refused = parfit_cmd("config", "--minimal", "-o", "fit.yaml", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == "Error: fit.yaml exists; pass --force to replace it\n"
    assert (tmp_path / "fit.yaml").read_text() == "# mine\n"

    forced = parfit_cmd("config", "--minimal", "-o", "fit.yaml", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "fit.yaml").read_text() == template(minimal=True)


@pytest.fixture(scope="module")
def reference_page(tmp_path_factory):
    out = parfit_cmd("config", "--reference", cwd=tmp_path_factory.mktemp("reference"))
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_config_reference_lists_every_section_and_key(reference_page):
    from parfit.config import config_schema
    from parfit.config.docs import field_rows
    from parfit.config.schema import SECTIONS, section_class

    assert reference_page.startswith(".. This page is generated from the config schema")
    schema = config_schema()
    for section in SECTIONS:
        head = f"``{section}``\n{'-' * (len(section) + 4)}\n"
        assert head in reference_page
        part = reference_page.split(head)[1].split("\n----")[0]
        for key, *_ in field_rows(section_class(schema.model_fields[section].annotation)):
            assert f"   * - ``{key}``\n" in part, (section, key)


def test_config_reference_does_not_depend_on_import_order(reference_page, tmp_path):
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "from parfit.config.docs import reference_rst; print(reference_rst(), end='')",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert reference_page == fresh.stdout
    # Then the docs page (generated either way) is what `parfit config --reference` writes.
    page = ROOT / "docs" / "config_reference.rst"
    if page.exists():
        assert page.read_text() == reference_page


# --- parfit validate ------------------------------------------------------------------------


def test_validate_a_good_config(folder):
    write(folder / "good.yaml", config_text())
    out = parfit_cmd("validate", "good.yaml", cwd=folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "good.yaml: valid"
    assert "  model:  Gaussian1D (3 parameters, initial: guess)" in lines
    assert "  fitter: batched;  scheduler: synchronous" in lines
    assert "  output: results" in lines
    assert out.stderr == ""


def test_validate_reports_yaml_and_key_problems_at_once(folder):
    write(
        folder / "keys.yaml",
        """
        input:
          path: cube.fits
          fitting_axes: spectral
          hdu: NO
        model:
          components:
            - type: Gaussian1D
              meen: "3 km/s"
            - type: Gausian1D
        fiter:
          name: trf
        run:
          scheduler: local
          chunk_nmax: 10
          memory_limit: 12:30
          n_workers: 0755
          scheduler: local
          dashboard: yes
        diagnostics:
          path: 2024-01-01
        output:
          path: results
        """,
    )
    body = problems(parfit_cmd("validate", "keys.yaml", cwd=folder), "keys.yaml")
    assert len(body) == 10
    assert body[0] == (
        "keys.yaml:4: input.hdu: ambiguous value NO: YAML 1.1 reads it as the "
        'boolean false; write false for a boolean, or quote it ("NO") for text'
    )
    assert body[1] == (
        "keys.yaml:8: model.components[0].meen: unknown key 'meen' (did you "
        "mean 'mean'?) (allowed here: name, type, amplitude, mean, stddev)"
    )
    assert body[2].startswith(
        "keys.yaml:9: model.components[1].type: unknown component type "
        "'Gausian1D' (did you mean 'Gaussian1D'?) (known types: "
        "CircularGaussian2D, Const1D, Const2D, Gaussian1D, "
    )
    assert body[3] == (
        "keys.yaml:10: fiter: unknown key 'fiter' (did you mean 'fitter'?) "
        "(allowed here: input, model, fitter, likelihood, strategy, run, diagnostics, output)"
    )
    assert body[4].startswith(
        "keys.yaml:14: run.chunk_nmax: unknown key 'chunk_nmax' (did you "
        "mean 'chunk_n_max'?) (allowed here: chunk_n_max, scheduler, "
    )
    assert body[5] == (
        "keys.yaml:15: run.memory_limit: ambiguous value 12:30: YAML 1.1 reads "
        'it as a base-60 number; quote it ("12:30") for text, or write the '
        "number in decimal"
    )
    assert body[6] == (
        "keys.yaml:16: run.n_workers: ambiguous value 0755: YAML 1.1 reads a "
        "leading 0 as octal; write it without the leading zeros, or quote it "
        '("0755") for text'
    )
    assert body[7] == (
        "keys.yaml:17: run.scheduler: duplicate key 'scheduler' (first given "
        "at line 13); each key may appear only once"
    )
    assert body[8] == (
        "keys.yaml:18: run.dashboard: ambiguous value yes: YAML 1.1 reads it as "
        'the boolean true; write true for a boolean, or quote it ("yes") for '
        "text"
    )
    assert body[9] == (
        "keys.yaml:20: diagnostics.path: ambiguous value 2024-01-01: YAML reads "
        'it as a date; quote it ("2024-01-01") for text'
    )


def test_validate_reports_bad_values_units_and_bounds_at_once(folder):
    write(
        folder / "values.yaml",
        """
        input:
          path: cube.fits
          fitting_axes: spectral
          unit: km/ss
        model:
          components:
            - type: Gaussian1D
              mean: "4000 m/ss"
            - type: Gaussian1D
              mean: {value: "0 km/s", bounds: ["50 km/s", "-50 km/s"]}
              stddev: {value: "40 km/s", bounds: ["0.1 km/s", "30 km/s"]}
            - type: Gaussian1D
              amplitude:
                value: 1
                unit: Jy/beem
              mean: {value: 0, bounds: [10, 5]}
        run:
          max_failed_fraction: 1.5
          chunk_n_max: 0
        output:
          path: results
          cubes: [model, residuals]
        """,
    )
    body = problems(parfit_cmd("validate", "values.yaml", cwd=folder), "values.yaml")
    assert len(body) == 9
    assert body[0].startswith("values.yaml:4: input.unit: 'km/ss' is not a valid astropy unit (")
    assert body[1].startswith(
        "values.yaml:8: model.components[0].mean: value '4000 m/ss' is "
        'not a number with an optional unit, such as "4000 m/s" ('
    )
    assert "ss is not a valid unit" in body[1]
    assert body[2] == (
        "values.yaml:10: model.components[1].mean.bounds: lower bound must be "
        "below upper bound; got ['50 km/s', '-50 km/s']"
    )
    assert body[3] == (
        "values.yaml:11: model.components[1].stddev: starting value '40 km/s' "
        "is outside its bounds ['0.1 km/s', '30 km/s']"
    )
    assert body[4].startswith(
        "values.yaml:15: model.components[2].amplitude.unit: 'Jy/beem' "
        "is not a valid astropy unit ("
    )
    assert body[5] == (
        "values.yaml:16: model.components[2].mean.bounds: lower bound must be "
        "below upper bound; got [10, 5]"
    )
    assert body[6] == (
        "values.yaml:18: run.max_failed_fraction: Input should be less than or equal to 1; got 1.5"
    )
    assert body[7] == (
        "values.yaml:19: run.chunk_n_max: chunk_n_max must be a whole number >= 1 or 'auto'; got 0"
    )
    assert body[8] == (
        "values.yaml:22: output.cubes[1]: Input should be 'model' or "
        "'residual'; got 'residuals' (did you mean 'residual'?)"
    )


def test_validate_missing_required_keys(folder):
    write(
        folder / "missing.yaml",
        """
        input:
          fitting_axes: 0
        model:
          initial: guess
        """,
    )
    body = problems(parfit_cmd("validate", "missing.yaml", cwd=folder), "missing.yaml")
    assert body == [
        "missing.yaml:1: input.path: missing required key 'path'",
        "missing.yaml:1: output: missing required key 'output'",
        "missing.yaml:3: model.components: missing required key 'components'",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "bad.yaml:1: (top level): the config is empty; start from `parfit config`"),
        (
            "- input\n- model\n",
            "bad.yaml:1: (top level): the config must be a mapping of the sections input, model, "
            "fitter, likelihood, strategy, run, diagnostics, output",
        ),
        (
            "input:\n  path: cube.fits\n   fitting_axes: 0\n",
            "bad.yaml:3: (top level): invalid YAML: mapping values are not allowed here",
        ),
    ],
    ids=["empty", "list", "indentation"],
)
def test_validate_unreadable_documents(tmp_path, text, expected):
    (tmp_path / "bad.yaml").write_text(text)
    body = problems(parfit_cmd("validate", "bad.yaml", cwd=tmp_path), "bad.yaml")
    assert body == [expected]


def test_validate_missing_config_file(tmp_path):
    out = parfit_cmd("validate", "nothere.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "config file 'nothere.yaml' does not exist\n"


def test_validate_reports_missing_input_files(folder):
    write(
        folder / "files.yaml",
        config_text("nothere.fits").replace(
            "fitting_axes: spectral}",
            "fitting_axes: spectral,\n        uncertainty: {path: sigma/none.fits}}",
        ),
    )
    body = problems(parfit_cmd("validate", "files.yaml", cwd=folder), "files.yaml")
    assert body == [
        f"files.yaml:1: input.path: file not found: {folder / 'nothere.fits'}",
        f"files.yaml:2: input.uncertainty: file not found: {folder / 'sigma' / 'none.fits'}",
    ]


def test_validate_checks_the_fitting_axis_against_the_cube(folder):
    write(folder / "axis.yaml", config_text().replace("spectral", "3"))
    body = problems(parfit_cmd("validate", "axis.yaml", cwd=folder), "axis.yaml")
    assert body == [
        "axis.yaml:1: input.fitting_axes: fitting_axes value 3 is out of range "
        "for 3-dimensional data (valid: -3 to 2)"
    ]
    # --no-input checks the file only; --debug shows the traceback.
    out = parfit_cmd("validate", "--no-input", "axis.yaml", cwd=folder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("axis.yaml: valid\n")
    debug = parfit_cmd("--debug", "validate", "axis.yaml", cwd=folder)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "parfit.errors.ConfigError: 1 problem in axis.yaml" in debug.stderr


def test_validate_spectral_axis_needs_a_spectral_wcs(tmp_path):
    import zarr

    data = gaussian_cube((30, 8, 8), seed=1).data
    zarr.open_array(str(tmp_path / "cube.zarr"), mode="w", shape=data.shape, dtype="f8")[...] = data
    write(tmp_path / "fit.yaml", config_text("cube.zarr"))
    body = problems(parfit_cmd("validate", "fit.yaml", cwd=tmp_path), "fit.yaml")
    assert body == [
        "fit.yaml:1: input.fitting_axes: 'spectral' needs a FITS cube whose WCS "
        "has a spectral axis; give the axis number instead"
    ]


def test_validate_two_fitting_axes_for_a_1d_model(folder):
    write(folder / "axes2.yaml", config_text().replace("spectral", "[0, 1]"))
    body = problems(parfit_cmd("validate", "axes2.yaml", cwd=folder), "axes2.yaml")
    assert body == [
        "axes2.yaml:3: model.components: the model takes 1 input(s) but "
        "input.fitting_axes names 2 axis/axes"
    ]


OTHER_CHOICE = """
    input: {path: cube.fits, fitting_axes: spectral}
    model:
      components:
        - type: Gaussian1D
          mean: "0 km/s"
        - type: Polynomial1D
          degree: 1
          c3: 1.0
    fitter:
      name: trf
      engine: numpy
    run:
      scheduler: threads
      n_workers: 2
    output:
      path: results
      overwrite: true
      resume: true
    """


@pytest.fixture(scope="module")
def other_choice(folder):
    write(folder / "choice.yaml", OTHER_CHOICE)
    return problems(parfit_cmd("validate", "choice.yaml", cwd=folder), "choice.yaml")


def test_validate_options_of_another_choice_and_exclusive_modes(other_choice):
    body = other_choice
    assert len(body) == 4
    text = "\n".join(body)
    assert (
        "Polynomial1D with {'degree': 1} has no parameter 'c3'; its parameters are c0, c1" in text
    )
    assert "engine applies only to name: batched, not 'trf'" in text
    assert "n_workers applies only to scheduler: local, not 'threads'" in text
    assert (
        "overwrite and resume exclude each other: resume continues the results in the "
        "folder, overwrite replaces them"
    ) in text


def test_validate_options_of_another_choice_point_at_their_key(other_choice):
    assert [line.split(": ")[0] + ": " + line.split(": ")[1] for line in other_choice] == [
        "choice.yaml:8: model.components[1].c3",
        "choice.yaml:11: fitter.engine",
        "choice.yaml:14: run.n_workers",
        "choice.yaml:18: output.resume",
    ]


def test_validate_tied_expression_naming_an_unknown_parameter(folder):
    write(
        folder / "tied.yaml",
        """
        input: {path: cube.fits, fitting_axes: spectral}
        model:
          components:
            - type: Gaussian1D
            - type: Gaussian1D
              amplitude:
                value: 1
                tied: "amplitude_7 * 2"
        output: {path: results}
        """,
    )
    body = problems(parfit_cmd("validate", "tied.yaml", cwd=folder), "tied.yaml")
    assert body == [
        "tied.yaml:8: model.components[1].amplitude.tied: tied expression "
        "'amplitude_7 * 2' uses unknown name 'amplitude_7'; known names: "
        "amplitude_0, mean_0, stddev_0, amplitude_1, mean_1, stddev_1"
    ]


def test_validate_reports_a_missing_file_together_with_a_typo(folder):
    write(
        folder / "two_rounds.yaml",
        config_text("nothere.fits")
        .replace('mean: {value: "0 km/s"', 'meen: {value: "0 km/s"')
        .replace(', bounds: ["-50 km/s", "50 km/s"]', ""),
    )
    body = problems(parfit_cmd("validate", "two_rounds.yaml", cwd=folder), "two_rounds.yaml")
    assert any("model.components[0].meen: unknown key 'meen'" in line for line in body)
    assert f"two_rounds.yaml:1: input.path: file not found: {folder / 'nothere.fits'}" in body


@pytest.fixture(scope="module")
def unit_clash(tmp_path_factory):
    """A run whose model quantities (K) do not fit the data unit (m): fails at run time."""
    path = tmp_path_factory.mktemp("unit_clash")
    gaussian_cube((30, 8, 8), seed=1).to_fits(path / "cube.fits")
    write(path / "fit.yaml", UNIT_CLASH)
    return path, parfit_cmd("run", "fit.yaml", cwd=path)


UNIT_CLASH = """
    input: {path: cube.fits, fitting_axes: spectral, unit: m}
    model:
      components:
        - type: Gaussian1D
          amplitude: "2 K"
          mean: "0 km/s"
          stddev: "5 km/s"
    run: {scheduler: synchronous, progress: false}
    output: {path: results}
    """


def test_validate_catches_a_data_unit_the_model_cannot_use(unit_clash):
    path, _ = unit_clash
    body = problems(parfit_cmd("validate", "fit.yaml", cwd=path), "fit.yaml")
    assert len(body) == 1 and "'K'" in body[0] and "'m'" in body[0]


# --- parfit run ---------------------------------------------------------------------------

EVERY_OPTION = """
    # Every option of the schema (weights and variable exclude uncertainty and hdu).
    input:
      path: ../data/cube.fits
      hdu: 0
      fitting_axes: spectral
      unit: mK
      mask: {path: ../data/mask.fits, hdu: 0}
      uncertainty: ../data/sigma.fits
    model:
      components:
        - type: Gaussian1D
          name: line
          amplitude: {value: 2.0, bounds: [0, 10]}
          mean: {value: "0 km/s", bounds: ["-50000 m/s", "50 km/s"]}
          stddev: {value: 5000, unit: m/s, bounds: [100, 30000]}
        - type: Gaussian1D
          name: ghost
          amplitude: {value: 0, fixed: true}
          mean: {value: "0 km/s", tied: "mean_0"}
          stddev: {value: "5 km/s", tied: "stddev_0"}
      initial: guess
    fitter:
      name: batched
      ftol: 1e-10
      xtol: 1e-10
      gtol: 1e-10
      max_nfev: 500
      scale_covariance: false
      engine: numpy
      factor: 0.5
    run:
      chunk_n_max: 16
      scheduler: threads
      n_workers: null
      threads_per_worker: null
      memory_limit: null
      dashboard: false
      preserve_native_chunks: false
      progress: true
      max_failed_fraction: 0.2
    diagnostics:
      mode: error+warn
      path: diag
    output:
      path: results
      format: netcdf
      overwrite: false
      resume: false
      cubes: [model, residual]
    """
SIGMA = 0.1
N_MASKED_CHANNELS = 3


def test_run_with_every_option(tmp_path):
    from parfit.config import config_hash, load_config

    cube = gaussian_cube((30, 8, 8), seed=1, n_blank=3)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cube.to_fits(data_dir / "cube.fits")
    fits.PrimaryHDU(np.full(cube.data.shape, SIGMA, dtype=np.float32)).writeto(
        data_dir / "sigma.fits"
    )
    mask = np.zeros(cube.data.shape, dtype=np.uint8)
    mask[:N_MASKED_CHANNELS] = 1
    mask[:, 0, 1] = 1  # one pixel wholly masked: NO_VALID_DATA
    fits.PrimaryHDU(mask).writeto(data_dir / "mask.fits")
    write(tmp_path / "analysis" / "fit.yaml", EVERY_OPTION)

    # Relative paths are relative to the config's folder, not to the current one.
    out = parfit_cmd("run", "analysis/fit.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "100%" in out.stderr  # run.progress: true
    assert "64 fits in " in out.stdout
    assert ": OK=60, NO_VALID_DATA=4\n" in out.stdout
    assert "failed: 0 of 60 attempted (0.00 %, limit 20.00 %)" in out.stdout
    results = tmp_path / "analysis" / "results"
    assert sorted(os.listdir(results)) == ["config.yaml", "maps.nc", "maps.zarr", "run.json"]
    assert (tmp_path / "analysis" / "diag" / "manifest.csv").is_file()
    assert not (tmp_path / "results").exists()

    # config.yaml is the config as run: valid, with absolute paths and the same hash.
    record = run_json(results)
    as_run = load_config(results / "config.yaml")
    assert Path(as_run.input.path).resolve() == data_dir / "cube.fits"
    assert Path(as_run.input.mask["path"]).resolve() == data_dir / "mask.fits"
    assert (
        as_run.fitter.model_dump()
        == load_config(tmp_path / "analysis" / "fit.yaml").fitter.model_dump()
    )
    assert config_hash(as_run) == record["config_hash"]
    assert config_hash(load_config(tmp_path / "analysis" / "fit.yaml")) == record["config_hash"]

    # run.json
    assert record["parfit_version"] == parfit.__version__
    assert record["config_hash"].startswith("sha256:") and len(record["config_hash"]) == 71
    assert Path(record["input"]["path"]).resolve() == data_dir / "cube.fits"
    fingerprint = record["input"]["fingerprint"]
    assert isinstance(fingerprint, str) and len(fingerprint) == 32
    assert record["input_fingerprint"] == fingerprint
    assert record["output"] == str(results)
    assert record["diagnostics_path"] == str(tmp_path / "analysis" / "diag")
    assert set(record["timings"]) == {"open_s", "fit_s", "export_s", "total_s"}
    assert all(isinstance(v, (int, float)) and v >= 0 for v in record["timings"].values())
    assert record["timings"]["total_s"] >= record["timings"]["fit_s"]
    assert (record["n_fits"], record["n_attempted"], record["n_failed"]) == (64, 60, 0)
    assert record["failed_fraction"] == 0.0 and record["max_failed_fraction"] == 0.2
    assert record["exit_status"] == "ok" and record["complete"] is True
    assert (record["blocks_fitted"], record["blocks_resumed"]) == (4, 0)
    assert record["exports"] == ["maps.nc"] and record["failed_blocks"] == []
    assert record["resumed"] is False

    ds = open_maps(results / "maps.zarr")
    assert (
        record["status_counts"]
        == status_counts(ds["status"].values)
        == {"OK": 60, "NO_VALID_DATA": 4}
    )
    assert ds["status"].values[0, 1] == parfit.Status.NO_VALID_DATA  # the masked pixel
    ok = ds["status"].values == parfit.Status.OK
    options = ds.attrs["parfit"]["options"]
    assert options["fitter"] == (
        "batched trust-region reflective (ftol=1e-10, xtol=1e-10, "
        "gtol=1e-10, max_nfev=500, factor=0.5, engine='numpy', "
        "scale_covariance=False)"
    )
    assert (options["chunk_n_max"], options["data_unit"]) == (16, "mK")
    assert options["mask"] is True and options["weights"] is True

    # The fit: means and widths in km/s (the WCS is in m/s), amplitudes in the unit given.
    assert ds["amplitude_0"].attrs["units"] == "mK"
    assert np.abs(in_kms(ds, "mean_0") - cube.truth["mean"])[ok].max() < 1.0
    assert np.abs(in_kms(ds, "stddev_0") - cube.truth["stddev"])[ok].max() < 1.0
    assert np.abs(ds["amplitude_0"].values - cube.truth["amplitude"])[ok].max() < 0.3
    # Fixed and tied parameters of the second component.
    assert (ds["amplitude_1"].values[ok] == 0).all()
    np.testing.assert_array_equal(in_kms(ds, "mean_1"), in_kms(ds, "mean_0"))
    np.testing.assert_array_equal(in_kms(ds, "stddev_1"), in_kms(ds, "stddev_0"))

    # The cubes, in the input's shape; mask and uncertainty shape the statistic.
    data = cube.data.astype(np.float32).astype(np.float64)
    assert ds["model"].shape == ds["residual"].shape == data.shape
    np.testing.assert_allclose(
        (ds["model"] + ds["residual"]).values[:, ok], data[:, ok], rtol=0, atol=1e-9
    )
    chi2 = ((ds["residual"].values[N_MASKED_CHANNELS:] / SIGMA) ** 2).sum(axis=0)
    np.testing.assert_allclose(ds["statistic"].values[ok], chi2[ok], rtol=1e-6)

    # maps.nc holds the same maps.
    with xr.open_dataset(results / "maps.nc") as nc:
        for name in ("amplitude_0", "mean_0", "stddev_0", "mean_0_error", "status", "statistic"):
            np.testing.assert_array_equal(nc[name].values, ds[name].values)

    # A second run into the same folder is refused, naming the two ways on.
    again = parfit_cmd("run", "analysis/fit.yaml", cwd=tmp_path)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert (
        f"error: output.path '{results}' holds the results of an earlier run (run.json, "
        f"config.yaml, maps.zarr, maps.nc); set output.overwrite: true to replace them, "
        f"output.resume: true to finish an interrupted run, or choose another "
        f"output.path"
    ) in again.stderr
    assert run_json(results) == record


@pytest.mark.slow
def test_overwrite_replaces_the_run_and_keeps_foreign_files(tmp_path):
    gaussian_cube((30, 8, 8), seed=1, n_blank=3).to_fits(tmp_path / "cube.fits")
    write(tmp_path / "fit.yaml", config_text())
    first = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    results = tmp_path / "results"
    run_id = run_json(results)["run_id"]
    (results / "notes.txt").write_text("mine")
    (results / "mine").mkdir()
    (results / "mine" / "a.txt").write_text("also mine")
    forced = parfit_cmd("run", "--overwrite", "fit.yaml", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    record = run_json(results)
    assert record["run_id"] != run_id and record["exit_status"] == "ok"
    assert (record["blocks_fitted"], record["blocks_resumed"]) == (1, 0)
    assert (results / "notes.txt").read_text() == "mine"
    assert (results / "mine" / "a.txt").read_text() == "also mine"
    assert sorted(os.listdir(results)) == [
        "config.yaml",
        "diagnostics",
        "maps.zarr",
        "mine",
        "notes.txt",
        "run.json",
    ]


def test_config_hash_is_the_same_for_the_same_analysis(tmp_path):
    from parfit.config import config_hash, load_config, validate_config

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cube.fits").write_bytes(b"")
    here = load_config(
        write(tmp_path / "fit.yaml", config_text("data/cube.fits", output="sub/results"))
    )
    there = load_config(write(tmp_path / "sub" / "fit.yaml", config_text("../data/cube.fits")))
    assert config_hash(here) == config_hash(there)
    # What `parfit run --resume` records (cli.run rebuilds the config with resume: true).
    data = here.model_dump(mode="json")
    data["output"]["resume"] = True
    resumed = validate_config(data, base_dir=tmp_path, source="fit.yaml")
    assert config_hash(resumed) == config_hash(here)


def test_run_exits_3_when_too_many_fits_fail(tmp_path):
    gaussian_cube((30, 8, 8), seed=1, n_blank=3).to_fits(tmp_path / "cube.fits")
    write(
        tmp_path / "fit.yaml",
        config_text(fitter="{max_nfev: 1}", initial="model", run="max_failed_fraction: 0.05"),
    )
    out = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "failed: 61 of 61 attempted (100.00 %, limit 5.00 %)" in out.stdout
    assert (
        f"more fits failed than run.max_failed_fraction allows; see `parfit inspect "
        f"{tmp_path / 'results'}`"
    ) in out.stderr
    assert "Traceback" not in out.stderr
    record = run_json(tmp_path / "results")
    assert record["exit_status"] == "too_many_failures"
    assert (record["n_failed"], record["n_attempted"], record["failed_fraction"]) == (61, 61, 1.0)
    ds = open_maps(tmp_path / "results" / "maps.zarr")
    assert (
        status_counts(ds["status"].values)
        == record["status_counts"]
        == {"NOT_CONVERGED": 61, "NO_VALID_DATA": 3}
    )


def test_blank_pixels_are_not_failures(tmp_path):
    gaussian_cube((30, 8, 8), seed=2, n_blank=40).to_fits(tmp_path / "cube.fits")
    write(tmp_path / "fit.yaml", config_text(run="max_failed_fraction: 0.05"))
    out = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    record = run_json(tmp_path / "results")
    assert record["status_counts"] == {"OK": 24, "NO_VALID_DATA": 40}
    assert (record["n_attempted"], record["n_failed"], record["exit_status"]) == (24, 0, "ok")


def test_a_model_the_data_unit_cannot_use_is_refused_before_the_run(unit_clash):
    path, out = unit_clash
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert (
        "the model does not suit the input: cannot convert parameter 'amplitude' from K to m"
    ) in out.stderr
    assert not (path / "results").exists()


@pytest.fixture(scope="module")
def runtime_failure(tmp_path_factory):
    """A run that fails after it started: its diagnostics folder holds another run's."""
    path = tmp_path_factory.mktemp("runtime_failure")
    gaussian_cube((30, 8, 8), seed=1).to_fits(path / "cube.fits")
    extra = "diagnostics: {mode: all, path: diag}\n"
    write(path / "first.yaml", config_text(output="first", extra=extra))
    assert parfit_cmd("run", "first.yaml", cwd=path).returncode == 0
    write(path / "fit.yaml", config_text(extra=extra))
    return path, parfit_cmd("run", "fit.yaml", cwd=path)


def test_runtime_error_exits_1_without_traceback(runtime_failure):
    path, out = runtime_failure
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert (
        f"error: diagnostics_path '{path / 'diag'}' already holds diagnostics of another "
        "run" in out.stderr
    )
    assert "(run with parfit --debug ... for the traceback)" in out.stderr
    assert not (path / "results" / "maps.zarr").exists()
    record = run_json(path / "results")
    assert record["exit_status"] == "error"
    assert record["error"].startswith("OutputExistsError: diagnostics_path")


def test_a_failed_run_does_not_block_the_next(runtime_failure, tmp_path):
    import shutil

    path, out = runtime_failure
    assert out.returncode == 1
    shutil.copytree(path, tmp_path / "copy")
    write(tmp_path / "copy" / "fit.yaml", config_text())  # the diagnostics path fixed
    again = parfit_cmd("run", "fit.yaml", cwd=tmp_path / "copy")
    assert again.returncode == 0, again.stderr
    assert run_json(tmp_path / "copy" / "results")["exit_status"] == "ok"


def test_run_with_the_scipy_fitter(tmp_path):
    cube = gaussian_cube((30, 8, 8), seed=1, n_blank=3)
    cube.to_fits(tmp_path / "cube.fits")
    write(
        tmp_path / "fit.yaml",
        config_text(
            fitter="{name: trf, ftol: 1e-10, xtol: 1e-10, gtol: 1e-10, max_nfev: 200}",
            scheduler="threads",
            run="chunk_n_max: 32, max_failed_fraction: 0",
        ),
    )
    out = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ds = open_maps(tmp_path / "results" / "maps.zarr")
    assert ds.attrs["parfit"]["options"]["fitter"].startswith(
        "scipy.optimize.least_squares(method='trf', ftol=1e-10, xtol=1e-10, gtol=1e-10, "
        "max_nfev=200"
    )
    ok = ds["status"].values == parfit.Status.OK
    assert ok.sum() == 61
    assert np.abs(in_kms(ds, "mean") - cube.truth["mean"])[ok].max() < 1.0
    assert run_json(tmp_path / "results")["blocks_fitted"] == 2


@pytest.mark.slow
def test_run_on_a_local_cluster(tmp_path):
    cube = gaussian_cube((30, 8, 8), seed=1, n_blank=3)
    cube.to_fits(tmp_path / "cube.fits")
    write(
        tmp_path / "fit.yaml",
        config_text(
            scheduler="local",
            run='n_workers: 1, threads_per_worker: 1, memory_limit: "1GiB", '
            "dashboard: false, chunk_n_max: 32",
        ),
    )
    out = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    record = run_json(tmp_path / "results")
    assert record["status_counts"] == {"OK": 61, "NO_VALID_DATA": 3}
    assert record["blocks_fitted"] == 2
    ds = open_maps(tmp_path / "results" / "maps.zarr")
    ok = ds["status"].values == parfit.Status.OK
    assert np.abs(in_kms(ds, "mean") - cube.truth["mean"])[ok].max() < 1.0


@pytest.mark.slow
def test_local_cluster_without_dashboard_binds_no_dashboard_port(tmp_path):
    gaussian_cube((30, 8, 8), seed=1).to_fits(tmp_path / "cube.fits")
    write(
        tmp_path / "fit.yaml",
        config_text(scheduler="local", run="n_workers: 1, threads_per_worker: 1, dashboard: false"),
    )
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8787))  # as another run (or anything) would
            holder.listen(1)
        except OSError:
            pass  # already taken: the same situation
        out = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    finally:
        holder.close()
    assert out.returncode == 0, out.stderr
    assert "8787" not in out.stderr


@pytest.mark.slow
def test_unreachable_scheduler_fails_within_seconds(tmp_path):
    gaussian_cube((30, 8, 8), seed=1).to_fits(tmp_path / "cube.fits")
    write(tmp_path / "fit.yaml", config_text(scheduler='"tcp://127.0.0.1:1"'))
    start = time.monotonic()
    out = parfit_cmd("run", "fit.yaml", cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert (
        "error: run.scheduler: cannot connect to the dask scheduler at 'tcp://127.0.0.1:1'"
    ) in out.stderr
    assert elapsed < 30
    assert not (tmp_path / "results" / "maps.zarr").exists()


# --- resume after a kill ---------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_the_maps_of_an_uninterrupted_run(tmp_path):
    from parfit.store import DONE_NAME, read_done

    gaussian_cube((30, 60, 40), seed=4, n_blank=5).to_fits(tmp_path / "cube.fits")
    slow = config_text(fitter="{name: trf}", run="chunk_n_max: 40")  # 60 blocks, one by one
    write(tmp_path / "fit.yaml", slow)
    store = tmp_path / "results" / "maps.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parfit.cli", "run", "fit.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (store / DONE_NAME / "zarr.json").exists() and read_done(store).sum() >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = read_done(store)
    n_done, n_blocks = int(done.sum()), int(done.size)
    assert n_blocks == 60 and 3 <= n_done < n_blocks

    killed = parfit_cmd("inspect", "results", cwd=tmp_path)
    assert killed.returncode == 0, killed.stderr
    assert f"complete: NO ({n_done} of 60 blocks done;" in killed.stdout

    refused = parfit_cmd("run", "fit.yaml", cwd=tmp_path)
    assert refused.returncode == 1 and "output.resume: true" in refused.stderr
    resumed = parfit_cmd("run", "--resume", "fit.yaml", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = run_json(tmp_path / "results")
    assert (record["blocks_resumed"], record["blocks_fitted"]) == (n_done, n_blocks - n_done)
    assert record["resumed"] is True and record["complete"] is True
    assert record["exit_status"] == "ok"

    write(
        tmp_path / "ref.yaml",
        config_text(
            fitter="{name: trf}", run="chunk_n_max: 40", scheduler="threads", output="reference"
        ),
    )
    reference = parfit_cmd("run", "ref.yaml", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    got, want = open_maps(store), open_maps(tmp_path / "reference" / "maps.zarr")
    assert status_counts(got["status"].values) == {"OK": 2395, "NO_VALID_DATA": 5}
    for name in ("amplitude", "mean", "stddev", "mean_error", "statistic", "status", "nfev"):
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


SITECUSTOMIZE = """
import sys
sys.path.insert(0, {tests!r})
from parfit.models import register_model
from _slow_model import SlowGaussian
register_model(SlowGaussian)     # a model that sleeps, so a signal lands inside a fit
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "scheduler, fitter, signum",
    [
        ("threads", "batched", signal.SIGINT),
        ("synchronous", "batched", signal.SIGINT),
        ("synchronous", "trf", signal.SIGINT),
        ("threads", "batched", signal.SIGTERM),
    ],
)
def test_ctrl_c_stops_the_run_with_exit_130(tmp_path, scheduler, fitter, signum):
    from parfit.store import DONE_NAME, read_done

    site = tmp_path / "site"
    write(site / "sitecustomize.py", SITECUSTOMIZE.format(tests=str(ROOT / "tests")))
    gaussian_cube((30, 4, 8), seed=5).to_fits(tmp_path / "cube.fits")
    write(
        tmp_path / "fit.yaml",
        config_text(
            fitter=f"{{name: {fitter}}}", run="chunk_n_max: 4", initial="model", scheduler=scheduler
        ).replace("Gaussian1D", "SlowGaussian"),
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    )
    store = tmp_path / "results" / "maps.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parfit.cli", "run", "fit.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            # The records' metadata, not just their folder: the store's arrays are
            # created concurrently, so a folder may exist a moment before its file.
            if (store / DONE_NAME / "zarr.json").exists() and read_done(store).sum() >= 1:
                break
            time.sleep(0.02)
        time.sleep(0.15)  # into the fits of the next block (0.4 s or more)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    statuses = status_counts(open_maps(store)["status"].values)
    assert "FIT_ERROR" not in statuses, statuses
    what, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    assert proc.returncode == code, (stdout, stderr)
    assert stderr.endswith(
        f"{what}; the blocks already fitted are kept in the output "
        "store: run again with output.resume: true (or --resume) to go "
        "on\n"
    )
    record = run_json(tmp_path / "results")
    assert record["exit_status"] == "interrupted"
    assert 1 <= read_done(store).sum() < 8


# --- parfit inspect --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """An analysis folder where two fits failed (too few samples): exit code 3 at 3 %."""
    path = tmp_path_factory.mktemp("inspect")
    cube = gaussian_cube((30, 8, 8), seed=3, n_blank=3)
    cube.data[2:, 0, 0] = np.nan
    cube.data[2:, 1, 2] = np.nan
    cube.to_fits(path / "cube.fits")
    write(
        path / "fit.yaml",
        config_text(run="max_failed_fraction: 0.03", extra="diagnostics: {mode: error+warn}\n"),
    )
    out = parfit_cmd("run", "fit.yaml", cwd=path)
    return path, out


def test_run_with_a_few_real_failures_over_the_limit_exits_3(failed_run):
    path, out = failed_run
    assert out.returncode == 3, out.stderr
    assert ": OK=59, NO_VALID_DATA=3, TOO_FEW_SAMPLES=2\n" in out.stdout
    assert "failed: 2 of 61 attempted (3.28 %, limit 3.00 %)" in out.stdout
    record = run_json(path / "results")
    assert record["exit_status"] == "too_many_failures"
    assert record["n_failed"] == 2
    assert sorted(os.listdir(path / "results" / "diagnostics")) == ["0_0", "1_2", "manifest.csv"]


def test_inspect_analysis_folder_text_plots_and_one_pixel(failed_run):
    path, _ = failed_run
    out = parfit_cmd("inspect", "--plot", "--pixel", "2,3", "results", cwd=path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("parfit analysis folder: results\n")
    assert "exit status too_many_failures" in text
    assert "  OK                      59   92.2%  ok" in text
    assert "  TOO_FEW_SAMPLES          2    3.1%  fewer valid samples than free parameters" in text
    assert "  NO_VALID_DATA            3    4.7%" in text
    assert (
        "most frequent error messages with example pixels (messages from "
        f"{path / 'results' / 'diagnostics'}):\n"
        "        2 fits  2 valid samples for 3 free parameters\n"
        "          e.g. (0, 0), (1, 2)\n"
    ) in text
    plots = path / "results" / "plots"
    assert f"wrote 4 PNG(s) to {Path('results') / 'plots'}" in text
    for name in ("amplitude", "mean", "stddev", "status", "pixel_2_3"):
        assert (plots / f"{name}.png").read_bytes()[:8] == PNG, name
    line = next(x for x in text.splitlines() if x.startswith("pixel (2, 3): "))
    assert line.startswith("pixel (2, 3): OK; ")
    values = dict(item.split("=") for item in line.split("; ", 1)[1].split(", "))
    ds = open_maps(path / "results" / "maps.zarr")
    assert set(values) == {"amplitude", "mean", "stddev"}
    for name, value in values.items():
        assert float(value) == pytest.approx(float(ds[name].values[2, 3]), rel=1e-5), name
    assert f"wrote {Path('results') / 'plots' / 'pixel_2_3.png'}" in text


@pytest.mark.parametrize(
    "target, kind",
    [
        ("results", "analysis"),
        ("results/maps.zarr", "output"),
    ],
)
def test_inspect_json_counts_match_the_maps(failed_run, target, kind):
    path, _ = failed_run
    out = parfit_cmd("inspect", "--json", target, cwd=path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["kind"] == kind
    errors = {g["message"]: g for g in summary["errors"]}
    ds = open_maps(path / "results" / "maps.zarr")
    assert (
        summary["status_counts"]
        == status_counts(ds["status"].values)
        == {"OK": 59, "NO_VALID_DATA": 3, "TOO_FEW_SAMPLES": 2}
    )
    assert summary["n_failed"] == 2 and summary["n_not_attempted"] == 3
    assert summary["percentiles"]["mean"]["p50"] == pytest.approx(
        float(np.median(ds["mean"].values[ds["status"].values == 1]))
    )
    message = (
        "2 valid samples for 3 free parameters"
        if kind == "analysis"
        else "TOO_FEW_SAMPLES: fewer valid samples than free parameters"
    )
    assert errors[message]["pixels"] == [[0, 0], [1, 2]]
    if kind == "analysis":
        assert summary["run"] == run_json(path / "results")


def test_inspect_store_and_diagnostics_text(failed_run):
    path, _ = failed_run
    store = parfit_cmd("inspect", "results/maps.zarr", cwd=path)
    assert store.returncode == 0, store.stderr
    assert store.stdout.startswith("parfit output store: results/maps.zarr (streamed layout)\n")
    assert "  64 fits, map shape (8, 8), dims (dim_1, dim_2)" in store.stdout
    assert "  complete: yes (1 of 1 blocks done)" in store.stdout
    assert (
        "        2 fits  TOO_FEW_SAMPLES: fewer valid samples than free parameters\n"
        "          e.g. (0, 0), (1, 2)\n"
    ) in store.stdout
    diag = parfit_cmd("inspect", "results/diagnostics", cwd=path)
    assert diag.returncode == 0, diag.stderr
    assert diag.stdout.startswith(
        "parfit diagnostics folder: results/diagnostics\n"
        "  2 fit folder(s) listed in manifest.csv (run "
    )
    assert (
        "status of the fits with a folder:\n"
        "  TOO_FEW_SAMPLES          2  100.0%  fewer valid samples than free parameters\n"
    ) in diag.stdout
    assert (
        "        2 fits  2 valid samples for 3 free parameters\n          e.g. 0_0, 1_2"
    ) in diag.stdout


@pytest.fixture(scope="module")
def pixel_of_a_store(failed_run):
    path, _ = failed_run
    return path, parfit_cmd("inspect", "--pixel", "2,3", "results/maps.zarr", cwd=path)


def test_inspect_bad_uses(failed_run, pixel_of_a_store):
    path, _ = failed_run
    _, bare = pixel_of_a_store
    assert bare.returncode == 1
    assert (
        "Error: --pixel re-fits from the input named in the config, so it needs the "
        "analysis folder of `parfit run` (with config.yaml); results/maps.zarr is not "
        "one"
    ) in bare.stderr
    assert "Traceback" not in bare.stderr

    usage = parfit_cmd("inspect", "--pixel", "abc", "results", cwd=path)
    assert usage.returncode == 2
    assert (
        "Error: Invalid value for '--pixel': expected comma-separated indices such as "
        "12,40; got 'abc'"
    ) in usage.stderr

    missing = parfit_cmd("inspect", "nothere", cwd=path)
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        "error: summarize: 'nothere' does not exist; expected a "
        "parfit output store (zarr), an analysis folder with "
        "run.json, or a diagnostics folder with manifest.csv\n"
    )
    assert "Traceback" not in missing.stderr


def test_inspect_pixel_of_a_store_refuses_before_writing(pixel_of_a_store):
    path, bare = pixel_of_a_store
    assert bare.returncode == 1
    assert not (path / "results" / "maps-plots").exists()
    assert bare.stdout == ""


# --- parfit demo --config ----------------------------------------------------------------------


@pytest.mark.slow
def test_demo_config_validates_and_runs_to_the_demo_maps(tmp_path):
    out = parfit_cmd(
        "demo", "--size", "16", "--channels", "20", "--config", "-o", "demo", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    demo = tmp_path / "demo"
    assert {"cube.fits", "fit.yaml", "maps.zarr"} <= set(os.listdir(demo))
    with fits.open(demo / "cube.fits") as hdul:
        assert hdul[0].data.shape == (20, 16, 16)
    valid = parfit_cmd("validate", "demo/fit.yaml", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith("demo/fit.yaml: valid\n")
    run = parfit_cmd("run", "--no-progress", "demo/fit.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "OK=248, NO_VALID_DATA=8" in run.stdout
    got = open_maps(demo / "results" / "maps.zarr")
    want = open_maps(demo / "maps.zarr")
    np.testing.assert_array_equal(got["status"].values, want["status"].values)
    ok = want["status"].values == parfit.Status.OK
    assert got["mean"].attrs["units"] == "km / s"  # the demo's maps are in km/s too
    for name in ("amplitude", "mean", "stddev"):
        # The FITS cube holds float32 data: the same minimum, to the solver's tolerance.
        np.testing.assert_allclose(
            got[name].values[ok], want[name].values[ok], rtol=1e-3, atol=1e-4, err_msg=name
        )
