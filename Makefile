# Every target installs what it needs first, so a fresh clone needs only Python 3.10+ and make.
# `make test` is the README's test command and what CI runs; `make book` is the main job.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch build to install; override for your machine, e.g. make install TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0

.PHONY: install test book bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: install
	$(VENV)/bin/pytest --nbval tests notebooks

bench: install
	$(PY) benchmarks/bench_core.py

book: bench
	@echo "The book (issue 6) is not built yet: for now 'make book' runs the core benchmarks above."

clean:
	rm -rf _build results .pytest_cache
