"""The layout rules of ARCHITECTURE.md, checked on the source.

* No import cycle between parfit's areas (``models/`` may have cycles
  inside itself, resolved at call time).
* No private name (``_x``, or a module ``_x``) imported from another area:
  what two areas share is public in the lower one.

An *area* is a subpackage of ``parfit`` (``engine``, ``store``, ``config``,
``diagnostics``, ``models``, ``fitters``) or a top-level module.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "parfit"


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """``(imported module, imported name or None, lazy)`` of every parfit import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        lazy = id(node) not in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("parfit"):
                    found.append((alias.name, None, lazy))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("parfit"):
                continue
            for alias in node.names:
                found.append((module, alias.name, lazy))
    return found


def _area(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _all_modules():
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}


def _private_imports():
    modules = _all_modules()
    bad = []
    for name, path in modules.items():
        here = _area(name)
        for module, imported, _lazy in _imports(path):
            if _area(module) == here or here == "__init__":
                continue
            target = (
                f"{module}.{imported}" if imported and f"{module}.{imported}" in modules else module
            )
            private_module = any(
                part.startswith("_") and part != "__init__" for part in target.split(".")[1:]
            )
            private_name = (
                imported is not None
                and imported.startswith("_")
                and not imported.startswith("__")
                and f"{module}.{imported}" not in modules
            )
            if private_module or private_name:
                bad.append(f"{name} imports {module}:{imported}")
    return bad


def _area_graph():
    graph = {}
    for name, path in _all_modules().items():
        here = _area(name)
        for module, imported, _lazy in _imports(path):
            there = _area(module)
            if imported and f"{module}.{imported}" in _all_modules():
                there = _area(f"{module}.{imported}")
            if there != here and here != "__init__" and there != "__init__":
                graph.setdefault(here, set()).add(there)
    return graph


def _cycles(graph):
    """Every strongly connected set of more than one area (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_private_names_across_areas():
    assert _private_imports() == []


def test_no_import_cycles_between_areas():
    assert _cycles(_area_graph()) == []


@pytest.mark.parametrize("area", ["engine", "store", "config", "diagnostics"])
def test_modules_within_an_area_form_no_cycle(area):
    modules = {n: p for n, p in _all_modules().items() if _area(n) == area}
    graph = {}
    for name, path in modules.items():
        for module, imported, _lazy in _imports(path):
            target = (
                f"{module}.{imported}" if imported and f"{module}.{imported}" in modules else module
            )
            if target in modules and target != name and not target.endswith(f"parfit.{area}"):
                graph.setdefault(name, set()).add(target)
    assert _cycles(graph) == []


def test_import_parfit_does_not_load_what_the_first_fit_does_not_need():
    """scipy's optimisers (per-fit fitters) and special functions (Voigt1D) load on first use."""
    import subprocess
    import sys

    code = (
        "import sys, parfit; "
        "print(sorted(m for m in ('scipy.optimize', 'scipy.special') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _fresh(code, env=None, **extra):
    """stdout of ``code`` in a fresh interpreter, in ``env`` (this one's) plus ``extra``."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**(os.environ if env is None else env), **extra},
    )
    return out.stdout.strip()


def test_import_parfit_imports_neither_numba_nor_dask():
    """numba (and the scipy.linalg it loads) comes with the first fit, or in the background."""
    code = (
        "import sys, parfit\n"
        "heavy = ('numba', 'llvmlite', 'scipy', 'dask', 'distributed', 'xarray', 'zarr',\n"
        "         'astropy.wcs', 'astropy.io.fits', 'astropy.modeling', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert _fresh(code, PARFIT_WARMUP="0") == "[]"


def test_a_first_fit_of_a_cube_in_memory_does_not_import_dask(tmp_path):
    """Default scheduler, dask not configured: parfit runs the blocks on its own threads."""
    code = (
        "import sys, numpy as np, parfit\n"
        "from parfit.datasets import gaussian_cube\n"
        "cube = gaussian_cube((20, 3, 4), seed=0)\n"
        "r = parfit.parallel_fit(cube.model, cube.data, world=cube.world, progress=True)\n"
        "assert r.success.all()\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["HOME"] = str(tmp_path)  # no dask configuration of the user's
    assert _fresh(code, env) == "[]"


def test_background_warm_up_loads_the_kernel_and_can_be_turned_off():
    code = (
        "import sys, parfit\n"
        "from parfit.fitters import warmup\n"
        "warmup.wait()\n"
        "from parfit.fitters import _kernel\n"
        "print('numba' in sys.modules, len(_kernel.fit_all.signatures))\n"
    )
    assert _fresh(code, PARFIT_WARMUP="1") == "True 1"
    off = "import sys, parfit\nprint('numba' in sys.modules)\n"
    assert _fresh(off, PARFIT_WARMUP="0") == "False"
    import os

    script = {k: v for k, v in os.environ.items() if k != "PARFIT_WARMUP"}
    started = (
        "import parfit\nfrom parfit.fitters import warmup\nprint(warmup._thread is not None)\n"
    )
    assert _fresh(started, script) == "False"  # a script: only interactive sessions warm up


def test_a_fit_right_after_import_waits_for_the_warm_up():
    """The first fit, started while the warm-up runs, finds the kernel loaded once."""
    code = (
        "import parfit\n"
        "from parfit.datasets import gaussian_cube\n"
        "cube = gaussian_cube((20, 3, 4), seed=0)\n"
        "r = parfit.parallel_fit(cube.model, cube.data, world=cube.world)\n"
        "from parfit.fitters import _kernel\n"
        "print(bool(r.success.all()), len(_kernel.fit_all.signatures))\n"
    )
    assert _fresh(code, PARFIT_WARMUP="1") == "True 1"


def test_a_first_fit_of_a_cube_in_memory_loads_only_what_it_uses():
    """No distributed, dask.array, xarray, astropy.wcs or astropy.nddata to learn they are unused."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, parfit\n"
        "from parfit.models import Gaussian1D\n"
        "x = np.linspace(-5, 5, 40)\n"
        "cube = np.exp(-0.5 * (x[:, None, None] - 0.3) ** 2) * np.ones((1, 4, 5))\n"
        "r = parfit.parallel_fit(Gaussian1D(1.0, 0.0, 1.0), cube, world=(x,))\n"
        "assert r.success.all()\n"
        "heavy = ('distributed', 'dask.array', 'xarray', 'astropy.wcs', 'astropy.nddata',\n"
        "         'scipy.optimize')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
