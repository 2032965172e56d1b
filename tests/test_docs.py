"""The documentation runs: notebooks, the Sphinx build, docs pages and docstring examples.

* the notebooks (``notebooks/*.ipynb``) are executed with nbclient and their
  outputs checked;
* the Sphinx docs build with warnings as errors;
* every ``>>>`` example in the docs pages and in the docstrings of the public
  modules runs and prints what it shows.
"""

import ast
import doctest
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCTEST_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


# --- the notebook -------------------------------------------------------------


def _kernel_env(tmp_path):
    """Environment in which the 'python3' kernel is this interpreter's ipykernel.

    ipykernel normally provides the 'python3' kernelspec; if this environment
    has none (or it points elsewhere), a kernelspec running ``sys.executable``
    is written under ``tmp_path`` and put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    env = {}
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        argv0 = spec.argv[0]
        usable = argv0 in ("python", "python3", sys.executable)
    except NoSuchKernel:
        usable = False
    if not usable:
        kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3",
                    "language": "python",
                }
            )
        )
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(tmp_path / "jupyter")] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]
        )
    return env


def _cell_text(cell):
    """All text a code cell printed or displayed as text/plain."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _tagged(nb, tag):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def _run_notebook(path, tmp_path, monkeypatch):
    """Execute the notebook at ``path`` in ``tmp_path/run``; return it and that folder."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for key, value in _kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    workdir = tmp_path / "run"
    workdir.mkdir()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError on any error
    return nb, workdir


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nb, _ = _run_notebook(NOTEBOOK, tmp_path, monkeypatch)

    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert errors == []

    fit = _cell_text(_tagged(nb, "fit"))
    assert "<FitResult 576 fits of shape (24, 24), 572 succeeded" in fit
    assert "fits: 576 | succeeded: 572" in fit

    summary = _cell_text(_tagged(nb, "summary"))
    assert "parfit result: 576 fits, map shape (24, 24)" in summary
    assert "NO_VALID_DATA            4" in summary

    truth = _cell_text(_tagged(nb, "truth"))
    assert "{<Status.OK: 1>: 572, <Status.NO_VALID_DATA: 4>: 4}" in truth

    assert "amplitude_error" in _cell_text(_tagged(nb, "xarray"))

    diagnostics = _cell_text(_tagged(nb, "diagnostics"))
    assert "['03_17', 'manifest.csv']" in diagnostics
    assert "03_17,3 17,6,BAD_START" in diagnostics

    assert "refused: diagnostics_path" in _cell_text(_tagged(nb, "overwrite"))

    astropy = _cell_text(_tagged(nb, "astropy"))
    assert astropy.count("same as parallel_fit_dask: True") == 3

    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 2
    assert nb.cells[1].outputs[0].text.startswith("parfit ")


# --- the Sphinx build ---------------------------------------------------------------


@pytest.mark.slow
def test_sphinx_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    for page in (
        "index",
        "quickstart",
        "migrating",
        "models",
        "diagnostics",
        "results",
        "config",
        "config_reference",
        "starts_and_selection",
        "api",
    ):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    for anchor in (
        "parfit.parallel_fit",
        "parfit.FitResult",
        "parfit.Status",
        "parfit.models.Model",
        "parfit.models.Gaussian1D",
        "parfit.fitters.ScipyFitter",
        "parfit.datasets.gaussian_cube",
        "parfit.diagnostics.read_manifest",
        "parfit.errors.OutputExistsError",
        "parfit.errors.ConfigError",
        "parfit.config.load_config",
        "parfit.config.build_model",
        "parfit.analysis.Analysis",
        "parfit.analysis.Analysis.read",
        "parfit.diagnostics.summarize",
        "parfit.diagnostics.Summary",
        "parfit.diagnostics.plot_maps",
        "parfit.selection.SelectionResult",
        "parfit.selection.read_selection",
        "parfit.datasets.components_cube",
        "parfit.datasets.velocity_field_cube",
    ):
        assert f'id="{anchor}"' in api, anchor
    # The status table is generated from parfit.status, so it lists every code.
    from parfit import Status

    diagnostics = (out / "diagnostics.html").read_text()
    for status in Status:
        assert status.name in diagnostics, status.name


# --- examples in the docs pages and the docstrings -------------------------------------


# Examples register models: clean_registry (conftest.py) keeps them out of other tests.


DOC_PAGES = [
    "index",
    pytest.param("quickstart", marks=pytest.mark.slow),
    "migrating",
    "solver",
    "large_cubes",
    "joint",
    "likelihood",
    "starts_and_selection",
    "models",
    "diagnostics",
    "results",
    "config",
    "guarantees",
]


@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_page_examples(page, tmp_path, monkeypatch, clean_registry):
    monkeypatch.chdir(tmp_path)
    path = DOCS / f"{page}.rst"
    result = doctest.testfile(
        str(path),
        module_relative=False,
        optionflags=DOCTEST_FLAGS,
        raise_on_error=False,
        report=True,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} example(s) of {path.name} failed (see output)"
    if page != "index":
        assert result.attempted > 0


def _public_modules():
    """The modules whose docstring examples are run: every module of
    ``parfit.models``, ``parfit.fitters`` and ``parfit.config``, and the other
    public ones."""
    import pkgutil

    names = [
        "parfit.fit",
        "parfit.engine.plan",
        "parfit.store.reader",
        "parfit.result",
        "parfit.models.parameters",
        "parfit.models._expr",
        "parfit.datasets",
        "parfit.io",
        "parfit.diagnostics",
        "parfit.diagnostics.folders",
        "parfit.diagnostics.paths",
        "parfit.diagnostics.summary",
        "parfit.diagnostics.plots",
        "parfit.analysis",
    ]
    for package in ("parfit.models", "parfit.fitters", "parfit.config"):
        names.append(package)
        pkg = importlib.import_module(package)
        names += sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__))
    return names


# Modules that have no docstring examples yet; every other one must have some.
MODULES_WITHOUT_EXAMPLES = {
    "parfit.fitters",
    "parfit.fitters.base",
    "parfit.io",
    "parfit.diagnostics",
    "parfit.diagnostics.paths",
}


def test_config_package_exports_what_the_api_page_documents():
    """``parfit.config`` exports exactly its section of api.rst; the rest of the
    package is reached through its modules (schema, validate, build, docs)."""
    import parfit.config

    section = (DOCS / "api.rst").read_text().split(".. currentmodule:: parfit.config\n")[1]
    documented = [
        line.split("::")[1].strip()
        for line in section.split("\n.. automodule::")[0].splitlines()
        if line.startswith(".. autofunction::")
    ]
    assert documented and sorted(parfit.config.__all__) == sorted(documented)
    assert not hasattr(parfit.config, "__getattr__")


@pytest.mark.parametrize("name", _public_modules())
def test_docstring_examples(name, tmp_path, monkeypatch, clean_registry):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=DOCTEST_FLAGS, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
    if name not in MODULES_WITHOUT_EXAMPLES:
        assert result.attempted > 0, f"{name} has no docstring examples"


def test_code_blocks_of_index_run(tmp_path, monkeypatch):
    """``.. code-block:: python`` snippets that are not doctests must run too."""
    monkeypatch.chdir(tmp_path)
    for page in ["index"]:
        for block in _python_code_blocks((DOCS / f"{page}.rst").read_text()):
            exec(compile(block, f"{page}.rst", "exec"), {})


def _python_code_blocks(text):
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == ".. code-block:: python":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                body.append(lines[i][3:])
                i += 1
            blocks.append("\n".join(body).strip("\n"))
        else:
            i += 1
    assert blocks, "no python code blocks found"
    return blocks


@pytest.mark.slow
def test_large_cube_notebook_runs(tmp_path, monkeypatch):
    nb, workdir = _run_notebook(ROOT / "notebooks" / "large_cube.ipynb", tmp_path, monkeypatch)
    assert "Array (60, 48, 40) K VOPT" in _cell_text(_tagged(nb, "open"))
    assert "True" in _cell_text(_tagged(nb, "cluster"))
    fit = _cell_text(_tagged(nb, "fit"))
    assert "<FitResult 1920 fits of shape (48, 40), 1920 succeeded" in fit
    assert "blocks fitted: 12" in fit
    resume = _cell_text(_tagged(nb, "resume"))
    assert "fitted: 3 | resumed: 9" in resume and "identical: True" in resume
    assert "refused: resume=True: output" in _cell_text(_tagged(nb, "refused"))
    assert "pulls below 5: True" in _cell_text(_tagged(nb, "xarray"))
    assert (workdir / "mean.png").stat().st_size > 10_000
    assert (workdir / "maps.zarr" / "zarr.json").is_file()


# --- docs/config.rst and notebooks/config_workflow.ipynb ----------------------------------


def _code_blocks(text, language):
    """``(caption, body)`` of every ``.. code-block:: <language>`` of an rst text."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == f".. code-block:: {language}":
            indent = len(lines[i]) - len(lines[i].lstrip()) + 3
            i += 1
            caption = None
            while i < len(lines) and lines[i].strip().startswith(":"):
                option, _, value = lines[i].strip()[1:].partition(":")
                if option == "caption":
                    caption = value.strip()
                i += 1
            body = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent
            ):
                body.append(lines[i][indent:])
                i += 1
            blocks.append((caption, "\n".join(body).strip("\n") + "\n"))
        else:
            i += 1
    return blocks


