"""The book's sources, its audit measurements and its HTML checker.

Building the book takes minutes, so these tests check what the build depends on: every page of the
table of contents exists, every cross-reference to the package names a real object in a module the
API page documents, every equation reference and citation has a target, MathJax is served from the
book itself. The measurements of the audit (``fairpo.report.audit``) are checked on a small run store whose
numbers are worked out by hand, and ``tools/check_book.py`` (run on the built HTML by ``make book``)
on a small hand-written site.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch
import yaml

from fairpo.report import audit, book
from fairpo.run import store

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))

API_MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT / "fairpo")], "fairpo."))
"""Every module and subpackage of fairpo: the API page documents each one."""
PARTS = ["Introduction", "Method", "Data", "Training", "Results", "Your data", "Audit", "Running the paper's setup",
         "Reference"]


def toc_files() -> list[str]:
    return book.toc_pages(ROOT / "_toc.yml")


def book_sources() -> dict[str, str]:
    """Text of every Markdown page of the book."""
    return {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(BOOK.glob("*.md"))}


def roles(text: str, pattern: str) -> list[str]:
    """Contents of MyST roles matching ``{pattern}`content```, with ``title <target>`` reduced to target."""
    found = []
    for content in re.findall(r"\{" + pattern + r"\}`([^`]+)`", text):
        match = re.search(r"<([^>]+)>\s*$", content)
        found.append((match.group(1) if match else content).strip().lstrip("~"))
    return found


# ---------------------------------------------------------------- table of contents and configuration


def test_toc_is_a_book_with_the_agreed_parts():
    assert TOC["format"] == "jb-book"
    assert [part["caption"] for part in TOC["parts"]] == PARTS


def test_every_toc_entry_exists_exactly_once():
    files = toc_files()
    assert len(files) == len(set(files)), "a page is listed twice in _toc.yml"
    for entry in files:
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        present = [c for c in candidates if c.is_file()]
        assert len(present) == 1, f"_toc.yml entry {entry!r}: expected one of {[c.name for c in candidates]}"


def test_every_book_page_is_in_the_toc():
    listed = set(toc_files())
    for name in book_sources():
        assert name.removesuffix(".md") in listed, f"{name} is not in _toc.yml, so it would not be built"


def test_execution_and_exclusion_settings():
    execute = CONFIG["execute"]
    # quoted in YAML: a bare `off` would be the boolean False
    assert execute["execute_notebooks"] == "cache"
    assert isinstance(execute["timeout"], int) and execute["timeout"] >= 600
    assert execute["run_in_temp"] is False  # notebooks resolve the run store from their own folder
    assert CONFIG["only_build_toc_files"] is True
    for pattern in ("_build", "results", ".venv"):
        assert pattern in CONFIG["exclude_patterns"]


def test_mathjax_is_served_from_the_book():
    sphinx = CONFIG["sphinx"]["config"]
    path = sphinx["mathjax_path"]
    assert not re.match(r"^(https?:)?//", path), "mathjax_path must not point to a CDN"
    static = [ROOT / folder for folder in sphinx["html_static_path"]]
    files = [folder / path for folder in static if (folder / path).is_file()]
    assert files, f"mathjax_path {path!r} is not under {sphinx['html_static_path']}"
    content = files[0].read_bytes()
    assert b"MathJax" in content and b"3.2.2" in content  # the npm package mathjax@3.2.2
    assert len(content) > 1_000_000  # the full bundle, not a loader that fetches the rest


def test_no_extension_needs_the_network():
    extensions = CONFIG["sphinx"]["extra_extensions"]
    assert "sphinx.ext.intersphinx" not in extensions
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon"} <= set(extensions)
    assert CONFIG["launch_buttons"].get("thebe") is False
    assert not CONFIG["launch_buttons"].get("binderhub_url")


# ---------------------------------------------------------------- cross-references


def api_modules() -> list[str]:
    text = (BOOK / "api.md").read_text(encoding="utf-8")
    return re.findall(r"^\.\. automodule:: (\S+)\s*$", text, flags=re.M)


def test_api_page_documents_every_package_module():
    documented = api_modules()
    for module in API_MODULES:
        assert module in documented, f"book/api.md does not document {module}"
    for module in documented:
        importlib.import_module(module)


def resolve(target: str):
    """Import the longest module prefix of a dotted name, then walk attributes; (module, object)."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return module, obj
    raise ImportError(target)


