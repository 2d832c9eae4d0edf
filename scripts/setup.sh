#!/usr/bin/env bash
# Idempotent set-up of everything kdcg needs on a Debian machine:
#   system packages gromacs and packmol, and the virtual environment .venv with pinned
#   Python packages and kdcg installed editable. Run again: it only adds what is missing.
#   --slurm also installs Debian's Slurm and munge, which the cluster-profile test starts on
#   loopback (make test passes it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v gmx >/dev/null 2>&1 || need_apt+=(gromacs)
command -v packmol >/dev/null 2>&1 || need_apt+=(packmol)
if [ "${1:-}" = "--slurm" ]; then
  [ -x /usr/sbin/slurmctld ] || need_apt+=(slurmctld)
  [ -x /usr/sbin/slurmd ] || need_apt+=(slurmd)
  command -v sbatch >/dev/null 2>&1 || need_apt+=(slurm-client)
  [ -x /usr/sbin/munged ] || need_apt+=(munge)
fi
py=$(command -v python3.11 || command -v python3 || true)
if [ -z "$py" ]; then need_apt+=(python3 python3-venv); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "[setup] kdcg needs these Debian packages, please install them: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
fi
py=$(command -v python3.11 || command -v python3)
"$py" - <<'PY' || { echo "[setup] kdcg needs Python >= 3.11 (found $($py --version))" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

stamp=.venv/.kdcg-requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$py" --version)"
  "$py" -m venv .venv || {
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq python3-venv >/dev/null && "$py" -m venv .venv;
    else echo "[setup] python venv module missing: sudo apt-get install python3-venv" >&2; exit 1; fi; }
fi
log=.venv/setup-pip.log
echo "[setup] installing pinned Python packages into .venv (a few minutes the first time; log: $log)"
{
  .venv/bin/python -m pip install --upgrade pip &&
  .venv/bin/python -m pip install -r requirements.txt &&
  .venv/bin/python -m pip install --no-deps -e .
} > "$log" 2>&1 || { tail -n 30 "$log" >&2; echo "[setup] pip failed; full log: $log" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done"
