# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# setup is redone only when requirements.txt or pyproject.toml change (stamp keyed on their hash)
STAMP  := $(VENV)/.stamp-$(shell cat requirements.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
DEMO   := data/demo/cohort.json
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: setup demo run test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.stamp-*
	@touch $@

demo: $(DEMO)

$(DEMO): | $(STAMP)
	$(BIN)/nbrisk demo build --out data/demo

run: setup $(DEMO)
	@echo ""
	@echo "  NBRisk is starting at  http://$(HOST):$(PORT)"
	@echo ""
	$(BIN)/streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT) --server.headless true

test: setup $(DEMO)
	$(BIN)/python -m pytest

bench: setup $(DEMO)
	$(BIN)/nbrisk bench all

clean:
	rm -rf $(VENV) data runs reports test-artifacts
