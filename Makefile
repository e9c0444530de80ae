# make run: set everything up and start the service on SQLite (http://127.0.0.1:5000/borne/signup;
#   make run PORT=5077 HOST=0.0.0.0 serves elsewhere, and the mails' links follow)
# make test: set everything up and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HTMX := consentsvc/static/vendor/htmx.min.js
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run newsletter test setup assets translations lint messages browser bench wheels image

# Links in mails point at HOST:PORT unless CONSENTSVC_BASE_URL says otherwise.
run: export CONSENTSVC_BASE_URL ?= http://$(HOST):$(PORT)
run: setup
	$(BIN)/consentsvc db upgrade
	$(BIN)/consentsvc demo --people 50
	@echo "Open $(CONSENTSVC_BASE_URL)/borne/signup - mails land in instance/mail/ and are printed below."
	$(BIN)/consentsvc worker & worker=$$!; trap 'kill $$worker' EXIT INT TERM; \
		$(BIN)/consentsvc run --host $(HOST) --port $(PORT)

# The demo's newsletter, as a processor sends it (while `make run` runs; same PORT and HOST).
newsletter: export CONSENTSVC_BASE_URL ?= http://$(HOST):$(PORT)
newsletter: $(VENV)/.installed
	$(BIN)/consentsvc demo send --library borne

# The suite runs in parallel, one pytest-xdist worker per core (see docs/testing.md);
# `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto
test: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

setup: $(VENV)/.installed assets translations browser

# The browser tests use Debian's chromium; Playwright's own browser download does not work here.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium >/dev/null 2>&1 \
				|| { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
		else \
			echo "chromium is missing: install it (apt-get install chromium) to run the browser tests."; \
		fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# htmx comes from npm (version pinned in package-lock.json) and is served from static/vendor;
# fetched again only when the lock file is newer than the copy.
assets: $(HTMX)

$(HTMX): package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --silent && cp node_modules/htmx.org/dist/htmx.min.js $(HTMX); \
	else \
		echo "npm not found: htmx is not installed; every page still works as a plain form."; \
	fi

# Each catalogue is compiled again only when its .po file is newer than its .mo.
CATALOGUES := $(wildcard consentsvc/translations/*/LC_MESSAGES/messages.po)
translations: $(CATALOGUES:.po=.mo)

consentsvc/translations/%/LC_MESSAGES/messages.mo: consentsvc/translations/%/LC_MESSAGES/messages.po $(VENV)/.installed
	$(BIN)/pybabel compile -d consentsvc/translations -l $*

# Refresh the catalogues after changing texts in code or templates.
messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o consentsvc/translations/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i consentsvc/translations/messages.pot -d consentsvc/translations --no-fuzzy-matching

# The benchmark of a million people (docs/performance.md); not part of `make test`.
# `make bench BENCH_ARGS=--quick` for a before/after in a few minutes.
bench: setup
	$(BIN)/python bench/national.py $(BENCH_ARGS)

# The wheel and every wheel it needs, in dist/wheels: all the container build installs from.
# Each package is resolved again by IMAGE_PYTHON, the Python the image will run (Debian's, as
# in the base below), since its markers can ask for other packages than this venv's Python
# (redis wants async-timeout before 3.11.3).
IMAGE_PYTHON ?= /usr/bin/python3
wheels: setup
	rm -rf dist/wheels
	$(BIN)/pip wheel --quiet --disable-pip-version-check --wheel-dir dist/wheels .
	@if [ -x "$(IMAGE_PYTHON)" ] && "$(IMAGE_PYTHON)" -m pip --version >/dev/null 2>&1; then \
		"$(IMAGE_PYTHON)" -m pip wheel --quiet --disable-pip-version-check \
			--wheel-dir dist/wheels --find-links dist/wheels consentsvc; \
	fi

# The container image (Containerfile). IMAGE_BASE is the base: by default a Debian made here
# with debootstrap (container/base.sh), for machines that reach no container registry;
# `make image IMAGE_BASE=docker.io/library/python:3.11-slim-bookworm` where one is reached.
IMAGE ?= localhost/consentsvc:latest
IMAGE_BASE ?= localhost/consentsvc-base:bookworm
image: wheels
	@if [ "$(IMAGE_BASE)" = localhost/consentsvc-base:bookworm ]; then bash container/base.sh; fi
	podman build --quiet --format docker --isolation chroot --build-arg BASE=$(IMAGE_BASE) -t $(IMAGE) -f Containerfile .

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
