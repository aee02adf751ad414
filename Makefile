# item2vec — `make demo` runs the main job on synthetic data, `make test` runs the suite.
# Both create .venv on first use and install the pinned, known-good set (constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and exactly: the CPU wheel on disk (a range would fetch a CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,ann,spark,tune]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipelines.demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check item2vec pipelines tests benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf runs .pytest_cache