@pytest.mark.parametrize("kind", ["func", "class", "meth", "mod", "data", "attr"])
def test_every_package_reference_names_a_documented_object(kind):
    documented = set(api_modules())
    seen = 0
    for name, text in book_sources().items():
        for target in roles(text, f"py:{kind}"):
            seen += 1
            module, obj = resolve(target)
            assert module.__name__ in documented, f"{name}: {target} is in a module that book/api.md omits"
            if kind == "func":
                assert inspect.isfunction(obj), f"{name}: {target} is not a function"
            elif kind == "class":
                assert inspect.isclass(obj), f"{name}: {target} is not a class"
            elif kind == "meth":
                assert callable(obj) and inspect.isclass(resolve(target.rsplit(".", 1)[0])[1])
            elif kind == "mod":
                assert inspect.ismodule(obj) and obj.__name__ == target
    if kind in ("func", "class", "meth", "mod"):
        assert seen > 0, f"no {{py:{kind}}} reference found: the regular expression is broken"


def equation_labels(text: str) -> list[str]:
    """Labels of ``$$ ... $$ (label)`` blocks."""
    return re.findall(r"^\$\$\s*\((\S+)\)\s*$", text, flags=re.M)


def test_equation_references_have_targets_and_labels_are_unique():
    labels = [label for text in book_sources().values() for label in equation_labels(text)]
    assert len(labels) == len(set(labels)), "an equation label is used twice"
    assert {"eq-confusing", "eq-pairs", "eq-dpo", "eq-simpo", "eq-cpo", "eq-privileged", "eq-hinge",
            "eq-minmax", "eq-scaled", "eq-mirror", "eq-descent"} <= set(labels)
    for name, text in book_sources().items():
        for ref in roles(text, "eq"):
            assert ref in labels, f"{name}: {{eq}}`{ref}` has no equation with that label"


def test_section_references_have_targets():
    targets = {label for text in book_sources().values() for label in re.findall(r"^\((\S+)\)=\s*$", text, re.M)}
    for name, text in book_sources().items():
        for ref in roles(text, "ref"):
            assert ref in targets, f"{name}: {{ref}}`{ref}` has no (label)= target"


def test_doc_references_exist():
    for name, text in book_sources().items():
        for ref in roles(text, "doc"):
            target = (ROOT / name).parent / ref
            assert any(target.with_suffix(ext).is_file() for ext in (".md", ".ipynb")), f"{name}: {ref}"


