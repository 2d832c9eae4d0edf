# kdcg: knowledge distillation of noisy force labels for coarse-grained force fields.
# The science lives in workflow/src/kdcg; rules in workflow/rules/<stage>.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/config.smk"
include: "workflow/rules/aa.smk"
include: "workflow/rules/mapping.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        get_final_targets(),
