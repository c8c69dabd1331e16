# Quick start: `make demo` (install + a short training run) and `make test` (install + test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RLRUN := $(VENV)/bin/rlrun
EXTRAS ?= test

.PHONY: install demo test test-slow bench lint tensorboard clean

install: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: install
	$(RLRUN) train env=blockchain agent=ddpg

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

bench:
	$(MAKE) install EXTRAS=test,bench,sweep
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check rlrun tests bench

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf $(VENV) build *.egg-info