def bib_entries() -> dict[str, str]:
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    starts = list(re.finditer(r"@(\w+)\{([^,\s]+),", text))
    return {m.group(2): text[m.start(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            for i, m in enumerate(starts)}


def test_citations_exist_and_entries_are_complete():
    entries = bib_entries()
    cited = set()
    for name, text in book_sources().items():
        for content in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in content.split(","):
                assert key.strip() in entries, f"{name}: citation {key.strip()!r} is not in references.bib"
                cited.add(key.strip())
    for key, entry in entries.items():
        for field in ("title", "author", "year"):
            assert re.search(rf"^\s*{field}\s*=", entry, re.M), f"references.bib {key}: no {field}"
    # the paper and the works it builds on are all cited somewhere
    assert {"mondal2025fairpo", "rafailov2023dpo", "xu2024cpo", "meng2024simpo", "ramesh2024grpo",
            "sagawa2020gdro", "lin2017focal", "dosovitskiy2021vit", "lin2014coco", "chua2009nuswide"} <= cited
    assert "{bibliography}" in (BOOK / "bibliography.md").read_text(encoding="utf-8")


def test_glue_references_are_glued_by_the_audit_page():
    measure = (BOOK / "audit_measure.md").read_text(encoding="utf-8")
    glued = set(re.findall(r'glue\("(\w+)"', measure))
    for keys in re.findall(r"for key in \(([^)]*)\)", measure):  # keys glued in a loop
        glued |= set(re.findall(r'"(\w+)"', keys))
    for name, text in book_sources().items():
        for content in re.findall(r"\{glue:text\}`([^`]+)`", text):
            doc, _, rest = content.rpartition("::")
            key = rest.rsplit(":", 1)[0]
            if doc:
                assert doc == "audit_measure.md", f"{name}: glue from {doc}"
            assert key in glued, f"{name}: glue key {key!r} is never glued by book/audit_measure.md"


# ---------------------------------------------------------------- the audit's measurements


def write_run(results_dir: Path, variant: str, seed: int, logits, labels, privileged, history=None,
              status: str = store.FINISHED) -> Path:
    folder = store.run_dir(results_dir, "digits", variant, None, seed)
    folder.mkdir(parents=True)
    store.write_record(folder, {"status": status, "data": {"privileged": privileged},
                                "timings": {"seconds": 1.0}})
    store.save_checkpoint(folder / store.TEST_LOGITS_FILE,
                          {"logits": torch.tensor(logits, dtype=torch.float32),
                           "labels": torch.tensor(labels, dtype=torch.float32)})
    if history is not None:
        store.save_history(folder / store.EPOCH_HISTORY_FILE, history)
    return folder


# Four samples, two labels, label 1 privileged, batches of 2.
#  label 0 (N): scores 4, 3, 2, 1 with labels 0, 1, 1, 0. Over the split the positives sit at ranks 2
#    and 3: AP = (1/2 + 2/3) / 2 = 7/12. Batch 1 ranks its positive second (AP 1/2), batch 2 first
#    (AP 1): batch-averaged 3/4.
#  label 1 (P): scores -1, -2, -3, 5 with labels 0, 0, 0, 1. Over the split AP = 1. Batch 1 has no
#    positive of group P at all and counts 0, batch 2 has AP 1: batch-averaged 1/2.
#  Predictions (z >= 0): label 0 everywhere, label 1 only for sample 3. On P, samples 0-2 have no true
#    and no predicted label: F1 1 each under "one", 0 under "zero"; sample 3 is exact (F1 1).
LOGITS = [[4.0, -1.0], [3.0, -2.0], [2.0, -3.0], [1.0, 5.0]]
LABELS = [[0, 0], [1, 0], [1, 0], [0, 1]]


def test_evaluation_audit_on_hand_computed_predictions(tmp_path):
    write_run(tmp_path, "bce", 0, LOGITS, LABELS, [1])
    frame = audit.evaluation_audit(tmp_path, "digits", batch_size=2).set_index("group")
    p, n, overall = frame.loc["privileged"], frame.loc["non_privileged"], frame.loc["overall"]
    assert p["mAP"] == pytest.approx(1.0) and p["mAP_batched"] == pytest.approx(0.5)
    assert n["mAP"] == pytest.approx(7 / 12) and n["mAP_batched"] == pytest.approx(0.75)
    # overall: mean of the two labels' AP; per batch, batch 1 only has label 0 (AP 1/2), batch 2 both
    assert overall["mAP"] == pytest.approx((7 / 12 + 1) / 2)
    assert overall["mAP_batched"] == pytest.approx((0.5 + 1.0) / 2)
    assert p["f1_one"] == pytest.approx(1.0) and p["f1_zero"] == pytest.approx(0.25)
    assert p["f1_batched"] == pytest.approx(0.25)  # batch means (0, 1/2), equal weights
    assert p["accuracy"] == pytest.approx(1.0)
    # N is label 0 alone, predicted present everywhere: F1 per sample 0, 1, 1, 0 (never 0/0)
    assert n["f1_one"] == pytest.approx(0.5) and n["f1_zero"] == pytest.approx(0.5)
    assert n["accuracy"] == pytest.approx(0.5)
    assert set(frame["variant"]) == {"bce"} and set(frame["seed"]) == {0}


def test_evaluation_audit_skips_unfinished_runs_and_reads_an_empty_store(tmp_path):
    empty = audit.evaluation_audit(tmp_path / "nothing-here")
    assert empty.empty and {"mAP", "mAP_batched", "f1_one", "f1_zero"} <= set(empty.columns)
    write_run(tmp_path, "bce", 0, LOGITS, LABELS, [1], status="running")
    assert audit.evaluation_audit(tmp_path).empty
    assert audit.selection_audit(tmp_path).empty


def history(val, test):
    """Per-epoch rows with the overall and privileged mAP of both splits (other groups copy overall)."""
    rows = []
    for epoch, ((v_all, v_p), (t_all, t_p)) in enumerate(zip(val, test)):
        row = {"epoch": epoch}
        for split, (all_, p) in (("val", (v_all, v_p)), ("audit.test", (t_all, t_p))):
            row.update({f"{split}.overall.mAP": all_, f"{split}.privileged.mAP": p,
                        f"{split}.non_privileged.mAP": all_})
        rows.append(row)
    return rows


def test_selection_audit_picks_the_first_best_epoch_of_each_split(tmp_path):
    # validation peaks at epoch 1 (0.6, tied at epoch 3: the first counts); the test split at epoch 2
    rows = history(val=[(0.5, 0.1), (0.6, 0.2), (0.55, 0.3), (0.6, 0.4)],
                   test=[(0.4, 0.1), (0.5, 0.25), (0.7, 0.15), (0.45, 0.5)])
    write_run(tmp_path, "cpo", 1, LOGITS, LABELS, [1], history=rows)
    frame = audit.selection_audit(tmp_path)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["epoch_val"], row["epoch_test"]) == (1, 2)
    assert row["overall.val_selected"] == pytest.approx(0.5)
    assert row["overall.test_selected"] == pytest.approx(0.7)
    assert row["privileged.val_selected"] == pytest.approx(0.25)
    assert row["privileged.test_selected"] == pytest.approx(0.15)


def test_selection_audit_needs_per_epoch_test_metrics(tmp_path):
    rows = [{"epoch": 0, "val.overall.mAP": 0.5}, {"epoch": 1, "val.overall.mAP": 0.6}]
    write_run(tmp_path, "bce", 0, LOGITS, LABELS, [1], history=rows)
    assert audit.selection_audit(tmp_path).empty


def test_mean_over_seeds_counts_and_averages():
    import pandas as pd

    frame = pd.DataFrame({"variant": ["a", "a", "b"], "seed": [0, 1, 0], "x": [1.0, 3.0, 5.0]})
    out = audit.mean_over_seeds(frame, ["variant"]).set_index("variant")
    assert out.loc["a", "x"] == 2.0 and out.loc["a", "n"] == 2
    assert out.loc["b", "x"] == 5.0 and out.loc["b", "n"] == 1
    assert "seed" not in out.columns


def test_store_fingerprint_follows_records_and_code_but_not_timings(tmp_path):
    results, package = tmp_path / "results", tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    folder = write_run(results, "bce", 0, LOGITS, LABELS, [1])
    first = book.store_fingerprint(results, package)
    record = store.read_record(folder)
    store.write_record(folder, dict(record, timings={"seconds": 99.0}))
    assert book.store_fingerprint(results, package) == first
    store.write_record(folder, dict(record, best_epoch=3))
    second = book.store_fingerprint(results, package)
    assert second != first
    (package / "a.py").write_text("x = 2\n")
    assert book.store_fingerprint(results, package) != second


# ---------------------------------------------------------------- the HTML checker


def load_checker():
    spec = importlib.util.spec_from_file_location("check_book", ROOT / "tools" / "check_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(body: str, head: str = "") -> str:
    return f"<html><head>{head}</head><body><nav><a href='#'>menu</a></nav><article>{body}</article></body></html>"


def table(rows: int) -> str:
    body = "".join(f"<tr><td>method {i}</td><td>{i}</td></tr>" for i in range(rows))
    return f"<table><thead><tr><th>m</th><th>v</th></tr></thead><tbody>{body}</tbody></table>"


def good_site(tmp_path: Path, checker) -> tuple[Path, Path]:
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "book").mkdir()
    (html / "_static" / "mathjax").mkdir(parents=True)
    (html / checker.MATHJAX).write_text("/* MathJax */")
    (html / "notebooks" / "plot.png").write_bytes(b"\x89PNG" + bytes(5_000))
    text = "words " * 60
    mathjax = f"<script defer src='../{checker.MATHJAX}?v=1'></script>"
    pages = {
        "book/intro.html": page(f"<h1 id='top'>Intro</h1><p>{text}</p><a href='../notebooks/results.html#t1'>r</a>"
                                "<a href='https://example.org'>out</a>", mathjax),
        "notebooks/results.html": page(f"<p id='t1'>Table 1 and Table 2. {text}</p>{table(6)}{table(6)}"),
        "notebooks/ablations.html": page(f"<p>Table 3, Table 4. {text}</p>{table(7)}{table(3)}"),
        "notebooks/method.html": page(f"<p>{text}</p><img src='plot.png'><img src='plot.png'/>"),
        "notebooks/dynamics.html": page(f"<p>{text}</p><img src='plot.png'>"),
        "notebooks/train.html": page(f"<p>{text}</p><img src='plot.png'>"),
    }
    for name, content in pages.items():
        (html / name).write_text(content)
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "parts": [
        {"caption": "R", "chapters": [{"file": f"notebooks/{n}"} for n in ("results", "ablations", "method",
                                                                           "dynamics", "train")]}]}))
    return html, toc


