#!/usr/bin/env python3
"""Open every page of the built book in a real (headless) browser and check what a reader sees.

Run by ``make book`` after the build and ``tools/check_book.py``; usable on its own:

    python tools/browser_check.py [_build/html] [--screenshots _build/screenshots]
                                  [--toc _toc.yml] [--allow-missing-browser]

``tools/check_book.py`` reads the HTML as text; this script loads each page of ``_toc.yml`` offline
(``file://`` URLs) in headless Chromium through Selenium 4 at 1280 px wide and fails a page on:

1. a JavaScript error: a SEVERE entry of the browser console. Failures to load *remote* resources
   (``http://``/``https://`` URLs, e.g. a CDN) are expected offline and are only counted, as long as
   the page still renders (its article holds text); a page that does not render fails on them too.
2. a missing image or file: an ``<img>`` that did not load (``complete && naturalWidth === 0``), or a
   local (``file://``) stylesheet, script or image that does not exist on disk;
3. a missing font: a local ``@font-face`` whose ``document.fonts`` entry ends with status ``error``;
4. a raw Python traceback in the page: the text ``Traceback (most recent call last)``, an error cell
   (``output traceback``/``output_error``) or a ``stderr`` output with ``SomethingError:`` lines, or
   ANSI escape codes shown as text. A traceback printed on purpose (a cell tagged
   ``raises-exception``) still fails: it is marked as such so the page can be fixed knowingly;
5. an element wider than the content column at 1280 px: page-level horizontal scrolling, or an element
   inside the article whose right edge passes the column's right edge, or a container that scrolls
   sideways because its content is too wide. Code blocks (``pre``, ``.highlight``) may scroll; tables
   may not (a table inside a scrolling wrapper is "clipped"), nor may maths (``mjx-container``).

It also saves a full-page screenshot of each page to ``<screenshots>/<page with / -> __>.png``.

Prints one line per page and a summary. Exit status: 0 when every page passes, 1 when a page has a
problem, 3 when the check could not run (no selenium, Chromium or chromedriver) unless
``--allow-missing-browser`` is given, which prints ``BROWSER CHECK SKIPPED: ...`` and exits 0.
Needs ``pip install selenium`` and ``apt-get install -y chromium chromium-driver`` (Debian); the
driver and the browser are passed explicitly, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]

EXIT_OK, EXIT_PROBLEMS, EXIT_NO_BROWSER = 0, 1, 3

WIDTH, HEIGHT = 1280, 1800
"""The browser window the pages are checked at."""

MAX_SCREENSHOT_HEIGHT = 12_000
TOLERANCE_PX = 2
"""How far (in CSS px) an element may pass the content column's right edge before it counts."""

MAX_OFFENDERS = 8
"""At most this many overflowing elements are listed per page (the count is always given)."""

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "chromedriver")
INSTALL_HINT = ("install them with: apt-get install -y chromium chromium-driver  "
                "(and: pip install selenium, or pip install -e '.[book]')")

GLOB_EXCLUDE = {"genindex.html", "search.html", "py-modindex.html"}


# --------------------------------------------------------------------------------------------------
# The pages