def _config_page_yaml(caption):
    blocks = [
        body
        for cap, body in _code_blocks((DOCS / "config.rst").read_text(), "yaml")
        if cap == caption
    ]
    assert len(blocks) == 1, f"expected one yaml block captioned {caption!r} in config.rst"
    return blocks[0]


def _console_output(command, page="config"):
    """What a ``.. code-block:: console`` of a docs page shows after ``$ <command>``."""
    for _, body in _code_blocks((DOCS / f"{page}.rst").read_text(), "console"):
        lines = body.splitlines()
        if f"$ {command}" in lines:
            start = lines.index(f"$ {command}") + 1
            out = []
            for line in lines[start:]:
                if line.startswith("$ "):
                    break
                out.append(line)
            return "\n".join(out).strip("\n")
    raise AssertionError(f"no console block of {page}.rst runs {command!r}")


def test_config_page_yaml_examples_are_what_they_claim(tmp_path, monkeypatch):
    """The example config of config.rst is valid; the broken one fails exactly as shown;
    the demo config shown is the one ``parfit demo --config`` writes."""
    from parfit.cli import _demo_config
    from parfit.config import load_config, parse_config
    from parfit.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    cfg = parse_config(_config_page_yaml("fit.yaml"), check_files=False)
    assert [c.type for c in cfg.model.components] == ["Gaussian1D", "Gaussian1D", "Const1D"]
    assert cfg.model.components[1].stddev.tied == "stddev_0"
    assert cfg.run.scheduler == "local" and cfg.output.format == "netcdf"

    (tmp_path / "broken.yaml").write_text(_config_page_yaml("broken.yaml"))
    (tmp_path / "data").mkdir()  # the cube the page's folder has (only its name counts)
    (tmp_path / "data" / "ngc1333_co.fits").write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        load_config("broken.yaml", deep=True)
    shown = _console_output("parfit validate broken.yaml")
    assert str(info.value) == shown, (
        "the validate output shown in docs/config.rst is out of date; run `parfit validate "
        "broken.yaml` on the broken.yaml block and paste what it prints"
    )

    demo = [
        body
        for cap, body in _code_blocks((DOCS / "config.rst").read_text(), "yaml")
        if cap is None and "path: cube.fits" in body
    ]
    assert len(demo) == 1
    written = _demo_config("threads", "guess", "batched")
    assert written.endswith(demo[0]), "the demo config shown in config.rst is out of date"


