# Everything a fresh clone needs is installed by these targets: CI runs `make test` on a new machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: setup ffmpeg chromium test demo bench bench-throughput clean up down

setup: $(STAMP) ffmpeg

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[local,dev]'
	@touch $(STAMP)

ffmpeg:
	@if ! command -v ffprobe >/dev/null 2>&1 || ! command -v ffmpeg >/dev/null 2>&1; then \
		echo "ffmpeg/ffprobe missing: installing Debian's ffmpeg"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg; \
	fi

# The UI tests drive Debian's chromium through Playwright (Playwright cannot download a browser here).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "chromium missing: installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi

# Three pytest workers: the tests against the `make up` stack (tests/stack: two xdist groups, each with
# its own stack) mostly wait on real servers, while the third worker runs the rest.
PYTEST_WORKERS ?= 3

test: setup chromium
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/tiktok-pipeline demo

bench: setup
	$(PY) bench/upload.py
	$(PY) bench/transcode.py
	$(PY) bench/contention.py
	$(PY) bench/pipeline.py
	$(PY) bench/ratelimit.py

# Warm against cold flow-run starts, then N posts over M accounts through the scale-out topology
# (PostgreSQL and Redis on this machine): minutes.
bench-throughput: setup
	$(PY) bench/warmstart.py
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .prefect .pytest_cache .hypothesis build *.egg-info

# The whole pipeline in the background (Prefect server + UI on :4200, sandbox, moto S3, worker); see docs/deploy.md.
up: setup
	$(PY) -m deployments.up up

down:
	$(PY) -m deployments.up down
