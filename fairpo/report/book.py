"""The book's build (``python -m fairpo.report.book``, what ``make book`` runs).

:func:`build` trains whatever runs of the ``digits`` grid the store lacks, clears the notebook execution
cache when the store or the package changed (jupyter-cache keys a notebook on its code cells only,
:func:`store_fingerprint`), builds the book with warnings as errors, checks the HTML and only then
publishes it (:func:`publish`). The audit's measurements are :mod:`fairpo.report.audit`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fairpo.run import store

BUILD_COMMAND = ("jupyter-book", "build", ".", "-W", "-n", "--keep-going")
FINGERPRINT_FILE = Path("_build") / ".store-fingerprint"
STAGING = Path("_build") / "staging"
"""Where the book is built (``--path-output``; its execution cache lives there too). The HTML is copied
to ``_build/html`` only after the build and the HTML checks pass, so a failed build publishes nothing."""
PUBLISHED = Path("_build") / "html"
EXAMPLE_FEATURES = Path("examples") / "features"
"""Where the build writes the worked example of the chapter "Run it on your data" (relative to the
repository; :func:`fairpo.data.features.write_example` writes the same bytes every time)."""


def toc_pages(toc_path: Path) -> list[str]:
    """The documents of ``_toc.yml`` (root first), as paths without extension."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def store_fingerprint(results_dir: str | os.PathLike, package_dir: str | os.PathLike) -> str:
    """Hash of what the executed notebooks read besides their own code: every run record of the store
    (timings left out, so a rerun that changed nothing keeps the hash) and the package's source."""
    digest = hashlib.sha256()
    results_dir, package_dir = Path(results_dir), Path(package_dir)
    for path in sorted(results_dir.glob(f"*/*/seed*/{store.RECORD_FILE}")):
        digest.update(path.relative_to(results_dir).as_posix().encode())
        digest.update(store.json_bytes(store.without_timings(store.read_json(path))))
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _find_root() -> Path:
    root = Path(__file__).resolve().parents[2]  # fairpo/report/book.py -> the repository
    if not (root / "_toc.yml").is_file():
        raise FileNotFoundError(f"{root} holds no _toc.yml: run the build from a checkout of the repository")
    return root


def _invalidate_cache_if_changed(root: Path, results_dir: Path) -> bool:
    """Forget every execution when the store or the package changed since the last build.

    Both the execution cache and Sphinx's saved environment go: without the environment Sphinx
    re-reads every page, and without the cache every notebook is executed again (clearing only the
    cache would leave Sphinx reusing the pages it read before, with their old outputs).
    """
    marker = root / FINGERPRINT_FILE
    current = store_fingerprint(results_dir, root / "fairpo")
    if marker.is_file() and marker.read_text().strip() == current:
        return False
    for stale in (".jupyter_cache", ".doctrees", "jupyter_execute"):
        shutil.rmtree(root / STAGING / "_build" / stale, ignore_errors=True)
    return True


def publish(built: Path, published: Path) -> None:
    """Replace ``published`` by a copy of ``built`` (the old site is removed only once the copy exists)."""
    fresh = published.with_name(published.name + ".new")
    old = published.with_name(published.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(built, fresh)
    if published.exists():
        published.rename(old)
    fresh.rename(published)
    shutil.rmtree(old, ignore_errors=True)


def build(*, fill_store: bool = True, check: bool = True, jobs: int = 1, quiet: bool = False) -> float:
    """Build the book from the repository root; returns the seconds the whole build took.

    Steps: train what the ``digits`` grid and the worked example's ``features`` grid (in
    :data:`EXAMPLE_FEATURES`) lack (:func:`fairpo.run.grid.ensure_grid`), clear the
    notebook cache if the store or the package changed, ``jupyter-book build . -W -n --keep-going``
    into :data:`STAGING`, record the fingerprint, ``tools/check_book.py`` on the HTML, and only then
    publish it to ``_build/html``. Raises ``RuntimeError`` naming the failed step; a failed step leaves
    the previously published book as it was.
    """
    root = _find_root()
    results_dir = root / "results"
    started = time.perf_counter()
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED=os.environ.get("PYTHONHASHSEED", "0"))
    os.environ["TQDM_DISABLE"] = "1"
    if fill_store:
        from fairpo.run.grid import ensure_grid

        ensure_grid("digits", results_dir=results_dir, jobs=jobs, quiet=quiet)
        # the "Run it on your data" chapter's worked example: a generated features set, its whole grid
        from fairpo.data.features import write_example

        example = write_example(root / EXAMPLE_FEATURES)
        ensure_grid("features", results_dir=results_dir, data_root=str(example), jobs=jobs, quiet=quiet)
    if _invalidate_cache_if_changed(root, results_dir) and not quiet:
        print("store or package changed since the last build: notebooks will be re-executed")
    executable = Path(sys.executable).with_name("jupyter-book")
    staging = root / STAGING
    built = staging / "_build" / "html"
    shutil.rmtree(built, ignore_errors=True)  # never check or publish the pages of an earlier build
    command = [str(executable) if executable.is_file() else BUILD_COMMAND[0], *BUILD_COMMAND[1:3],
               "--path-output", str(staging), *BUILD_COMMAND[3:]]
    if subprocess.run(command, cwd=root, env=env).returncode != 0:
        raise RuntimeError(f"the book build failed: {' '.join(BUILD_COMMAND)} reported errors or warnings "
                           f"(see above and {STAGING}/_build/html/reports/); nothing was published")
    # after the build: the notebooks may have added runs (the training chapter trains one)
    (root / FINGERPRINT_FILE).write_text(store_fingerprint(results_dir, root / "fairpo") + "\n")
    if check and subprocess.run([sys.executable, str(root / "tools" / "check_book.py"), str(built)],
                                cwd=root).returncode != 0:
        raise RuntimeError("the built HTML failed tools/check_book.py (see above); nothing was published")
    publish(built, root / PUBLISHED)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairpo.report.book", description=build.__doc__.splitlines()[0])
    parser.add_argument("--no-fill", action="store_true", help="do not train missing runs of the digits grid")
    parser.add_argument("--no-check", action="store_true", help="skip tools/check_book.py")
    parser.add_argument("--jobs", type=int, default=1, help="runs of the grid trained in parallel")
    args = parser.parse_args(argv)
    try:
        seconds = build(fill_store=not args.no_fill, check=not args.no_check, jobs=args.jobs)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"book built in {seconds:.0f} s: open _build/html/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
