#!/usr/bin/env python3
"""Check the built book (``_build/html``): what a reader must find there, and nothing fetched online.

Run by ``python -m fairpo.report.book`` (``make book``) after ``jupyter-book build``; usable on its own:

    python tools/check_book.py [_build/html]

Checks, each failure printed with the page it concerns:

- every page of ``_toc.yml`` was built and its article holds real text (no empty page);
- the paper's Tables 1–4 are rendered: the results page names Tables 1 and 2 and holds at least two
  data tables, the ablations page likewise for Tables 3 and 4 (each table with a few data rows);
- the plots are there: the pages listed in ``PLOTS`` hold at least that many images, each a real file
  (or inline data) that is not trivially small;
- no internal link is broken: every relative ``href``/``src`` resolves to a built file, and every
  ``#anchor`` to an id on the target page;
- nothing is fetched from the network: no ``<script>``, stylesheet, image or frame loads an http(s)
  URL, and pages with maths load the bundled MathJax, which exists;
- the audit was measured: its executed page does not report an empty run store;
- no page carries papermill's "An Exception was encountered" banner (a notebook committed from a
  failed papermill run).

Links *to* external sites in the prose (``<a href="https://...">``) are allowed and only counted.
Exit status 0 when every check passes, 1 otherwise. Standard library only.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fairpo.report.book import toc_pages

ROOT = Path(__file__).resolve().parents[1]

MIN_ARTICLE_CHARS = 200
"""A page whose article has less visible text than this counts as empty."""

TABLES = {
    "notebooks/results.html": (("Table 1", "Table 2"), 2),
    "notebooks/ablations.html": (("Table 3", "Table 4"), 2),
}
"""Page -> (names it must mention, the least number of data tables it must hold)."""

MIN_TABLE_ROWS = 3
"""A data table of the results has at least this many body rows (methods or ablations)."""

PLOTS = {
    "notebooks/method.html": 2,
    "notebooks/dynamics.html": 1,
    "notebooks/train.html": 1,
}
"""Page -> the least number of plots (images) it must show."""

MIN_IMAGE_BYTES = 2_000
MATHJAX = "_static/mathjax/tex-svg-full.js"
EMPTY_AUDIT = "no runs in the store"
PAPERMILL_ERROR = "An Exception was encountered at"
"""papermill's banner in a notebook saved from a failed run: a committed notebook must not carry it."""
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
"""Elements without an end tag: they must not change the nesting depth."""


