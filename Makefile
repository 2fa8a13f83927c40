# Every target installs what it needs first, so a fresh clone needs only Python 3.10+ and make.
# `make test` is the README's test command and what CI runs; `make book` is the main job (the book).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch build to install; override for your machine, e.g. make install TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0

.PHONY: install browser test book bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,book]"
	touch $(STAMP)

install: $(STAMP)

# The results notebooks read the digits grid from results/; filling it first with two jobs is faster than
# letting the first notebook train its 45 runs one by one (they would call the same ensure_grid).
test: install browser
	$(VENV)/bin/fairpo reproduce --dataset digits --via python --jobs 2 --results-dir results
	$(VENV)/bin/pytest -n 2 --dist loadfile --nbval --nbval-cell-timeout=1800 tests notebooks

bench: install
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py

# The whole book from the embedded data set: trains what the digits grid lacks, builds with
# jupyter-book build . -W -n --keep-going (zero warnings), then checks the HTML (tools/check_book.py),
# then opens every page in headless Chromium (tools/browser_check.py: JS errors, missing images/fonts,
# tracebacks, content wider than 1280 px; screenshots in _build/screenshots). Chromium comes from apt;
# without it the browser check stops the target (exit 3) instead of passing silently, unless
# BROWSER_CHECK=--allow-missing-browser, which skips it with a loud message.
BROWSER_CHECK ?=
book: install browser
	$(PY) -m fairpo.report.book --jobs 2
	$(PY) tools/browser_check.py _build/html $(BROWSER_CHECK)

# Debian's chromium and chromium-driver, for the browser check (make book) and its test (make test)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || apt-get install -y -q chromium chromium-driver \
	  || (apt-get update -q && apt-get install -y -q chromium chromium-driver) \
	  || sudo apt-get install -y -q chromium chromium-driver \
	  || echo "make: could not install chromium/chromium-driver; the browser check will fail (exit 3)" >&2

clean:
	rm -rf _build results .pytest_cache
