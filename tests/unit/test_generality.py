"""kdcg is general in its system: no code names reline's species or assumes its composition,
and the species-dependent stages follow whatever species a dataset carries (2 or 4 here)."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest
import yaml

from conftest import REPO

#: reline's species and residue names, its name, and its molecules' names. Chlorine ("Cl") may
#: appear as an element (the Bondi radii), so the chloride species is caught by its resname.
RELINE_NAMES = {"Cho", "urea", "CHOL", "UREA", "CL", "reline", "choline", "chloride"}
SOURCES = sorted((REPO / "workflow/src/kdcg").rglob("*.py"))
RULES = sorted((REPO / "workflow/rules").glob("*.smk")) + [REPO / "Snakefile"]


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_no_code_names_relines_species():
    """No string constant is one of reline's names and no identifier carries one; a name inside
    prose (a docstring, a help text's example) is text, not a rule the code follows."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value.strip() in RELINE_NAMES:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
                node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None
            if name and any(w.lower() in name.lower() for w in ("urea", "choline", "chloride", "reline")):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: identifier {name}")
    word = re.compile(r"\b(" + "|".join(sorted(RELINE_NAMES)) + r")\b")
    for path in RULES:
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if word.search(code):
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_source_scan_would_see_a_hard_coded_species(tmp_path):
    """The scan above is not blind: the same walk flags a constant and an identifier."""
    tree = ast.parse('def f(d):\n    """About urea."""\n    urea_mask = d == "urea"\n    return urea_mask\n')
    docs = _docstrings(tree)
    constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docs]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert constants == ["urea"] and "urea_mask" in names


def _liquid(n_species: int, per_species: int = 24, edge_A: float = 18.0, frames: int = 12, seed: int = 0):
    """Beads on a jittered cubic lattice (no two closer than ~2.6 A), species dealt in turn."""
    rng = np.random.default_rng(seed)
    n = n_species * per_species
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * (edge_A / side)
    R = np.mod(grid[None] + rng.normal(0.0, 0.35, size=(frames, n, 3)), edge_A)
    Z = np.tile(np.arange(n) % n_species + 1, (frames, 1))
    cells = np.repeat(np.diag([edge_A] * 3)[None], frames, axis=0)
    return R, Z, cells


@pytest.mark.parametrize("n_species", [2, 4])
def test_distributions_and_prior_follow_the_datasets_species(n_species):
    from kdcg.analysis.distributions import adf_key, distributions, rdf_key
    from kdcg.models.prior import prior_from_dataset

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    names = [f"S{i}" for i in range(1, n_species + 1)]
    acfg = {**cfg["analysis"], "adf_triplets": [[s, s, s] for s in names]}
    R, Z, cells = _liquid(n_species)
    d = distributions(R, cells, Z[0], names, acfg)
    pairs = {rdf_key(names[a], names[b]) for a in range(n_species) for b in range(a, n_species)}
    assert set(d["rdf"]) == pairs and len(pairs) == n_species * (n_species + 1) // 2
    assert set(d["adf"]) == {adf_key([s, s, s], c) for s in names for c in acfg["adf_cutoffs_A"]}
    assert set(d["cdf"]) == set(names)
    F = np.random.default_rng(1).normal(0.0, 3.0, size=R.shape)
    prior = prior_from_dataset({"R": R, "F": F, "Z": Z, "cell": cells, "species_names": np.array(names),
                                "masses": np.ones(R.shape[1]), "time_ps": np.arange(len(R), dtype=float)},
                               cfg["prior"], r_max_A=8.0)
    taper = np.array(prior["taper_A"])
    assert taper.shape == (n_species, n_species) and np.allclose(taper, taper.T) and (taper > 1.0).all()
    assert prior["species_names"] == names
