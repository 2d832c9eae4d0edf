"""Set-up where users are: no root, GROMACS from a module (here: on PATH from a folder of our
own), Packmol missing. It must build or keep .venv, name what it found and warn, not fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_setup_without_root_finds_a_path_gromacs_and_only_warns_for_a_missing_packmol(tmp_path):
    bin_dir = tmp_path / "module-bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("gmx"), bin_dir / "gmx")  # as `module load gromacs` would put it first on PATH
    for name in ("bash", "id", "cat", "cut", "sha256sum", "dirname", "grep", "tail"):
        os.symlink(shutil.which(name), bin_dir / name)
    os.symlink(sys.executable, bin_dir / "python3")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "KDCG_NO_ROOT": "1"}
    proc = subprocess.run(["bash", str(REPO / "scripts/setup.sh")], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[setup] GROMACS: {bin_dir / 'gmx'}" in proc.stdout
    assert "warning: Packmol is not on PATH; needed by packmol_box" in proc.stderr
    assert "installing Debian packages" not in proc.stdout
    assert "[setup] .venv is up to date" in proc.stdout
