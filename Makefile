# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format clean

setup: $(STAMP)

# Reinstall only when the dependency list changes; the venv itself is reused.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,wandb,extract]'
	@touch $(STAMP)

demo: setup
	$(BIN)/vhd fit --config configs/quickstart.yaml
	$(BIN)/vhd test --config configs/quickstart.yaml --ckpt_path runs/quickstart/checkpoints/best.ckpt --verbose false

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf runs data/synthetic .pytest_cache
