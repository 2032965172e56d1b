"""The public API is what docs/api.rst documents: each module's ``__all__`` equals it.

docs/api.rst is read the way Sphinx reads it: ``.. currentmodule::`` (and
``.. automodule::``) set the module of the names that follow;
``.. autofunction::``, ``.. autoclass::``, ``.. autodata::``,
``.. autoexception::`` and the entries of ``.. autosummary::`` name them,
relative to that module unless dotted (``parfit.status.is_failure``).  A
class documented where it is re-exported (``parfit.Status``) is documented
in the module that defines it too (``parfit.status``), as Sphinx records
with ``:canonical:``.

To hold another module to its documentation, add it to :data:`MODULES`.
"""

import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest

API_RST = Path(__file__).resolve().parents[1] / "docs" / "api.rst"

#: Modules whose ``__all__`` must equal the names api.rst documents for them.
MODULES = [
    "parfit",
    "parfit.models",
    "parfit.fitters",
    "parfit.fitters.trf",
    "parfit.fitters.lm",
    "parfit.fitters.quality",
    "parfit.datasets",
    "parfit.corpus",
    "parfit.io",
    "parfit.status",
    "parfit.errors",
    "parfit.store",
    "parfit.config",
    "parfit.diagnostics",
]

_MODULE = re.compile(r"^\.\. (?:py:)?(?:currentmodule|automodule|module):: *(\S+)")
_OBJECT = re.compile(r"^\.\. auto(?:function|class|data|exception):: *(\S+)")
_AUTOSUMMARY = re.compile(r"^\.\. autosummary::")


def documented_names(text):
    """``{module: {name, ...}}`` of the objects an api.rst-like ``text`` documents."""
    found = defaultdict(set)
    module = None
    in_summary = False

    def add(name):
        if "." in name:  # an absolute name, as Sphinx takes a dotted one
            owner, _, name = name.rpartition(".")
            found[owner].add(name)
        else:
            found[module].add(name)

    for line in text.splitlines():
        if in_summary:
            entry = line.strip()
            if not entry or entry.startswith(":"):
                continue
            if line[:1].isspace():
                add(entry)
                continue
            in_summary = False
        if m := _MODULE.match(line):
            module = m.group(1)
        elif m := _OBJECT.match(line):
            add(m.group(1))
        elif _AUTOSUMMARY.match(line):
            in_summary = True
    return dict(found)


def _with_canonical(documented):
    """Add each re-exported class to the module that defines it."""
    out = defaultdict(set, {module: set(names) for module, names in documented.items()})
    for module, names in documented.items():
        for name in names:
            obj = getattr(importlib.import_module(module), name, None)
            if isinstance(obj, type) and obj.__module__ != module and obj.__qualname__ == name:
                out[obj.__module__].add(name)
    return out


@pytest.fixture(scope="module")
def documented():
    return _with_canonical(documented_names(API_RST.read_text()))


def test_the_reader_follows_sphinx():
    text = """
.. currentmodule:: pkg

.. autosummary::

   run
   Result

.. autofunction:: run
.. autodata:: pkg.sub.CONSTANT
   :no-value:

   Text, not a name.

.. automodule:: pkg.other
   :no-members:

.. autoclass:: Thing
   :members: a, b
.. autoexception:: Oops
"""
    assert documented_names(text) == {
        "pkg": {"run", "Result"},
        "pkg.sub": {"CONSTANT"},
        "pkg.other": {"Thing", "Oops"},
    }


@pytest.mark.parametrize("name", MODULES)
def test_all_is_the_documented_api(name, documented):
    module = importlib.import_module(name)
    public = set(module.__all__)
    assert len(public) == len(module.__all__), f"{name}.__all__ lists a name twice"
    names = documented.get(name, set())
    assert public - names == set(), f"in {name}.__all__ but not documented in docs/api.rst"
    assert names - public == set(), f"documented in docs/api.rst but not in {name}.__all__"


@pytest.mark.parametrize("name", MODULES)
def test_star_import_gives_the_documented_api(name):
    namespace = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(importlib.import_module(name).__all__)


def test_every_documented_name_is_importable():
    missing = [
        f"{module}.{name}"
        for module, names in documented_names(API_RST.read_text()).items()
        for name in sorted(names)
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []
