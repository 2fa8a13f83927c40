"""A Sphinx extension for the book's build (``_config.yml``: ``sphinx.extra_extensions``): each page lists
every script once.

sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = …``) both to Sphinx's registry
and to the running HTML builder, once with the file name ``None`` and once with ``""``, so Sphinx's own
duplicate check misses it and every page holds it twice: the second copy is a
JavaScript error (``Identifier 'THEBE_JS_URL' has already been declared``) on every page, which the
browser check (``tools/browser_check.py``) rightly fails on. Dropping exact duplicates (same file or same
inline body, same attributes) changes nothing else.
"""

from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # an inline script's file name is None or "" depending on the path that added it: the same script
    filename = getattr(script, "filename", script) or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def unique_scripts(scripts: list) -> list:
    """``scripts`` without exact repeats, first occurrence kept, order unchanged."""
    seen, out = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            out.append(script)
    return out


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"][:] = unique_scripts(context["script_files"])


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)  # after every extension has added its scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