@pytest.mark.slow
def test_config_page_example_runs(tmp_path):
    """The fit.yaml of config.rst validates and runs with the parfit command (a local
    cluster), on a small synthetic cube at the path it names."""
    from parfit.datasets import multi_gaussian_cube

    (tmp_path / "data").mkdir()
    multi_gaussian_cube((60, 12, 16), n_components=2, baseline=False, seed=3).to_fits(
        tmp_path / "data" / "ngc1333_co.fits"
    )
    (tmp_path / "fit.yaml").write_text(_config_page_yaml("fit.yaml"))
    elsewhere = tmp_path / "elsewhere"  # relative paths follow the file, not the cwd
    elsewhere.mkdir()
    command = [sys.executable, "-m", "parfit.cli"]
    proc = subprocess.run(
        command + ["validate", str(tmp_path / "fit.yaml")],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "192 fits of 60 samples" in proc.stdout
    proc = subprocess.run(
        command + ["run", "--no-progress", str(tmp_path / "fit.yaml")],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=300,
    )
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    record = json.loads((tmp_path / "results" / "run.json").read_text())
    assert record["n_fits"] == 192 and record["complete"] is True
    assert record["exit_status"] == ("ok" if proc.returncode == 0 else "too_many_failures")
    assert record["exports"] == ["maps.nc"] and (tmp_path / "results" / "maps.nc").is_file()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_config_workflow_notebook_runs(tmp_path, monkeypatch):
    nb, workdir = _run_notebook(ROOT / "notebooks" / "config_workflow.ipynb", tmp_path, monkeypatch)
    assert "K VRAD m / s" in _cell_text(_tagged(nb, "cube"))
    assert "  path: cube.fits\n" in _cell_text(_tagged(nb, "template"))
    config = _cell_text(_tagged(nb, "config"))
    assert "Gaussian1D + Const1D" in config and "output folder: results" in config

    mistake = _cell_text(_tagged(nb, "mistake"))
    assert "4 problems in broken.yaml:" in mistake
    assert (
        "broken.yaml:3: input.fiting_axes: unknown key 'fiting_axes' (did you mean 'fitting_axes'?)"
    ) in mistake
    assert "broken.yaml:9: model.components[0].stddev.bounds: lower bound must be below" in mistake
    assert "'5 kms' is not a number with an optional unit" in mistake
    assert "broken.yaml:11: model.components[1].amplitude.fixed: ambiguous value NO" in mistake
    assert "('input.fiting_axes', 3, " in mistake

    run = _cell_text(_tagged(nb, "run"))
    assert "<FitResult 1024 fits of shape (32, 32), 1018 succeeded" in run
    assert "status counts: {'OK': 1018, 'NO_VALID_DATA': 6}" in run
    assert "exit status: ok | failed fraction: 0.0" in run
    assert "folder: ['config.yaml', 'diagnostics', 'maps.zarr', 'run.json']" in run
    assert "run.json == analysis.record: True" in _cell_text(_tagged(nb, "record"))

    summary = _cell_text(_tagged(nb, "summary"))
    assert "parfit analysis folder: " in summary and "exit status ok" in summary
    assert "NO_VALID_DATA            6" in summary
    assert "complete: yes (4 of 4 blocks done)" in summary

    assert "pulls below 5: True" in _cell_text(_tagged(nb, "xarray"))
    pixel = _cell_text(_tagged(nb, "pixel"))
    assert pixel.startswith("OK {'amplitude_0': ") and "same as the map: True" in pixel
    read = _cell_text(_tagged(nb, "read"))
    assert "identical maps: True" in read and "same record: True" in read
    assert "refused: output.path 'results' holds the results of an earlier run" in _cell_text(
        _tagged(nb, "refused")
    )

    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 2  # the maps, and the pixel's fit
    assert list(workdir.iterdir()) == []  # everything went to a temporary folder


def test_joint_fit_notebook_runs(tmp_path, monkeypatch):
    nb, workdir = _run_notebook(ROOT / "notebooks" / "joint_fit.ipynb", tmp_path, monkeypatch)
    assert "co10 (60, 24, 30) spectral axis 0" in _cell_text(_tagged(nb, "cubes"))
    fit = _cell_text(_tagged(nb, "fit"))
    assert "OK                     720  (100.0%)" in fit
    assert "DATASET_MISSING         48" in fit
    blank = _cell_text(_tagged(nb, "blank"))
    assert "fits lacking co21: 48" in blank
    assert "co21 amplitude NaN there: True" in blank
    assert "velocity finite everywhere: True" in blank
    for line in _cell_text(_tagged(nb, "pulls")).splitlines():
        assert 0.75 < float(line.rsplit(" ", 1)[1]) < 1.25, line
    ratio = _cell_text(_tagged(nb, "ratio")).splitlines()
    assert float(ratio[0].rsplit(" ", 1)[1]) < 0.85
    assert float(ratio[1].rsplit(" ", 1)[1]) == pytest.approx(1.0, abs=0.01)
    assert (workdir / "joint_maps.png").stat().st_size > 10_000
    assert "CompoundModel" in _cell_text(_tagged(nb, "models"))


def _number_after(text, label):
    """The number that follows ``label`` in ``text`` (up to the next space, comma or bar)."""
    assert label in text, f"{label!r} not in the output:\n{text}"
    rest = text.split(label, 1)[1].strip()
    return float(rest.split()[0].rstrip(",|"))


@pytest.mark.slow
def test_counts_cube_notebook_runs(tmp_path, monkeypatch):
    nb, workdir = _run_notebook(ROOT / "notebooks" / "counts_cube.ipynb", tmp_path, monkeypatch)
    cube = _cell_text(_tagged(nb, "cube"))
    assert "counts (60, 48, 48) (channels, y, x)" in cube
    assert "pixels with a line: 788 of 2304" in cube

    # A free line: Cash's flux is right, the chi-square of counts loses about a fifth.
    free = _cell_text(_tagged(nb, "free")).splitlines()
    assert free[0].startswith("cash") and free[1].startswith("chi2")
    assert _number_after(free[0], " flux ") == pytest.approx(1.0, abs=0.05)
    assert _number_after(free[1], " flux ") < 0.9
    assert _number_after(free[1], " background ") < 0.9

    # The shape known: Cash's amplitude is unbiased, the chi-square's about a quarter low.
    fixed = _cell_text(_tagged(nb, "fixed")).splitlines()
    label = "median amplitude fitted/true inside"
    assert fixed[0].startswith("cash succeeded 100.0%")
    assert _number_after(fixed[0], label) == pytest.approx(1.0, abs=0.03)
    assert _number_after(fixed[1], label) < 0.85

    ts = _cell_text(_tagged(nb, "ts"))
    assert "sqrt(TS) > 5 outside: 0 of 1516" in ts
    assert _number_after(ts, "sqrt(TS) > 5 inside the disk:") > 0.8 * 788
    assert _number_after(ts, "outside: sqrt(TS) mean") == pytest.approx(0.0, abs=0.2)
    assert _number_after(ts, " std ") == pytest.approx(1.0, abs=0.1)
    assert "saved sqrt_ts.png" in _cell_text(_tagged(nb, "ts_plot"))
    assert (workdir / "sqrt_ts.png").stat().st_size > 10_000

    limits = _cell_text(_tagged(nb, "limits"))
    coverage = _number_after(limits, "1-sigma intervals inside the disk:")
    assert 0.55 < coverage < 0.8
    assert _number_after(limits, "LIMIT_AT_BOUND:") > 0.5 * 1516

    minuit = _cell_text(_tagged(nb, "minuit"))
    if "comparison skipped" not in minuit:
        assert _number_after(minuit, "largest difference of the best amplitude:") < 0.05
        assert _number_after(minuit, "batched minus iminuit, at most:") < 1e-6
        assert _number_after(minuit, "interval end or upper limit:") < 0.01

    summary = _cell_text(_tagged(nb, "summary"))
    assert "parfit result: 2304 fits, map shape (48, 48)" in summary
    assert "median Cash statistic" in summary
    assert "profile of amplitude_0: 1-sigma intervals found for 2304 fits" in summary
    xarray = _cell_text(_tagged(nb, "xarray"))
    assert "statistic: cash | attrs statistic: cash" in xarray
    assert "amplitude_0_lo, amplitude_0_hi, amplitude_0_ul" in xarray

    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 4  # spectra and image, amplitude ratios, sqrt(TS), limits
    assert list(workdir.iterdir()) == [workdir / "sqrt_ts.png"]


def _percent_after(text, label):
    """The percentage that follows ``label`` in ``text``, as a fraction."""
    assert label in text, f"{label!r} not in the output:\n{text}"
    return float(text.split(label, 1)[1].split("%", 1)[0]) / 100


@pytest.mark.slow
def test_components_notebook_runs(tmp_path, monkeypatch):
    nb, workdir = _run_notebook(ROOT / "notebooks" / "components.ipynb", tmp_path, monkeypatch)
    cube = _cell_text(_tagged(nb, "cube"))
    assert "cube (100, 24, 36) (channels, y, x)" in cube
    assert "pixels with 1, 2, 3 lines: [288, 288, 288]" in cube

    # AICc over one, two and three Gaussians: the right number of lines almost everywhere;
    # the few wrong choices add a line (a significant noise spike), never drop one.
    select = _cell_text(_tagged(nb, "select"))
    assert "<SelectionResult 864 pixels of shape (24, 36), 3 candidates by aicc" in select
    assert _percent_after(select, "right number of lines:") > 0.93
    assert "3 true line(s): chosen {3: 288}" in select
    for n in (1, 2):
        chosen = select.split(f"{n} true line(s): chosen ", 1)[1].splitlines()[0]
        assert set(ast.literal_eval(chosen)) <= {n, n + 1}, chosen

    spectra = [
        line for line in _cell_text(_tagged(nb, "spectra")).splitlines() if "centres" in line
    ]
    assert [line.count(",") + 1 for line in spectra] == [1, 2, 3]

    # The wrong choices win by a few units of AICc, the right ones by hundreds.
    threshold = _cell_text(_tagged(nb, "threshold"))
    assert _number_after(threshold, "largest") < 20
    assert _number_after(threshold, "chosen right: median") > 100
    assert _percent_after(threshold, "select_threshold=20: right number of lines") > 0.99

    # The rotating disk: a shared start loses most pixels (all "OK"), refits rescue them.
    shared = _cell_text(_tagged(nb, "shared"))
    assert "status: {'OK': 1600}" in shared
    assert _percent_after(shared, "shared start at 0 km/s: recovered") < 0.5
    assert _number_after(shared, "wrong fits") > 3 * _number_after(shared, "right fits")

    refit = _cell_text(_tagged(nb, "refit"))
    assert _percent_after(refit, "with neighbour refits: recovered") == 1.0
    assert "neighbour refits: " in refit and "  pass  1: " in refit

    mean = _cell_text(_tagged(nb, "mean"))
    assert "mean spectrum of 1600 pixels fitted OK" in mean
    assert _percent_after(mean, 'initial="mean": recovered') > 0.98
    assert _percent_after(mean, 'initial="mean" and refit="neighbours": recovered') == 1.0
    assert _percent_after(mean, "retried from each pixel's guess): recovered") == 1.0

    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 5  # selection maps, spectra, shared start, refits, mean start
    assert list(workdir.iterdir()) == []