def toc_pages(toc_path: Path) -> list[str]:
    """The HTML pages of a Jupyter Book ``_toc.yml`` (root first): ``book/intro`` -> ``book/intro.html``.

    Reads ``root`` and the ``file:`` entries of ``parts[].chapters[]``, top-level ``chapters`` and
    nested ``sections`` (at any depth). A file given with its extension (``.md``, ``.ipynb``, ...) loses
    it. ``url:`` and ``glob:`` entries are not pages of this book and are skipped."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8"))
    if not isinstance(toc, dict) or not toc.get("root"):
        raise ValueError(f"{toc_path}: no 'root' entry")
    files = [str(toc["root"])]

    def walk(entries) -> None:
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            if entry.get("file"):
                files.append(str(entry["file"]))
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    pages, seen = [], set()
    for name in files:
        name = name.strip().lstrip("./")
        stem = re.sub(r"\.(md|ipynb|rst|myst|py|txt)$", "", name)
        page = f"{stem}.html"
        if page not in seen:
            seen.add(page)
            pages.append(page)
    return pages


def glob_pages(html_dir: Path) -> list[str]:
    """Every built ``.html`` page outside ``_static``/``_sources`` (the fallback without a toc)."""
    pages = []
    for path in sorted(Path(html_dir).rglob("*.html")):
        rel = path.relative_to(html_dir).as_posix()
        if rel.split("/")[0] in ("_static", "_sources", "_images") or rel in GLOB_EXCLUDE:
            continue
        pages.append(rel)
    return pages


def pages_to_check(html_dir: Path, toc_path: Path | None) -> list[str]:
    """The toc's pages, or (with a message saying why) every built page when the toc cannot be read."""
    try:
        if toc_path is None:
            raise FileNotFoundError("no _toc.yml given")
        return toc_pages(toc_path)
    except Exception as error:  # a missing file, bad YAML, no yaml module: fall back, but say so
        print(f"browser_check: cannot read the table of contents ({type(error).__name__}: {error}); "
              f"checking every .html file under {html_dir} instead", file=sys.stderr)
        return glob_pages(html_dir)


def screenshot_name(page: str) -> str:
    """``notebooks/results.html`` -> ``notebooks__results.png``."""
    return re.sub(r"\.html?$", "", page).replace("/", "__") + ".png"


# --------------------------------------------------------------------------------------------------
# Tracebacks (on the page's HTML, so it can be tested without a browser)

TRACEBACK_TEXT = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception)\b\s*:", re.MULTILINE)
ANSI_TEXT = re.compile(r"\x1b\[[0-9;]*m|\[(?:0|1);3\dm")  # ESC[...m, or "[0;31m" shown without its ESC
ERROR_CLASSES = ("traceback", "output_error", "stderr")


@dataclass
class _Block:
    tag: str
    kind: str | None  # the error class this element carries, if any
    raises: bool  # inside a cell tagged raises-exception
    text: list[str] = field(default_factory=list)


class _TracebackParser(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Block] = []
        self.text: list[str] = []
        self.blocks: list[_Block] = []
        self.skip = 0  # inside <script>/<style>

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.VOID:
            return
        if tag in ("script", "style"):
            self.skip += 1
        classes = (dict(attrs).get("class") or "").split()
        kind = next((c for c in ERROR_CLASSES if c in classes), None)
        if kind and any(b.kind for b in self.stack):
            kind = None  # nested in an error output already collected: its text counts there
        raises = "tag_raises-exception" in classes or any(b.raises for b in self.stack)
        block = _Block(tag, kind, raises)
        self.stack.append(block)
        if kind:
            self.blocks.append(block)

    def handle_endtag(self, tag) -> None:
        if tag in self.VOID:
            return
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        for i in range(len(self.stack) - 1, -1, -1):  # tolerate unclosed tags
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data) -> None:
        if self.skip:
            return
        self.text.append(data)
        for block in self.stack:
            if block.kind:
                block.text.append(data)


def find_tracebacks(html: str) -> list[str]:
    """The raw Python tracebacks/errors shown in a page's HTML, one description each (empty: none).

    Jupyter Book 1.x renders an executed cell's error as ``<div class="output traceback
    highlight-ipythontb">`` (older: ``output_error``), the stream ``stderr`` as ``output stderr``; the
    text ``Traceback (most recent call last)`` may also come from a printed ``traceback``. Those inside
    a cell tagged ``raises-exception`` are marked ``(on purpose: raises-exception)``."""
    parser = _TracebackParser()
    parser.feed(html)
    parser.close()
    problems: list[str] = []
    covered = 0  # how many "Traceback (most recent call last)" the blocks below explain
    for block in parser.blocks:
        text = "".join(block.text)
        has_tb = TRACEBACK_TEXT in text
        errors = ERROR_LINE.findall(text)
        if block.kind == "stderr" and not (has_tb or errors):
            continue  # warnings, progress bars: not an error
        if block.kind != "stderr" and not (has_tb or errors or text.strip()):
            continue
        covered += text.count(TRACEBACK_TEXT)
        first = next((line.strip() for line in text.splitlines() if ERROR_LINE.match(line)), None)
        if first is None:
            first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        where = {"traceback": "error output", "output_error": "error output",
                 "stderr": "stderr output"}[block.kind]
        note = " (on purpose: raises-exception)" if block.raises else ""
        problems.append(f"{where} with a Python traceback{note}: {_clip(first)}")
    whole = unescape("".join(parser.text))
    loose = whole.count(TRACEBACK_TEXT) - covered
    if loose > 0:
        problems.append(f"'{TRACEBACK_TEXT}' in the page text ({loose}x outside an error output)")
    if ANSI_TEXT.search(whole):
        problems.append("raw ANSI colour codes in the page text (an unrendered traceback/stream?)")
    return problems


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --------------------------------------------------------------------------------------------------
# Missing local files


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL names (query and fragment dropped); None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(unquote(parts.path))


