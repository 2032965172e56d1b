"""Sphinx configuration of the parfit documentation.

Builds offline with only Sphinx and numpydoc installed: no intersphinx, no
extra theme, nothing downloaded.  Build with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import datetime
import os
import sys

# Document the package of this source tree even when it is not installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import parfit  # noqa: E402

project = "parfit"
author = "parfit developers"
copyright = f"{datetime.date.today().year}, {author}"
release = parfit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

# --- sources ------------------------------------------------------------------
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []
default_role = "code"
pygments_style = "sphinx"

# --- autodoc / autosummary -----------------------------------------------------
# The API page lists objects with autosummary tables that link to autodoc
# entries on the same page, so no stub files are generated into the source
# tree.
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections already give the types
autodoc_default_options = {"show-inheritance": False}

# --- numpydoc --------------------------------------------------------------------
# Class members are documented explicitly in api.rst; numpydoc's automatic
# member tables would duplicate them (and point at private helpers).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- html -------------------------------------------------------------------------
html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"parfit {release}"
html_theme_options = {
    "description": "Fit a model to every pixel of a data cube, in parallel on dask.",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}


# --- the status-code table, generated from parfit.status ----------------------------
def _status_table_lines():
    """The rows of :class:`parfit.Status` as an rst list-table."""
    from parfit.status import STATUS_DESCRIPTIONS, Status

    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 8 22 70",
        "",
        "   * - code",
        "     - ``Status``",
        "     - meaning",
    ]
    for status in Status:
        lines += [
            f"   * - {int(status)}",
            f"     - ``{status.name}``",
            f"     - {STATUS_DESCRIPTIONS[status]}",
        ]
    return lines


def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList

    class StatusTable(Directive):
        """``.. parfit-status-table::`` renders every :class:`parfit.Status`."""

        has_content = False

        def run(self):
            container = nodes.container()
            source = self.state_machine.get_source_and_line(self.lineno)[0]
            content = StringList(_status_table_lines(), source=source)
            self.state.nested_parse(content, self.content_offset, container)
            return container.children

    app.add_directive("parfit-status-table", StatusTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
