# Wharf: `make run` serves the site; `make test` runs every test with real services.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PORT ?= 8000

.PHONY: run test venv deps dev-deps system-deps superuser lint format migrate bench bench-scaleout clean

$(PY):
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "Python's venv module is missing. On Debian: apt-get install python3-venv"; exit 1; }
	@echo "==> Creating the virtualenv in $(VENV)/"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar on --upgrade pip

$(VENV)/.deps: requirements.txt | $(PY)
	@echo "==> Installing the Python packages of requirements.txt into $(VENV)/ (first run: a few minutes)"
	$(PIP) install --progress-bar on -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt | $(PY)
	@echo "==> Installing the development packages of requirements-dev.txt into $(VENV)/"
	$(PIP) install --progress-bar on -r requirements-dev.txt
	touch $@ $(VENV)/.deps

venv: $(PY)
deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

migrate: deps
	$(PY) manage.py migrate --noinput

run: deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	exec $(PY) manage.py serve

superuser: deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createadmin

# Debian packages the tests need (root only; a non-root developer installs them once by hand).
system-deps:
	@if [ "$$(id -u)" = 0 ]; then bash tests/system-packages.sh; \
	else echo "Not root: assuming the packages in tests/system-packages.sh are installed."; fi

test: dev-deps system-deps
	bash tests/run-all.sh

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports  # one-way layers (pyproject.toml, docs/layers.md)

format: dev-deps
	$(VENV)/bin/ruff format .

bench: dev-deps system-deps
	$(PY) bench/registry.py

# Pushes and pulls through HAProxy to 1, 2 and 3 nodes on a private PostgreSQL and Redis (bench/scaleout.py).
bench-scaleout: dev-deps system-deps
	bash tests/services.sh $(PY) bench/scaleout.py

clean:
	rm -rf $(VENV) .pytest_cache