def missing_local_files(urls: dict[str, list[str]]) -> list[tuple[str, str]]:
    """``(kind, url)`` for each ``file://`` URL that does not exist on disk; ``urls`` maps a kind
    (``stylesheet``, ``script``, ``image``) to absolute URLs as the browser resolved them."""
    missing = []
    for kind, items in urls.items():
        for url in dict.fromkeys(items):  # once each, in order
            path = local_path(url)
            if path is not None and not path.is_file():
                missing.append((kind, url))
    return missing


# --------------------------------------------------------------------------------------------------
# Overflow (JavaScript run in the page; its report turned into problems in Python)


def overflow_js(tolerance: float = TOLERANCE_PX, limit: int = 50) -> str:
    """JavaScript returning ``{pageScrollWidth, viewportWidth, innerWidth, column, columnRight,
    columnWidth, offenders: [{path, width, right, kind, scrollWidth}]}`` for the current page.

    The content column is ``.bd-article`` (else ``article``, ``main``, ``body``). An offender is the
    outermost element inside it that ends right of the column by more than ``tolerance`` px
    (``kind: "past-column"``), or a container that scrolls or clips sideways because its content is
    wider than itself (``kind: "scrolls"``). Elements inside a code block (``pre``, ``.highlight``)
    are exempt; tables and maths (``mjx-container``) are not, even inside a scrolling wrapper."""
    return r"""
const TOL = %(tol)s, LIMIT = %(limit)d;
const column = document.querySelector('.bd-article') || document.querySelector('article')
            || document.querySelector('main') || document.body;
const colRect = column.getBoundingClientRect();
const colStyle = getComputedStyle(column);
const colRight = colRect.right - parseFloat(colStyle.paddingRight || '0');
function cssPath(el) {
  const parts = [];
  for (let e = el; e && e !== column && e.nodeType === 1 && parts.length < 4; e = e.parentElement) {
    let s = e.tagName.toLowerCase();
    if (e.id) { parts.unshift(s + '#' + e.id); break; }
    const cls = Array.from(e.classList).filter(c => !/^(docutils|notranslate|container)$/.test(c)).slice(0, 2);
    if (cls.length) s += '.' + cls.join('.');
    parts.unshift(s);
  }
  const section = el.closest('section[id]');
  if (section && !parts.some(p => p.includes('#')) && column.contains(section))
    parts.unshift('section#' + section.id + ' …');
  return parts.join(' > ');
}
function inCode(el) {
  return !!(el.closest('pre, .highlight') && !el.matches('mjx-container, mjx-container *, table, table *'));
}
const HIDDEN = 'mjx-assistive-mml, .visually-hidden, .sr-only, .screen-reader-text';
function visible(el, r) {
  if (r.width === 0 && r.height === 0) return false;
  if (el.closest(HIDDEN)) return false;  // read aloud only, clipped to nothing on screen
  const st = getComputedStyle(el);
  if (st.display === 'none' || st.visibility === 'hidden' || st.position === 'fixed') return false;
  return !(st.position === 'absolute' && st.clip && st.clip !== 'auto');
}
function contentRight(el) {
  // how far right what is drawn inside el reaches (its visible descendants), in viewport px
  let right = -Infinity;
  for (const c of el.querySelectorAll('*')) {
    const q = c.getBoundingClientRect();
    if (q.width > 1 && visible(c, q)) right = Math.max(right, q.right);
  }
  return right;
}
const offenders = [], flagged = [];
let total = 0;
for (const el of column.querySelectorAll('*')) {
  if (inCode(el)) continue;
  if (flagged.some(f => f.contains(el))) continue;
  const r = el.getBoundingClientRect();
  if (!visible(el, r)) continue;
  let kind = null, inside = 0;
  if (r.right > colRight + TOL) kind = 'past-column';
  else {
    const ox = getComputedStyle(el).overflowX;
    if ((ox === 'auto' || ox === 'scroll' || ox === 'hidden' || ox === 'clip')
        && el.scrollWidth > el.clientWidth + TOL && el.clientWidth > 0) {
      // the box clips or scrolls: count it when something visible inside really passes its edge
      const boxRight = r.left + el.clientLeft + el.clientWidth;
      const reach = contentRight(el);
      if (reach > boxRight + TOL) { kind = 'scrolls'; inside = Math.round(reach - r.left - el.clientLeft); }
    }
  }
  if (!kind) continue;
  flagged.push(el);
  total += 1;
  if (offenders.length < LIMIT) {
    const inner = kind === 'scrolls' && !el.matches('table, mjx-container')
      ? el.querySelector('table, mjx-container') : null;
    offenders.push({path: cssPath(el), tag: el.tagName.toLowerCase(), kind: kind,
                    width: Math.round(r.width), right: Math.round(r.right),
                    scrollWidth: inside || el.scrollWidth, clientWidth: el.clientWidth,
                    inner: inner ? cssPath(inner) : null});
  }
}
return {pageScrollWidth: document.documentElement.scrollWidth,
        viewportWidth: document.documentElement.clientWidth,
        innerWidth: window.innerWidth,
        column: cssPath(column) || column.tagName.toLowerCase(),
        columnRight: Math.round(colRight), columnWidth: Math.round(colRect.width),
        offenders: offenders, total: total};
""" % {"tol": float(tolerance), "limit": limit}


