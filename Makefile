# make run: set up, then air the channel on channel.toml.  make test: set up, then the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := ffmpeg nginx libnginx-mod-rtmp chromium fonts-dejavu-core python3-venv espeak-ng tesseract-ocr tesseract-ocr-eng
HLSJS := webtv/http/static/vendor/hls.min.js
CONFIG ?= channel.toml

.PHONY: setup setup-test run test test-fast check clean

setup: .setup-stamp-apt $(VENV)/.stamp $(HLSJS)

setup-test: setup $(VENV)/.stamp-test

.setup-stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/.stamp: pyproject.toml .ci/constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c .ci/constraints.txt -e .
	@touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -c .ci/constraints.txt -e '.[test]'
	@touch $@

$(HLSJS):
	@mkdir -p $(dir $@) .npm
	cd .npm && npm install --silent --no-audit --no-fund --prefix . hls.js@1 >/dev/null
	cp .npm/node_modules/hls.js/dist/hls.min.js $@

run: setup
	$(VENV)/bin/webtv run --config $(CONFIG)

check: setup
	$(VENV)/bin/webtv check --config $(CONFIG)

# two lanes: the five-minute continuity read beside the rest (OWN_LANE in tests/conftest.py)
test: setup-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -ra -n 2 --lanes

# the pure-logic tier for an edit-run loop
test-fast: setup-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m fast

clean:
	rm -rf $(VENV) .npm .setup-stamp-apt webtv/http/static/vendor
