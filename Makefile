# pycosim: `make demo` and `make test` each do all set-up first (idempotent; quick when done).
# Set-up: ngspice + libngspice0 from Debian (46 with KLU from bookworm-backports on Debian 12; tools/install-ngspice.sh), a venv in .venv, pycosim with [dev,dask].
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pycosim-installed

.PHONY: setup system-deps demo test test-slow bench netlists clean

setup: $(STAMP)

system-deps:
	@bash tools/install-ngspice.sh
	@$(PY) -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; }

# torch is pinned to 2.13.0 (a CPU wheel) by constraints.txt; pyproject keeps a loose range.
$(STAMP): pyproject.toml constraints.txt | system-deps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,dask]'
	touch $(STAMP)

demo: setup
	$(BIN)/pycosim demo --out pycosim-demo

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

bench: setup
	$(BIN)/python benchmarks/spice_overhead.py
	$(BIN)/python benchmarks/crossbar_surrogate.py
	$(BIN)/python benchmarks/integrator_surrogate.py
	$(BIN)/python benchmarks/sweep_scaling.py
	$(BIN)/python benchmarks/lif_surrogate.py
	$(BIN)/python benchmarks/tcam_surrogate.py
	$(BIN)/python benchmarks/encoder_surrogate.py
	$(BIN)/python benchmarks/amplifier_surrogate.py

netlists: setup
	$(BIN)/pycosim netlist --benches netlists

clean:
	rm -rf $(VENV) pycosim-demo build dist *.egg-info
