# The two commands a newcomer needs: `make run` and `make test`.
# Both create .venv with a Python >= 3.12 found by scripts/find-python.sh, and install soxbot into it.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= config.example.toml

.PHONY: run test venv lint bench lock clean
run: $(STAMP)
	$(VENV)/bin/soxbot run --config $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/run_bench.py

venv: $(STAMP)

# requirements.lock: the pinned, hash-checked dependency set of the Docker image (Linux, the image's
# Python 3.12, with the chat extra). Regenerate after changing dependencies in pyproject.toml; add
# LOCK_ARGS=--upgrade to move every pin to the newest release that fits.
LOCK_CMD := uv pip compile pyproject.toml --extra chat --group pyproject.toml:build --python-version 3.12 \
	--python-platform linux --generate-hashes -o requirements.lock
lock: $(STAMP)
	$(PY) -m pip install --quiet 'uv>=0.5'
	$(PY) -m $(LOCK_CMD) $(LOCK_ARGS)

$(STAMP): pyproject.toml scripts/find-python.sh
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  PYBIN=$$(scripts/find-python.sh); \
	  echo "Using $$PYBIN to create $(VENV)"; \
	  rm -rf $(VENV); "$$PYBIN" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) -m pip install --quiet -e '.[dev]'; \
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
