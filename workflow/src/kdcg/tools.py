"""The external programs stages run, found on PATH before a run starts: a missing one stops
the run with one line naming the program and the stages that need it, not the first job that
calls it."""

from __future__ import annotations

import shutil

# GROMACS installs as gmx (thread-MPI, Debian, most modules) or gmx_mpi (MPI builds)
GROMACS = ("gmx", "gmx_mpi")
PACKMOL = ("packmol",)
TOOL_NAMES = {"GROMACS": GROMACS, "Packmol": PACKMOL}
RULE_TOOLS = {
    "packmol_box": "Packmol",
    "energy_minimization": "GROMACS",
    "nvt_equilibration": "GROMACS",
    "nvt_production": "GROMACS",
}


def find(tool: str) -> str | None:
    """Path of the first of the tool's program names on PATH."""
    for name in TOOL_NAMES[tool]:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing_tools(rules) -> dict[str, list[str]]:
    """{tool: [rules that need it]} for the tools of these rules that are not on PATH."""
    need: dict[str, list[str]] = {}
    for rule in sorted(set(rules)):
        tool = RULE_TOOLS.get(rule)
        if tool and find(tool) is None:
            need.setdefault(tool, []).append(rule)
    return need


def describe_missing(missing: dict[str, list[str]]) -> str:
    parts = [f"{tool} ({' or '.join(TOOL_NAMES[tool])}) is not on PATH; needed by {', '.join(rules)}"
             for tool, rules in missing.items()]
    return "; ".join(parts) + " (load its module or install it: README, 'Set-up')"


def require(tool: str, stage: str) -> str:
    """The tool's path, or an InputError naming the stage that needs it."""
    from kdcg.errors import InputError

    path = find(tool)
    if path is None:
        raise InputError(None, describe_missing({tool: [stage]}))
    return path
