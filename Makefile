# MedMO: `make demo` runs the main job, `make test` runs the suite. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := -c constraints-cpu.txt

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_FLAGS) torch==2.13.0
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[test,serve]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medmo speedrun

test: $(STAMP)
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