def overflow_problems(report: dict, tolerance: float = TOLERANCE_PX,
                      max_listed: int = MAX_OFFENDERS) -> list[str]:
    """The problems of an :func:`overflow_js` report: page-level horizontal scroll, then one line per
    offending element (at most ``max_listed``, the rest counted)."""
    problems = []
    page, view = report.get("pageScrollWidth", 0), report.get("viewportWidth", 0)
    if view and page > view + tolerance:
        problems.append(f"overflow: the page scrolls sideways ({page} px of content, {view} px window)")
    offenders = report.get("offenders") or []
    width = report.get("columnWidth")
    for item in offenders[:max_listed]:
        if item.get("kind") == "scrolls":
            inner = f" (holds {item['inner']})" if item.get("inner") else ""
            problems.append(f"overflow: {item['path']}{inner} is clipped: content {item['scrollWidth']} "
                            f"px wide in a {item['clientWidth']} px box (content column {width} px)")
        else:
            problems.append(f"overflow: {item['path']} is {item['width']} px wide and ends at "
                            f"{item['right']} px, past the content column's right edge "
                            f"{report.get('columnRight')} px (column {width} px)")
    more = max(report.get("total", len(offenders)), len(offenders)) - min(len(offenders), max_listed)
    if more > 0:
        problems.append(f"overflow: … and {more} more element(s)")
    return problems


# --------------------------------------------------------------------------------------------------
# Console log


