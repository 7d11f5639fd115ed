# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# setup is redone only when requirements.txt or pyproject.toml change (stamp keyed on their hash)
STAMP  := $(VENV)/.stamp-$(shell cat requirements.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
DEMO   := data/demo/cohort.json
# the demo's frozen prognosis bundle: the app and the browser tests load it instead of fitting at start
# (about 70 MB, so built here once rather than committed; refitted when the cohort, the classifier or the
# installed libraries change, since a bundle from other library versions is refused)
BUNDLE := models/prognosis_demo/card.json
HOST   ?= 127.0.0.1
PORT   ?= 8501
# the app requires sign-in unless NBRISK_AUTH=off; `make run` turns it off for the local demo on localhost
# only (an NBRISK_AUTH from the environment or the command line wins)
NBRISK_AUTH ?= $(if $(filter 127.0.0.1 localhost ::1,$(HOST)),off,on)

.PHONY: setup demo bundle radiomics-model run test bench clean

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

bundle: $(BUNDLE)

$(BUNDLE): $(DEMO) $(wildcard models/swin_art_demo.safetensors) $(STAMP)
	@if [ -f models/swin_art_demo.safetensors ]; then \
	  echo "$(BIN)/nbrisk prognosis fit --cohort data/demo --out models/prognosis_demo --n-jobs 1"; \
	  $(BIN)/nbrisk prognosis fit --cohort data/demo --out models/prognosis_demo --n-jobs 1; \
	else echo "no models/swin_art_demo.safetensors: no demo prognosis bundle (the app fits at start)"; fi

# the radiomics model beside Swin-ART on the Risk and Cohort pages: models/radiomics_demo.json (a linear
# rad-score, ~10 kB of JSON, committed) with its saved test evaluation and the survival grid's C-index with
# radiomics vs Swin-ART CT features; rebuild it after the demo cohort or the classifier change (~10 min)
radiomics-model: $(DEMO) | $(STAMP)
	@mkdir -p runs
	$(BIN)/nbrisk radiomics --cohort data/demo --out runs/radiomics_demo.parquet
	$(BIN)/nbrisk prognosis fit --cohort data/demo --features radiomics --grid full --out runs/prognosis_radiomics
	$(BIN)/nbrisk prognosis fit --cohort data/demo --features both --grid full --out runs/prognosis_ct
	$(BIN)/nbrisk radiomics --cohort data/demo --out runs/radiomics_demo.parquet \
	  --baseline runs/radiomics_baseline.json --save-model models/radiomics_demo.json \
	  --grid-card runs/prognosis_radiomics --grid-card runs/prognosis_ct

run: setup $(DEMO) $(BUNDLE)
	@echo ""
	@echo "  NBRisk is starting at  http://$(HOST):$(PORT)"
	@if [ "$(NBRISK_AUTH)" = "off" ]; then \
	  echo "  Sign-in is OFF (NBRISK_AUTH=off): local demo, everyone is admin. Do not publish this server;"; \
	  echo "  'make run NBRISK_AUTH=on' requires sign-in (users: nbrisk users add NAME)."; \
	else echo "  Sign-in is ON (NBRISK_AUTH=$(NBRISK_AUTH)); add users with: nbrisk users add NAME"; fi
	@echo ""
	NBRISK_AUTH=$(NBRISK_AUTH) $(BIN)/streamlit run streamlit_app.py \
	  --server.address $(HOST) --server.port $(PORT) --server.headless true

test: setup $(DEMO) $(BUNDLE)
	$(BIN)/python -m pytest

bench: setup $(DEMO) $(BUNDLE)
	$(BIN)/nbrisk bench all
	$(BIN)/python benchmarks/bench_workflow.py

clean:
	rm -rf $(VENV) data runs reports test-artifacts models/prognosis_demo
