# Stage 2: the CG dataset -- one bead per molecule, COM positions and summed forces.


rule cg_dataset:
    input:
        tpr=f"{AA}/nvt_prod/nvt_prod.tpr",
        trr=f"{AA}/nvt_prod/nvt_prod.trr",
        config=config_file(),
    output:
        npz=f"{CG}/dataset.npz",
    log:
        f"{LOGS}/cg_dataset.log",
    benchmark:
        f"{BENCH}/cg_dataset.tsv"
    conda:
        ENV_GROMACS
    resources:
        mem_mb=8000,
    params:
        config_keys=config_keys("aa"),
    shell:
        kdcg_shell(
            "map --config {input.config} --topology {input.tpr} --trajectory {input.trr} --out {output.npz}"
        )