def classify_console(entries: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """Split the browser's SEVERE console entries into ``(errors, local_load_failures,
    remote_load_failures)`` (messages). Entries of other levels are ignored."""
    errors, local, remote = [], [], []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = entry.get("message", "")
        url = message.split(" ", 1)[0]
        if entry.get("source") == "network" or "Failed to load resource" in message:
            if url.startswith(("http://", "https://")):
                remote.append(message)
            else:
                local.append(message)
        elif re.match(r"https?://", url) and "net::ERR_" in message:
            remote.append(message)  # a remote fetch()/XHR that failed offline
        else:
            errors.append(message)
    return errors, local, remote


# --------------------------------------------------------------------------------------------------
# The browser


class BrowserMissing(RuntimeError):
    """The check cannot run here (no selenium, Chromium or chromedriver, or the driver would not start)."""


def find_executable(candidates, override: str | None = None) -> str | None:
    for name in ([override] if override else list(candidates)):
        if not name:
            continue
        path = name if Path(name).is_absolute() and Path(name).is_file() else shutil.which(name)
        if path:
            return path
    return None


def start_browser(chromium: str | None = None, chromedriver: str | None = None):
    """A headless Chromium (Selenium 4) at 1280x1800 logging the console; BrowserMissing when it can't."""
    reasons = []
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        reasons.append(f"the Python package selenium is not installed ({error})")
        webdriver = Service = None
    browser = find_executable(CHROMIUM_CANDIDATES, chromium)
    driver_path = find_executable(CHROMEDRIVER_CANDIDATES, chromedriver)
    if not browser:
        reasons.append("no Chromium browser (looked for " + ", ".join(
            [chromium] if chromium else CHROMIUM_CANDIDATES) + ")")
    if not driver_path:
        reasons.append("no chromedriver (looked for " + ", ".join(
            [chromedriver] if chromedriver else CHROMEDRIVER_CANDIDATES) + ")")
    if reasons:
        raise BrowserMissing("; ".join(reasons))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as error:  # version mismatch, a browser that will not start, ...
        raise BrowserMissing(f"{driver_path} could not start {browser}: "
                             f"{_clip(str(error).strip(), 400)}") from error
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    driver.set_window_size(WIDTH, HEIGHT)
    return driver


WAIT_JS = r"""
const done = arguments[arguments.length - 1];
const waits = [];
if (document.fonts && document.fonts.ready) waits.push(document.fonts.ready);
if (window.MathJax && MathJax.startup && MathJax.startup.promise) waits.push(MathJax.startup.promise);
const images = Array.from(document.images).filter(i => !i.complete);
for (const i of images) waits.push(new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); }));
const timer = new Promise(r => setTimeout(r, 15000));
Promise.race([Promise.all(waits.map(p => p.catch(() => null))), timer]).then(() => done(true), () => done(false));
"""

RESOURCES_JS = r"""
const local = u => u && u.startsWith('file:');
return {
  stylesheet: Array.from(document.querySelectorAll('link[rel~="stylesheet"][href]')).map(e => e.href),
  script: Array.from(document.querySelectorAll('script[src]')).map(e => e.src),
  image: Array.from(document.querySelectorAll('img[src]')).map(e => e.src),
  broken: Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)
               .map(i => ({src: i.currentSrc || i.src || '', alt: i.alt || ''})),
  text: ((document.querySelector('.bd-article, article, main') || document.body).innerText || '').trim().length,
};
"""

FONTS_JS = r"""
const done = arguments[arguments.length - 1];
const sources = {};
for (const sheet of Array.from(document.styleSheets)) {
  let rules; try { rules = sheet.cssRules; } catch (e) { continue; }
  for (const rule of Array.from(rules || [])) {
    if (rule.type === CSSRule.FONT_FACE_RULE) {
      const fam = rule.style.getPropertyValue('font-family').replace(/["']/g, '').trim();
      const src = rule.style.getPropertyValue('src');
      const base = sheet.href || document.baseURI;
      const urls = Array.from(src.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)).map(m => {
        try { return new URL(m[1], base).href; } catch (e) { return m[1]; } });
      (sources[fam] = sources[fam] || []).push(...urls);
    }
  }
}
document.fonts.ready.then(() => {
  const out = [];
  document.fonts.forEach(f => out.push({family: f.family.replace(/["']/g, ''), status: f.status,
                                        weight: f.weight, style: f.style}));
  done({faces: out, sources: sources});
}, () => done({faces: [], sources: sources}));
"""


def font_problems(report: dict) -> tuple[list[str], list[str], list[str]]:
    """``(problems, local_urls, remote_urls)`` of a FONTS_JS report: a face with status ``error`` fails
    when any of its sources is local (or unknown); a face whose sources are all http(s) is only
    counted (its URLs returned as remote)."""
    problems, local, remote = [], [], []
    for face in report.get("faces", []):
        if face.get("status") != "error":
            continue
        urls = report.get("sources", {}).get(face["family"], [])
        if urls and all(u.startswith(("http://", "https://")) for u in urls):
            remote += urls
            continue
        local += urls
        where = ", ".join(u.rsplit("/", 1)[-1] for u in urls) or "source unknown"
        problems.append(f"missing font: {face['family']} {face.get('weight', '')} "
                        f"{face.get('style', '')} ({where})".replace("  ", " "))
    return problems, local, remote


@dataclass
class PageResult:
    page: str
    problems: list[str] = field(default_factory=list)
    remote_ignored: int = 0
    screenshot: Path | None = None


def check_page(driver, html_dir: Path, page: str, screenshots: Path | None) -> PageResult:
    """Load one page and collect its problems (see the module docstring); save its screenshot."""
    result = PageResult(page)
    path = (Path(html_dir) / page).resolve()
    if not path.is_file():
        result.problems.append("not built (listed in the table of contents, no such file)")
        return result
    driver.set_window_size(WIDTH, HEIGHT)
    driver.get_log("browser")  # drop what an earlier page left
    driver.get(path.as_uri())
    try:
        driver.execute_async_script(WAIT_JS)
    except Exception as error:
        result.problems.append(f"page did not settle: {_clip(str(error), 120)}")

    resources = driver.execute_script(RESOURCES_JS)
    try:
        fonts = driver.execute_async_script(FONTS_JS)
    except Exception:
        fonts = {"faces": [], "sources": {}}
    overflow = driver.execute_script(overflow_js())
    html = driver.page_source
    console = driver.get_log("browser")

    # 2. missing images and files
    reported: set[str] = set()
    missing = dict((url, kind) for kind, url in missing_local_files(
        {k: resources[k] for k in ("stylesheet", "script", "image")}))
    for image in resources["broken"]:
        src = image["src"]
        reported.add(src)
        why = "file does not exist" if src in missing else "did not load"
        label = f" (alt '{_clip(image['alt'], 40)}')" if image["alt"] else ""
        result.problems.append(f"missing image: {_short(src, html_dir)}{label}: {why}")
    for url, kind in missing.items():
        if url not in reported:
            reported.add(url)
            result.problems.append(f"missing {'image' if kind == 'image' else 'file'}: {kind} "
                                   f"{_short(url, html_dir)} does not exist")

    # 3. fonts
    problems, font_urls, remote_fonts = font_problems(fonts)
    result.problems += problems
    reported.update(font_urls)

    # 1. console: JavaScript errors; local load failures not already named above; remote ones counted.
    # Offline, requests to http(s) URLs (a CDN, thebe, analytics) are expected to fail: they are
    # ignored as long as the page still renders (its article holds text), and counted in the output.
    errors, local, remote = classify_console(console)
    renders = resources.get("text", 0) > 0
    for message in errors:
        result.problems.append(f"JavaScript error: {_clip(_short(message, html_dir), 200)}")
    for message in local:
        url = message.split(" ", 1)[0]
        if url in reported or any(url.split("?")[0] == r.split("?")[0] for r in reported):
            continue
        result.problems.append(f"failed to load: {_clip(_short(message, html_dir), 200)}")
    if renders:
        result.remote_ignored = len({m.split(" ", 1)[0] for m in remote} | set(remote_fonts))
    else:
        result.problems.append("the page does not render (its article holds no text)")
        result.problems += [f"failed to load (remote): {_clip(m, 160)}" for m in remote]

    # 4. tracebacks
    result.problems += [f"traceback: {p}" for p in find_tracebacks(html)]

    # 5. overflow
    result.problems += overflow_problems(overflow)

    # 6. screenshot of the whole page
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        height = driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);")
        driver.set_window_size(WIDTH, max(HEIGHT, min(int(height) + 200, MAX_SCREENSHOT_HEIGHT)))
        time.sleep(0.2)
        result.screenshot = screenshots / screenshot_name(page)
        driver.save_screenshot(str(result.screenshot))
        driver.set_window_size(WIDTH, HEIGHT)
    # Every page is checked as a first visit (a reader arriving from a link): what one page stored
    # (the theme's colour mode, ...) must not hide a console error on the next.
    driver.execute_script("try { localStorage.clear(); sessionStorage.clear(); } catch (e) {}")
    return result


