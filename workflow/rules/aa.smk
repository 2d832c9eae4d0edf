# Stage 1: the all-atom reference -- topology, Packmol box, GROMACS EM, NVT equilibration
# and NVT production (positions, velocities and forces).


rule topology:
    input:
        molecule_files(),
        config=config_file(),
    output:
        top=f"{AA}/topol.top",
    log:
        f"{LOGS}/topology.log",
    conda:
        ENV_GROMACS
    params:
        config_keys=config_keys("aa"),
    shell:
        kdcg_shell("topology --config {input.config} --out {output.top}")


rule packmol_box:
    input:
        molecule_files(),
        config=config_file(),
    output:
        gro=f"{AA}/box.gro",
    log:
        f"{LOGS}/packmol_box.log",
    benchmark:
        f"{BENCH}/packmol_box.tsv"
    conda:
        ENV_GROMACS
    params:
        config_keys=config_keys("aa"),
    shell:
        kdcg_shell("box --config {input.config} --out {output.gro}")


rule energy_minimization:
    input:
        structure=f"{AA}/box.gro",
        topology=f"{AA}/topol.top",
        config=config_file(),
    output:
        gro=f"{AA}/em/em.gro",
        perf=f"{AA}/em/em.perf.json",
    log:
        f"{LOGS}/gromacs_em.log",
    benchmark:
        f"{BENCH}/gromacs_em.tsv"
    conda:
        ENV_GROMACS
    threads: 8
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        config_keys=config_keys("aa"),
    shell:
        gmx_shell("em")


rule nvt_equilibration:
    """A rerun after a kill continues from run/nvt_equil.cpt."""
    input:
        structure=f"{AA}/em/em.gro",
        topology=f"{AA}/topol.top",
        config=config_file(),
    output:
        gro=f"{AA}/nvt_equil/nvt_equil.gro",
        cpt=f"{AA}/nvt_equil/nvt_equil.cpt",
        perf=f"{AA}/nvt_equil/nvt_equil.perf.json",
    log:
        f"{LOGS}/gromacs_nvt_equil.log",
    benchmark:
        f"{BENCH}/gromacs_nvt_equil.tsv"
    conda:
        ENV_GROMACS
    threads: 8
    resources:
        runtime=24 * 60,
        mem_mb=4000,
    params:
        config_keys=config_keys("aa"),
    shell:
        gmx_shell("nvt_equil")


rule nvt_production:
    """Positions, velocities and forces every output interval; resumes like equilibration."""
    input:
        structure=f"{AA}/nvt_equil/nvt_equil.gro",
        checkpoint=f"{AA}/nvt_equil/nvt_equil.cpt",
        topology=f"{AA}/topol.top",
        config=config_file(),
    output:
        gro=f"{AA}/nvt_prod/nvt_prod.gro",
        tpr=f"{AA}/nvt_prod/nvt_prod.tpr",
        trr=f"{AA}/nvt_prod/nvt_prod.trr",
        perf=f"{AA}/nvt_prod/nvt_prod.perf.json",
    log:
        f"{LOGS}/gromacs_nvt_prod.log",
    benchmark:
        f"{BENCH}/gromacs_nvt_prod.tsv"
    conda:
        ENV_GROMACS
    threads: 8
    resources:
        runtime=24 * 60,
        mem_mb=4000,
    params:
        config_keys=config_keys("aa"),
    shell:
        gmx_shell("nvt_prod", checkpoint=True)


rule performance_table:
    input:
        expand(f"{AA}/{{stage}}/{{stage}}.perf.json", stage=GMX_STAGES),
    output:
        f"{AA}/performance.tsv",
    log:
        f"{LOGS}/performance_table.log",
    conda:
        ENV_GROMACS
    shell:
        kdcg_shell("perf-table --out {output} {input}")


rule aa_energy:
    """Potential energy and temperature of the NVT runs (the AA panel of the energy figure).
    The .edr files sit next to each stage's declared .gro (mdrun appends to them on resume).
    """
    input:
        equilibration=f"{AA}/nvt_equil/nvt_equil.gro",
        production=f"{AA}/nvt_prod/nvt_prod.gro",
    output:
        f"{AA}/energy.csv",
    log:
        f"{LOGS}/aa_energy.log",
    conda:
        ENV_GROMACS
    params:
        edr=lambda wc, input: " ".join(str(Path(p).with_suffix(".edr")) for p in input),
    shell:
        kdcg_shell("aa-energy --out {output} {params.edr}")
