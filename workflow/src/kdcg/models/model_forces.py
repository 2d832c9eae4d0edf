"""Energy and forces of a saved model (single or ensemble) on periodic frames, as CG MD asks for
them: one frame, or a batch of replicas' frames, with a Verlet pair list (kdcg.models.pairs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def set_pair_skin(graph, skin_A: float) -> int:
    """Give every pair finder of a graph a Verlet skin (Angstrom): pairs are then recomputed
    only when some bead has moved more than skin/2 (kdcg.models.pairs)."""
    from kdcg.models.pairs import use_verlet_pairs

    return use_verlet_pairs(graph, skin_A)


@dataclass
class Evaluation:
    energy_kcal_mol: float
    forces_kcal_mol_A: np.ndarray  # (beads, 3), float64
    force_spread_kcal_mol_A: float  # RMS over beads of the members' force std; nan for one model


class ModelForces:
    """Energy and forces of a saved kdcg model (single or ensemble) on one periodic frame."""

    def __init__(self, model_path: Path, pair_skin_A: float = 0.0, data: dict | None = None):
        from . import hippynn_import  # noqa: F401  (before the first hippynn import)
        from hippynn import settings

        from kdcg.models.model_io import compute_device, load_model

        # hippynn prints a line for every evaluation with a pair inside its shortest
        # sensitivity; in MD that is every step near contact, where the repulsive prior acts
        # by design. Contacts are checked against md.min_distance_A instead.
        settings.WARN_LOW_DISTANCES = False
        self.path = Path(model_path)
        self.graph, self.record = load_model(self.path, data)
        self.device = compute_device()
        self.graph.to(self.device)
        names = list(self.record["outputs"])
        self._i_forces, self._i_energy = names.index("forces"), names.index("energy")
        self._i_members = [i for i, n in enumerate(names) if n.startswith("member_forces_")]
        self.species_names = list(self.record["prior"]["species_names"])
        self.cutoff_A = float(self.record["model_cfg"]["dist_hard_max_A"])
        set_pair_skin(self.graph, pair_skin_A)
        self._cached = None

    @property
    def n_members(self) -> int:
        return max(1, len(self._i_members))

    def _species_and_cell(self, species, cell):
        """Species and cell tensors, converted once per system (MD steps reuse them)."""
        import torch

        key = (id(species), id(cell))
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, torch.as_tensor(np.asarray(species, dtype=np.int64))[None].to(self.device),
                            torch.as_tensor(np.asarray(cell, dtype=np.float32))[None].to(self.device))
        return self._cached[1], self._cached[2]

    def set_pair_skin(self, skin_A: float) -> None:
        set_pair_skin(self.graph, skin_A)

    def forget_pairs(self) -> None:
        """Rebuild the pair list at the next evaluation (kdcg.models.pairs.VerletPairs)."""
        from kdcg.models.pairs import forget_pairs

        forget_pairs(self.graph)

    def __call__(self, species, positions, cell) -> Evaluation:
        """species: (beads,) 1-based; positions (beads, 3) Angstrom; cell (3, 3) Angstrom."""
        return self.evaluate_batch(species, np.asarray(positions)[None], cell)[0]

    def evaluate_batch(self, species, positions, cell) -> list[Evaluation]:
        """Several frames of one system in one model evaluation: positions (frames, beads, 3) A,
        the same species (beads,) and cell (3, 3) A for all (the replicas of one model)."""
        import torch

        species_t, cell_t = self._species_and_cell(species, cell)
        n = len(positions)
        R = torch.as_tensor(np.asarray(positions, dtype=np.float32)).to(self.device)
        outs = self.graph(species_t.expand(n, -1).contiguous(), R, cell_t.expand(n, -1, -1).contiguous())
        forces = outs[self._i_forces].detach().cpu().numpy().astype(np.float64)
        energies = outs[self._i_energy].detach().cpu().numpy().reshape(n, -1)[:, 0].astype(np.float64)
        spreads = np.full(n, float("nan"))
        if self._i_members:
            members = np.stack([outs[i].detach().cpu().numpy() for i in self._i_members]).astype(np.float64)
            spreads = np.sqrt(members.var(axis=0).sum(axis=-1).mean(axis=-1))
        return [Evaluation(float(e), f, float(s)) for e, f, s in zip(energies, forces, spreads)]