def test_check_book_passes_a_complete_site(tmp_path):
    checker = load_checker()
    html, toc = good_site(tmp_path, checker)
    assert checker.check(html, toc) == []


def test_check_book_finds_each_kind_of_problem(tmp_path):
    checker = load_checker()
    html, toc = good_site(tmp_path, checker)
    (html / "notebooks" / "dynamics.html").write_text(page("<p>nothing much</p>"))
    (html / "notebooks" / "train.html").write_text(page(
        "<h1>An Exception was encountered at 'In [3]'.</h1><p>" + "w " * 200 + "</p><img src='plot.png'>"))
    (html / "notebooks" / "ablations.html").write_text(page("<p>Table 3 only " + "w " * 200 + "</p>" + table(5)))
    (html / "book" / "intro.html").write_text(page(
        "<p>" + "words " * 60 + "</p><a href='missing.html'>x</a><a href='../notebooks/results.html#nope'>y</a>",
        "<script src='https://cdn.example.org/mathjax.js'></script>"))
    problems = "\n".join(checker.check(html, toc))
    assert "notebooks/dynamics.html: empty page" in problems
    assert "notebooks/dynamics.html: 0 plot image(s)" in problems
    assert "notebooks/ablations.html: does not mention Table 4" in problems
    assert "notebooks/ablations.html: 1 tables with at least 3 rows" in problems
    assert "broken link <a> missing.html" in problems
    assert "broken anchor ../notebooks/results.html#nope" in problems
    assert "loads https://cdn.example.org/mathjax.js from the network" in problems
    assert "loads a MathJax other than the bundled" in problems
    assert "notebooks/train.html: shows papermill's error banner" in problems


