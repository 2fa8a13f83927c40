"""tools/browser_check.py: the pure pieces, and one real headless-Chromium run on two tiny pages."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("browser_check", module)
    spec.loader.exec_module(module)
    return module


bc = _load()


def test_toc_pages_root_parts_chapters_and_nested_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\n"
        "root: book/intro\n"
        "parts:\n"
        "  - caption: A\n"
        "    chapters:\n"
        "      - file: book/verdict\n"
        "      - file: notebooks/results.ipynb\n"
        "  - caption: B\n"
        "    chapters:\n"
        "      - file: book/audit\n"
        "        sections:\n"
        "          - file: book/audit_measure\n"
        "            sections:\n"
        "              - file: book/deeper\n"
        "      - url: https://example.org\n"
        "        title: elsewhere\n",
        encoding="utf-8",
    )
    assert bc.toc_pages(toc) == [
        "book/intro.html", "book/verdict.html", "notebooks/results.html", "book/audit.html",
        "book/audit_measure.html", "book/deeper.html",
    ]


def test_toc_pages_of_the_repository_start_at_the_root():
    pages = bc.toc_pages(ROOT / "_toc.yml")
    assert pages[0] == "book/intro.html"
    assert "book/audit_measure.html" in pages and all(p.endswith(".html") for p in pages)


def test_unreadable_toc_falls_back_to_globbing_with_a_message(tmp_path, capsys):
    html = tmp_path / "html"
    for name in ("index.html", "book/a.html", "_static/x.html", "search.html"):
        (html / name).parent.mkdir(parents=True, exist_ok=True)
        (html / name).write_text("<p>x</p>", encoding="utf-8")
    (tmp_path / "_toc.yml").write_text("root: [unclosed\n", encoding="utf-8")
    assert bc.pages_to_check(html, tmp_path / "_toc.yml") == ["book/a.html", "index.html"]
    assert "cannot read the table of contents" in capsys.readouterr().err


def test_screenshot_name():
    assert bc.screenshot_name("notebooks/results.html") == "notebooks__results.png"
    assert bc.screenshot_name("index.html") == "index.png"


JB_ERROR_CELL = """
<div class="cell tag_raises-exception docutils container">
<div class="cell_output docutils container">
<div class="output traceback highlight-ipythontb notranslate"><div class="highlight"><pre><span></span>
<span class="ne">FileNotFoundError</span>    Traceback (most recent call last)
Cell In[18], line 1
<span class="ne">FileNotFoundError</span>: coco: missing-coco-copy not found
</pre></div></div></div></div>
"""


def test_traceback_detector_finds_an_error_cell_and_marks_raises_exception():
    problems = bc.find_tracebacks(JB_ERROR_CELL)
    assert len(problems) == 1
    assert "on purpose: raises-exception" in problems[0]
    assert "FileNotFoundError: coco" in problems[0]
    unmarked = JB_ERROR_CELL.replace("tag_raises-exception", "")
    assert bc.find_tracebacks(unmarked) and "on purpose" not in bc.find_tracebacks(unmarked)[0]


def test_traceback_detector_finds_printed_tracebacks_and_stderr_errors():
    printed = "<article><pre>Traceback (most recent call last):\n  File \"x.py\"\nKeyError: 'a'</pre></article>"
    assert bc.find_tracebacks(printed) == [
        "'Traceback (most recent call last)' in the page text (1x outside an error output)"]
    stderr = ('<div class="output stderr highlight-myst-ansi"><pre>'
              "ValueError: bad shape\n</pre></div>")
    assert len(bc.find_tracebacks(stderr)) == 1 and "stderr" in bc.find_tracebacks(stderr)[0]
    ansi = "<pre>\x1b[0;31mValueError\x1b[0m</pre>"
    assert any("ANSI" in p for p in bc.find_tracebacks(ansi))


def test_traceback_detector_leaves_clean_pages_alone():
    clean = """
    <article><p>We discuss the word Traceback and errors in prose: an Error: rate of 3%.</p>
    <div class="output stderr"><pre>UserWarning: a warning is not an error
    100%|██████████| 36/36</pre></div>
    <script>console.log("Traceback (most recent call last)")</script>
    <div class="output text_plain"><pre>{'cat': 1}</pre></div></article>
    """
    assert bc.find_tracebacks(clean) == []


def test_missing_local_files(tmp_path):
    (tmp_path / "style.css").write_text("p{}", encoding="utf-8")
    (tmp_path / "a b.png").write_bytes(b"x")
    base = tmp_path.as_uri()
    urls = {
        "stylesheet": [f"{base}/style.css?digest=1", f"{base}/gone.css"],
        "script": [f"{base}/gone.js", f"{base}/gone.js", "https://cdn.example.org/x.js"],
        "image": [f"{base}/a%20b.png#frag", f"{base}/missing.png", "data:image/png;base64,AAAA"],
    }
    assert bc.missing_local_files(urls) == [
        ("stylesheet", f"{base}/gone.css"), ("script", f"{base}/gone.js"), ("image", f"{base}/missing.png")]


def test_overflow_js_and_its_report():
    js = bc.overflow_js(tolerance=3)
    assert "const TOL = 3.0" in js and "getBoundingClientRect" in js and "scrollWidth" in js
    report = {
        "pageScrollWidth": 3010, "viewportWidth": 1280, "columnRight": 1000, "columnWidth": 752,
        "total": 2,
        "offenders": [
            {"path": "main > table", "kind": "past-column", "width": 3000, "right": 3010,
             "scrollWidth": 3000, "clientWidth": 3000, "inner": None},
            {"path": "div.wrap", "kind": "scrolls", "width": 686, "right": 990, "scrollWidth": 900,
             "clientWidth": 686, "inner": "div.wrap > table"},
        ],
    }
    problems = bc.overflow_problems(report)
    assert len(problems) == 3
    assert "page scrolls sideways" in problems[0]
    assert "main > table is 3000 px wide" in problems[1]
    assert "div.wrap (holds div.wrap > table) is clipped: content 900 px" in problems[2]
    assert bc.overflow_problems({"pageScrollWidth": 1280, "viewportWidth": 1280, "offenders": []}) == []
    many = dict(report, total=12, offenders=report["offenders"] * 6)
    assert bc.overflow_problems(many, max_listed=3)[-1] == "overflow: … and 9 more element(s)"


def test_console_entries_are_split():
    entries = [
        {"level": "SEVERE", "source": "javascript", "message": "file:///b.html 3:9 Uncaught Error: boom"},
        {"level": "SEVERE", "source": "network",
         "message": "file:///missing.png - Failed to load resource: net::ERR_FILE_NOT_FOUND"},
        {"level": "SEVERE", "source": "network",
         "message": "https://cdn.example.org/x.js - Failed to load resource: net::ERR_NAME_NOT_RESOLVED"},
        {"level": "WARNING", "source": "console-api", "message": "just a warning"},
    ]
    errors, local, remote = bc.classify_console(entries)
    assert [len(errors), len(local), len(remote)] == [1, 1, 1]
    assert "boom" in errors[0] and "missing.png" in local[0] and "cdn" in remote[0]


def test_missing_browser_is_loud_and_not_a_pass(tmp_path, capsys):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<p>x</p>", encoding="utf-8")
    args = [str(html), "--no-screenshots", "--page", "index.html",
            "--chromium", str(tmp_path / "no-chromium"), "--chromedriver", str(tmp_path / "no-driver")]
    assert bc.main(args) == bc.EXIT_NO_BROWSER == 3
    err = capsys.readouterr().err
    assert "could not run" in err and "apt-get install -y chromium chromium-driver" in err
    assert bc.main(args + ["--allow-missing-browser"]) == 0
    assert "BROWSER CHECK SKIPPED" in capsys.readouterr().out


GOOD = """<!doctype html><html><head><meta charset="utf-8"><title>good</title></head>
<body><main><h1>Fine</h1><p>A short page that fits.</p>
<table><tr><td>a</td><td>b</td></tr></table></main></body></html>"""

BAD = """<!doctype html><html><head><meta charset="utf-8"><title>bad</title></head>
<body><main><h1>Broken</h1><p>A page with three problems.</p>
<table style="width:3000px"><tr><td>wide</td><td>table</td></tr></table>
<img src="missing.png" alt="a plot">
<script>throw new Error("boom")</script></main></body></html>"""


def _browser_or_skip():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    if not (shutil.which("chromium") or Path("/usr/bin/chromium").is_file()):
        pytest.skip("no chromium (apt-get install -y chromium)")
    if not (shutil.which("chromedriver") or Path("/usr/bin/chromedriver").is_file()):
        pytest.skip("no chromedriver (apt-get install -y chromium-driver)")


def test_real_browser_reports_exactly_the_problems_of_the_bad_page(tmp_path):
    _browser_or_skip()
    html = tmp_path / "html"
    html.mkdir()
    (html / "good.html").write_text(GOOD, encoding="utf-8")
    (html / "bad.html").write_text(BAD, encoding="utf-8")
    shots = tmp_path / "shots"
    driver = bc.start_browser()
    try:
        good, bad = bc.run(html, ["good.html", "bad.html"], shots, driver)
    finally:
        driver.quit()

    assert good.problems == []
    kinds = sorted({p.split(":", 1)[0] for p in bad.problems})
    assert kinds == ["JavaScript error", "missing image", "overflow"], bad.problems
    js = [p for p in bad.problems if p.startswith("JavaScript error")]
    assert len(js) == 1 and "boom" in js[0]
    images = [p for p in bad.problems if p.startswith("missing image")]
    assert len(images) == 1 and "missing.png" in images[0] and "does not exist" in images[0]
    overflow = [p for p in bad.problems if p.startswith("overflow")]
    assert any("table" in p and "3000 px wide" in p for p in overflow), overflow
    assert all("table" in p or "page scrolls sideways" in p for p in overflow), overflow
    for page in ("good", "bad"):
        shot = shots / f"{page}.png"
        assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_font_report_fails_local_faces_and_counts_remote_ones():
    report = {
        "faces": [{"family": "Gone", "status": "error", "weight": "400", "style": "normal"},
                  {"family": "Far", "status": "error", "weight": "400", "style": "normal"},
                  {"family": "Fine", "status": "loaded", "weight": "400", "style": "normal"}],
        "sources": {"Gone": ["file:///book/_static/fonts/gone.woff2"],
                    "Far": ["https://fonts.example.org/far.woff2"],
                    "Fine": ["file:///book/_static/fonts/fine.woff2"]},
    }
    problems, local, remote = bc.font_problems(report)
    assert problems == ["missing font: Gone 400 normal (gone.woff2)"]
    assert local == ["file:///book/_static/fonts/gone.woff2"]
    assert remote == ["https://fonts.example.org/far.woff2"]
