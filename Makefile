# MedMO: `make demo` runs the main job, `make test` runs the suite. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := -c constraints-cpu.txt
# One stamp per finished setup step. The demo needs medmo with the serve extra only; the test extra
# (pytest, DeepSpeed, the reference metric packages with their CoreNLP jars) is added by `make test`.
TORCH_STAMP := $(VENV)/.installed-torch
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test install clean

$(TORCH_STAMP): constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_FLAGS) torch==2.13.0
	touch $@

$(DEMO_STAMP): $(TORCH_STAMP) pyproject.toml
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[serve]'
	touch $@

# '.[test,serve]' includes everything '.[serve]' installs, so the demo's setup is done as well.
$(TEST_STAMP): $(TORCH_STAMP) pyproject.toml
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e '.[test,serve]'
	touch $(DEMO_STAMP) $@

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/medmo speedrun

test: $(TEST_STAMP)
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
