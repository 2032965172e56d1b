"""The documentation runs: notebooks, the Sphinx build, docs pages and docstring examples.

* ``notebooks/quickstart.ipynb`` is executed with nbclient and its outputs checked;
* the Sphinx docs build with warnings as errors;
* every ``>>>`` example in the docs pages and in the docstrings of the public
  modules runs and prints what it shows.
"""

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
        (kernel_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3",
            "language": "python",
        }))
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
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()   # raises CellExecutionError on any error
    return nb, workdir


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nb, _ = _run_notebook(NOTEBOOK, tmp_path, monkeypatch)

    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
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

    images = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if "image/png" in out.get("data", {})]
    assert len(images) == 2
    assert nb.cells[1].outputs[0].text.startswith("parfit ")


# --- the Sphinx build ---------------------------------------------------------------


@pytest.mark.slow
def test_sphinx_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    for page in ("index", "quickstart", "migrating", "models", "diagnostics", "results", "api"):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    for anchor in ("parfit.parallel_fit", "parfit.FitResult", "parfit.Status",
                   "parfit.models.Model", "parfit.models.Gaussian1D", "parfit.fitters.ScipyFitter",
                   "parfit.datasets.gaussian_cube", "parfit.diagnostics.read_manifest",
                   "parfit.errors.OutputExistsError"):
        assert f'id="{anchor}"' in api, anchor
    # The status table is generated from parfit.status, so it lists every code.
    from parfit import Status

    diagnostics = (out / "diagnostics.html").read_text()
    for status in Status:
        assert status.name in diagnostics, status.name


# --- examples in the docs pages and the docstrings -------------------------------------


@pytest.fixture
def clean_registry():
    """Examples register models; keep them out of the other tests."""
    from parfit.models import MODEL_REGISTRY

    saved = dict(MODEL_REGISTRY)
    yield
    MODEL_REGISTRY.clear()
    MODEL_REGISTRY.update(saved)


DOC_PAGES = ["index", pytest.param("quickstart", marks=pytest.mark.slow), "migrating", "solver",
             "large_cubes", "models",
             "diagnostics", "results"]


@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_page_examples(page, tmp_path, monkeypatch, clean_registry):
    monkeypatch.chdir(tmp_path)
    path = DOCS / f"{page}.rst"
    result = doctest.testfile(str(path), module_relative=False, optionflags=DOCTEST_FLAGS,
                              raise_on_error=False, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) of {path.name} failed (see output)"
    if page != "index":
        assert result.attempted > 0


def _public_modules():
    """The modules whose docstring examples are run: every module of
    ``parfit.models`` and ``parfit.fitters``, and the other public ones."""
    import pkgutil

    names = ["parfit.parallel", "parfit.result", "parfit.parameters", "parfit._expr",
             "parfit.datasets", "parfit.io", "parfit.diagnostics"]
    for package in ("parfit.models", "parfit.fitters"):
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
}


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
