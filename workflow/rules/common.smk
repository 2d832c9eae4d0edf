# Config access and input functions. The config is validated strictly against
# workflow/schemas/config.schema.yaml before any rule is built.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "src"))

from kdcg.config import snapshot, validate as _validate_config
from kdcg.errors import InputError

_config_source = ", ".join(str(p) for p in workflow.configfiles) or "config"
if workflow.config_settings.config:
    _config_source += " + --config"
try:
    _validate_config(config, _config_source)
except InputError as _err:
    sys.exit(f"kdcg config error: {_err}")

RESULTS = "results"
AA = f"{RESULTS}/aa"
CG = f"{RESULTS}/cg"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
GMX_STAGES = ["em", "nvt_equil", "nvt_prod"]


# Top-level config sections each stage reads; a stage reruns only when its own change.
CONFIG_SECTIONS = {"aa": ["system", "packmol", "aa_md"]}


def config_file(stage="aa"):
    """Snapshot of the merged config (file plus --config) that a stage's jobs read."""
    return f"{RESULTS}/config/{stage}.yaml"


def molecule_files():
    files = [config["system"]["forcefield"]]
    for mol in config["system"]["molecules"]:
        files += [mol["itp"], mol["structure"]]
    return files


def gmx_shell(stage, checkpoint=False):
    """Shell command of one GROMACS stage; the last log line reaches the console on failure."""
    cpt = " --checkpoint {input.checkpoint}" if checkpoint else ""
    return (
        f"kdcg gromacs {stage} --config {{input.config}} --structure {{input.structure}}"
        f" --topology {{input.topology}} --stage-dir {AA}/{stage}{cpt} --threads {{threads}}"
        " > {log} 2>&1 || {{ tail -n 1 {log} >&2; exit 1; }}"
    )


def get_final_targets():
    return [f"{CG}/dataset.npz", f"{AA}/performance.tsv"]