# ---------------------------------------------------------------- the build publishes only what passed


def _fake_build(returncodes):
    """A stand-in for subprocess.run: the book build writes a page, then each call returns the next code."""
    import subprocess

    codes = iter(returncodes)

    def run(command, **kwargs):
        if "--path-output" in command:
            out = Path(command[command.index("--path-output") + 1]) / "_build" / "html"
            out.mkdir(parents=True, exist_ok=True)
            (out / "index.html").write_text("new")
        return subprocess.CompletedProcess(command, next(codes))

    return run


@pytest.mark.parametrize("codes, published", [
    ([1], "old"),     # the build fails: nothing published
    ([0, 1], "old"),  # the build passes, the HTML check fails: nothing published
    ([0, 0], "new"),  # both pass: the new site replaces the old one
])
def test_only_a_build_that_passes_is_published(tmp_path, monkeypatch, codes, published):
    site = tmp_path / "_build" / "html"
    site.mkdir(parents=True)
    (site / "index.html").write_text("old")
    monkeypatch.setattr(book, "_find_root", lambda: tmp_path)
    monkeypatch.setattr(book.subprocess, "run", _fake_build(codes))
    if published == "old":
        with pytest.raises(RuntimeError, match="nothing was published"):
            book.build(fill_store=False, quiet=True)
    else:
        book.build(fill_store=False, quiet=True)
    assert (site / "index.html").read_text() == published
    assert sorted(p.name for p in (tmp_path / "_build").iterdir() if p.name.startswith("html")) == ["html"]


def test_each_script_appears_once_per_page_whatever_its_empty_file_name():
    from sphinx.builders.html._assets import _JavaScript

    from fairpo.report.sphinx_fixes import unique_scripts

    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=body), _JavaScript("", body=body),
               _JavaScript("_static/a.js", defer="defer"), _JavaScript("_static/a.js")]
    kept = unique_scripts(scripts)
    assert kept == [scripts[0], scripts[1], scripts[3]]
