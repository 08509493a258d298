# Two commands set everything up on a fresh machine:
#   make demo   virtual environment + the main job on the bundled prior
#   make test   virtual environment + the test suite
# TORCH selects the torch wheel: the default pins 2.13.0 (the local CPU build on
# these machines); on a GPU machine use e.g. `make demo TORCH="torch --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/torch-pin.txt
	$(BIN)/python -m pip install --quiet --constraint $(VENV)/torch-pin.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

examples/phantom_ct.dcm: $(STAMP)
	$(BIN)/recon data examples -o examples

demo: $(STAMP) examples/phantom_ct.dcm
	$(BIN)/recon ct --projections 23 examples/phantom_ct.dcm -o out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
