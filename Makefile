# Two commands from a fresh machine:  `make book`  and  `make test`.
# Both create .venv on first use (and whenever requirements.txt or pyproject.toml change).

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# torch is installed on its own, before requirements.txt, so that pip never resolves a multi-GB
# CUDA build on a CPU machine. GPU users: see README ("GPU users") and override these two.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=
# `make test` spreads the tests over every core (pytest-xdist; its work units: tests/conftest.py)
TEST_JOBS  ?= auto
STAMP      := $(VENV)/.installed
# The book's browser tests drive the system Chromium (Playwright never downloads one), and npm fetches
# the widget JavaScript at build time: `make test` installs both with apt-get when they are missing.
CHROMIUM   ?= /usr/bin/chromium
export CHROMIUM
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv book test test-quick test-slow release clean clean-book book-test-deps

help:
	@echo "make book    build the online book into _build/html (sets up $(VENV) on first use)"
	@echo "make test    run every test (sets up $(VENV) on first use)"
	@echo "make test-quick  every test but the book build and the browser (minutes, for a maintainer's loop)"
	@echo "make test-slow  run the slow training tests (deselected from make test)"
	@echo "make release regenerate exercises/ from solutions/ (nbgrader generate_assignment)"
	@echo "make clean   remove build output (keeps $(VENV))"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Cached build: only chapters whose code changed are re-executed (jupyter-cache in _build/.jupyter_cache).
# Sphinx does not repeat a warning for a page it considers up to date, so a failed build forgets its
# environment (not the execution cache): the next `make book` reports the same problem again.
book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going --builder html || { rm -rf _build/.doctrees; exit 1; }
	@echo "Book built: file://$(CURDIR)/_build/html/index.html"

book-test-deps:
	@if ! test -x $(CHROMIUM) || ! command -v npm >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    $$(test -x $(CHROMIUM) || echo chromium) $$(command -v npm >/dev/null || echo npm); fi

test: $(STAMP) book-test-deps
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadscope $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadscope -m "not slow and not book" $(PYTEST_ARGS)

# Training to a success criterion (minutes): the CPU-feasibility claims of docs/torch_path.md.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

release: $(STAMP)
	$(BIN)/python -m gated_lib.course release

clean-book:
	rm -rf _build

clean: clean-book
	find . -name __pycache__ -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
