"""kdcg: knowledge distillation of noisy force labels for coarse-grained force fields.

One module per stage of the workflow; each is usable without Snakemake through the
``kdcg`` command line (``kdcg --help``).
"""

__version__ = "0.1.0"
