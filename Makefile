# Two commands for a fresh machine (Python 3.11 + pip):
#   make demo   set up .venv and run the main job on the embedded default data
#   make test   set up .venv and run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.theseus-installed
OUT ?= out

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	OUT=$(OUT) VENV=$(VENV) bash scripts/demo.sh

test: setup
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check theseus tests benchmarks
	$(VENV)/bin/mypy theseus

clean:
	rm -rf $(VENV) $(OUT)
