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
