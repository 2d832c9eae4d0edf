#!/usr/bin/env bash
# Idempotent set-up of what kdcg needs. Run again: it only adds what is missing.
#
#   The Python environment .venv (pinned requirements.txt, kdcg installed editable) needs no
#   root. GROMACS (gmx or gmx_mpi) and Packmol are found on PATH, wherever they come from: a
#   cluster module (`module load gromacs`), conda, a user install, or Debian's packages, which
#   this script installs when it runs as root on Debian. Without root a missing tool is a
#   warning naming the stages that need it: the workflow stops before the first such job.
#
#   --slurm   also installs Debian's Slurm and munge (root), which the cluster-profile test
#             starts on loopback (make test passes it).
#   KDCG_TORCH_INDEX=https://download.pytorch.org/whl/cu128  installs PyTorch from that index
#             (a CUDA build for a GPU machine) instead of the pinned CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."

# KDCG_NO_ROOT=1: never use apt-get, even as root (a container whose tools come from elsewhere)
is_root() { [ "$(id -u)" = 0 ] && [ -z "${KDCG_NO_ROOT:-}" ]; }
has_gmx() { command -v gmx >/dev/null 2>&1 || command -v gmx_mpi >/dev/null 2>&1; }

need_apt=()
has_gmx || need_apt+=(gromacs)
command -v packmol >/dev/null 2>&1 || need_apt+=(packmol)
if [ "${1:-}" = "--slurm" ]; then
  [ -x /usr/sbin/slurmctld ] || need_apt+=(slurmctld)
  [ -x /usr/sbin/slurmd ] || need_apt+=(slurmd)
  command -v sbatch >/dev/null 2>&1 || need_apt+=(slurm-client)
  [ -x /usr/sbin/munged ] || need_apt+=(munge)
fi
py=$(command -v python3.11 || command -v python3 || true)
if [ -z "$py" ] && is_root; then need_apt+=(python3 python3-venv); fi

if [ ${#need_apt[@]} -gt 0 ] && is_root && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if has_gmx; then
  echo "[setup] GROMACS: $(command -v gmx || command -v gmx_mpi)"
else
  echo "[setup] warning: GROMACS (gmx or gmx_mpi) is not on PATH; needed by energy_minimization," \
       "nvt_equilibration, nvt_production. Load its module (module load gromacs), or install it" \
       "(sudo apt-get install gromacs; conda install -c conda-forge gromacs). Stages after the" \
       "all-atom run do not need it." >&2
fi
if command -v packmol >/dev/null 2>&1; then
  echo "[setup] Packmol: $(command -v packmol)"
else
  echo "[setup] warning: Packmol is not on PATH; needed by packmol_box. Install it (sudo apt-get" \
       "install packmol; conda install -c conda-forge packmol) or put a packmol binary on PATH." >&2
fi
if [ "${1:-}" = "--slurm" ] && ! command -v sbatch >/dev/null 2>&1; then
  echo "[setup] warning: Slurm is not installed; the cluster-profile test will be skipped" >&2
fi

py=$(command -v python3.11 || command -v python3 || true)
if [ -z "$py" ]; then
  echo "[setup] kdcg needs Python >= 3.11: load a module or install python3 (with its venv module)" >&2
  exit 1
fi
"$py" - <<'PY' || { echo "[setup] kdcg needs Python >= 3.11 (found $($py --version)); load a newer one" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

stamp=.venv/.kdcg-requirements.sha256
want=$( (cat requirements.txt pyproject.toml; echo "${KDCG_TORCH_INDEX:-}") | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$py" --version)"
  "$py" -m venv .venv || {
    if is_root && command -v apt-get >/dev/null 2>&1; then apt-get install -y -qq python3-venv >/dev/null && "$py" -m venv .venv;
    else echo "[setup] the python venv module is missing: load a Python module that has it (or: sudo apt-get install python3-venv)" >&2; exit 1; fi; }
fi
log=.venv/setup-pip.log
echo "[setup] installing pinned Python packages into .venv (a few minutes the first time; log: $log)"
{
  .venv/bin/python -m pip install --upgrade pip &&
  if [ -n "${KDCG_TORCH_INDEX:-}" ]; then
    # a CUDA build of the pinned version first; the requirements then find torch satisfied
    .venv/bin/python -m pip install "torch==$(grep -E '^torch==' requirements.txt | cut -d= -f3)" --index-url "$KDCG_TORCH_INDEX"
  fi &&
  .venv/bin/python -m pip install -r requirements.txt &&
  .venv/bin/python -m pip install --no-deps -e .
} > "$log" 2>&1 || { tail -n 30 "$log" >&2; echo "[setup] pip failed; full log: $log" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done"
