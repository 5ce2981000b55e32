"""Sphinx configuration for the nfmp_client documentation (built by `tox -e docs` and scripts/test)."""

from __future__ import annotations

import nfmp_client

project = "nfmp_client"
author = "the nfmp_client developers"
copyright = "2026, the nfmp_client developers"
release = nfmp_client.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"nfmp_client {release}"
# The type aliases are Unions; Sphinx cannot resolve forward references inside them.
suppress_warnings = ["autodoc.import_object"]

# Nitpicky builds (tox -e docs) check every cross-reference. The standard library's and dependencies' own
# documentation is not linked (no intersphinx: the build must work offline), so references into them are
# expected to stay unresolved; so are the type aliases, which are documented as text in api.rst.
nitpick_ignore_regex = [
    (r"py:.*", r"(datetime|enum|collections\.abc|pathlib|os|ssl|threading|time|typing)(\..*)?"),
    (r"py:.*", r"(tenacity|prometheus_client|lxml)\..*"),
    (r"py:class", r"(Path|AttributeValue|Event|DataEvent|SystemEvent|XmlApiRequest|TransportReport|Due)"),
    (r"py:class", r"(Notification|ResyncCallable|EventStream|AsyncNfmpClient|_Slot|_Outcome)"),
    (r"py:class", r"(asyncio|types)\..*"),
]
