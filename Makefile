PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test venv clean

# Everything on this machine: SQLite, bundled Redis, API on http://127.0.0.1:8000.
run: $(VENV)/.installed
	$(BIN)/jobsched embedded

# The whole suite: SQLite + bundled Redis, and MariaDB (127.0.0.1:3306) + Redis (127.0.0.1:6379),
# in TEST_PROCESSES processes (pytest-xdist; each takes whole modules).
TEST_PROCESSES ?= 2
test: $(VENV)/.installed-test
	$(BIN)/ruff check api dispatcher worker common jobsched migrations tests bench
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadscope $(PYTEST_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

clean:
	rm -rf $(VENV) data *.egg-info