def _short(text: str, html_dir: Path) -> str:
    """A message with the book folder's file:// prefix cut off."""
    prefix = Path(html_dir).resolve().as_uri() + "/"
    return text.replace(prefix, "")


def run(html_dir: Path, pages: list[str], screenshots: Path | None, driver) -> list[PageResult]:
    results = []
    for page in pages:
        try:
            result = check_page(driver, html_dir, page, screenshots)
        except Exception as error:  # one page that breaks the browser must not hide the others
            result = PageResult(page, [f"could not be checked: {type(error).__name__}: "
                                       f"{_clip(str(error), 200)}"])
        results.append(result)
        remote = f"  [{result.remote_ignored} remote request(s) failed offline, ignored]" \
            if result.remote_ignored else ""
        if result.problems:
            print(f"FAIL {page}: {len(result.problems)} problem(s){remote}")
            for problem in result.problems:
                print(f"     - {problem}")
        else:
            print(f"OK   {page}{remote}")
        sys.stdout.flush()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", default="_build/screenshots", type=Path,
                        help="folder for the full-page screenshots (default: %(default)s)")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--toc", type=Path, default=None,
                        help="the table of contents (default: <html_dir>/../../_toc.yml)")
    parser.add_argument("--page", action="append", default=None,
                        help="check only this page (path under html_dir); may repeat")
    parser.add_argument("--chromium", default=None, help="the browser (default: /usr/bin/chromium)")
    parser.add_argument("--chromedriver", default=None, help="the driver (default: /usr/bin/chromedriver)")
    parser.add_argument("--allow-missing-browser", action="store_true",
                        help="exit 0 (with a loud BROWSER CHECK SKIPPED line) when no browser is found")
    args = parser.parse_args(argv)

    html_dir = args.html_dir
    if not html_dir.is_dir():
        print(f"browser_check: {html_dir} is not a folder (build the book first)", file=sys.stderr)
        return EXIT_PROBLEMS
    toc = args.toc
    if toc is None:
        candidate = html_dir.resolve().parents[1] / "_toc.yml"  # the book root of <root>/_build/html
        toc = candidate if candidate.is_file() else None
    pages = args.page or pages_to_check(html_dir, toc)
    screenshots = None if args.no_screenshots else args.screenshots

    try:
        driver = start_browser(args.chromium, args.chromedriver)
    except BrowserMissing as error:
        if args.allow_missing_browser:
            print(f"BROWSER CHECK SKIPPED: {error}. The pages were NOT checked in a browser; "
                  f"{INSTALL_HINT}", flush=True)
            return EXIT_OK
        print(f"browser_check: the browser check could not run: {error}.\n"
              f"browser_check: {INSTALL_HINT}\n"
              f"browser_check: or pass --allow-missing-browser to skip it (exit 0).", file=sys.stderr)
        return EXIT_NO_BROWSER

    start = time.perf_counter()
    try:
        results = run(html_dir, pages, screenshots, driver)
    finally:
        driver.quit()
    failed = [r for r in results if r.problems]
    remote = sum(r.remote_ignored for r in results)
    print(f"browser_check: {len(results)} page(s) in {time.perf_counter() - start:.1f} s: "
          f"{len(results) - len(failed)} OK, {len(failed)} with problems "
          f"({sum(len(r.problems) for r in results)} in all); "
          f"{remote} remote request(s) failed offline and were ignored"
          + (f"; screenshots in {screenshots}" if screenshots else ""))
    return EXIT_PROBLEMS if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