class Page(HTMLParser):
    """The parts of one HTML page that the checks need."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.loads: list[tuple[str, str]] = []  # (tag, url) of resources the browser fetches
        self.images: list[str] = []
        self.tables: list[int] = []  # body rows of each table in the article
        self.article_text: list[str] = []
        self._article_depth = 0
        self._skip_depth = 0
        self._table_stack: list[int] = []
        self._in_tbody = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        if (tag == "article" or self._article_depth) and tag not in VOID:
            self._article_depth += 1
        if self._article_depth and tag in ("script", "style"):
            self._skip_depth += 1
        if tag == "a" and a.get("href"):
            self.links.append((tag, a["href"]))
        if tag in ("script", "img", "iframe", "source", "video", "audio") and a.get("src"):
            self.loads.append((tag, a["src"]))
            self.links.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = a.get("rel", "")
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload")):
                self.loads.append((tag, a["href"]))
                self.links.append((tag, a["href"]))
        if tag == "img" and self._article_depth:
            self.images.append(a.get("src", ""))
        if self._article_depth and tag == "table":
            self._table_stack.append(0)
        if self._article_depth and tag == "tbody":
            self._in_tbody += 1
        if self._article_depth and tag == "tr" and self._table_stack and self._in_tbody:
            self._table_stack[-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if self._article_depth and tag in ("script", "style") and self._skip_depth:
            self._skip_depth -= 1
        if self._article_depth and tag == "tbody" and self._in_tbody:
            self._in_tbody -= 1
        if self._article_depth and tag == "table" and self._table_stack:
            self.tables.append(self._table_stack.pop())
        if self._article_depth and tag not in VOID:
            self._article_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._article_depth and not self._skip_depth:
            self.article_text.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.article_text)).strip()


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def is_external(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") or url.startswith("//")


def check(html_dir: Path, toc_path: Path) -> list[str]:
    problems: list[str] = []
    pages = {p.relative_to(html_dir).as_posix(): p for p in html_dir.rglob("*.html")
             if "_static" not in p.parts and "reports" not in p.parts}
    parsed = {name: parse(path) for name, path in pages.items()}

    for doc in toc_pages(toc_path):
        name = f"{doc}.html"
        if name not in parsed:
            problems.append(f"{name}: not built (listed in {toc_path.name})")
        elif len(parsed[name].text) < MIN_ARTICLE_CHARS:
            problems.append(f"{name}: empty page ({len(parsed[name].text)} characters of text)")

    for name, (names, count) in TABLES.items():
        page = parsed.get(name)
        if page is None:
            problems.append(f"{name}: missing (it should hold {', '.join(names)})")
            continue
        for table_name in names:
            if table_name not in page.text:
                problems.append(f"{name}: does not mention {table_name}")
        data_tables = [rows for rows in page.tables if rows >= MIN_TABLE_ROWS]
        if len(data_tables) < count:
            problems.append(f"{name}: {len(data_tables)} tables with at least {MIN_TABLE_ROWS} rows, "
                            f"expected at least {count}")

    for name, count in PLOTS.items():
        page = parsed.get(name)
        if page is None:
            problems.append(f"{name}: missing (it should show {count} plot(s))")
            continue
        good = 0
        for src in page.images:
            if src.startswith("data:image/"):
                good += len(src) > MIN_IMAGE_BYTES
                continue
            target = (pages[name].parent / unquote(urlsplit(src).path)).resolve()
            if target.is_file() and target.stat().st_size >= MIN_IMAGE_BYTES:
                good += 1
        if good < count:
            problems.append(f"{name}: {good} plot image(s), expected at least {count}")

    external_links = 0
    for name, page in parsed.items():
        base = pages[name].parent
        for tag, url in page.loads:
            if is_external(url):
                problems.append(f"{name}: <{tag}> loads {url} from the network")
        for tag, url in page.links:
            if is_external(url):
                external_links += 1
                continue
            parts = urlsplit(url)
            if parts.scheme in ("mailto", "data", "javascript") or url.startswith("data:"):
                continue
            if parts.path:
                target = (base / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    problems.append(f"{name}: broken link <{tag}> {url}")
                    continue
            else:
                target = pages[name].resolve()
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                rel = target.relative_to(html_dir.resolve()).as_posix() if target.is_relative_to(
                    html_dir.resolve()) else None
                target_page = parsed.get(rel) if rel else None
                if target_page is not None and fragment not in target_page.ids:
                    problems.append(f"{name}: broken anchor {url}")
        uses_mathjax = any("mathjax" in url.lower() for _, url in page.loads)
        if uses_mathjax and not any(url.split("?")[0].endswith(MATHJAX) for _, url in page.loads):
            problems.append(f"{name}: loads a MathJax other than the bundled {MATHJAX}")
    if not (html_dir / MATHJAX).is_file():
        problems.append(f"{MATHJAX}: missing from the build")

    for name, page in parsed.items():
        if PAPERMILL_ERROR in page.text:
            problems.append(f"{name}: shows papermill's error banner ({PAPERMILL_ERROR!r}): the notebook "
                            "was saved from a failed run; re-execute and commit it")

    audit = parsed.get("book/audit_measure.html")
    if audit is not None and EMPTY_AUDIT in audit.text:
        problems.append("book/audit_measure.html: the run store was empty when the audit was executed "
                        "(build with `make book`, which fills it first)")

    print(f"checked {len(parsed)} pages; {external_links} links to external sites (allowed, not fetched)")
    return problems


def main(argv: list[str]) -> int:
    html_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "html"
    if not html_dir.is_dir():
        print(f"error: {html_dir} does not exist; build the book first (make book)", file=sys.stderr)
        return 1
    problems = check(html_dir, ROOT / "_toc.yml")
    for problem in problems:
        print(f"FAIL {problem}")
    print("book check: " + ("passed" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
