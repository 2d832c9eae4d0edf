"""The loss of every variant (kdcg.variants): weighted RMSE + MAE terms on the mapped AA forces,
the teacher's forces, per-bead energies and system energy; the validation metrics."""

from __future__ import annotations

from kdcg.models.model import DB_FORCES_T, CGModel
from kdcg.variants import Variant


def rmse_plus_mae(pred, true):
    from hippynn.graphs.nodes import loss

    return loss.MSELoss(pred, true) ** 0.5 + loss.MAELoss(pred, true)


def teacher_force_view(m: CGModel):
    """The force prediction once more, as its own node whose target is the teacher's forces
    (hippynn pairs each predicted node with one database target). Created once per model."""
    if m.teacher_forces_view is None:
        view = m.forces * 1.0
        view.name = "forces_vs_teacher"
        view.db_name = DB_FORCES_T
        m.teacher_forces_view = view
    return m.teacher_forces_view


def student_loss(m: CGModel, variant: Variant, n_beads: int):
    """The loss a variant trains with: {term: (weight, node)} and their weighted sum.

    Teachers are the variant with only the mapped AA forces."""
    terms = {}
    w = variant.weights
    if w["aa_forces"]:
        terms["aa_forces"] = (w["aa_forces"], rmse_plus_mae(m.forces.pred, m.forces.true))
    if w["teacher_forces"]:
        view = teacher_force_view(m)
        terms["teacher_forces"] = (w["teacher_forces"], rmse_plus_mae(view.pred, view.true))
    if w["bead_energy"]:
        terms["bead_energy"] = (w["bead_energy"], rmse_plus_mae(m.bead_energies.pred, m.bead_energies.true))
    if w["energy"]:
        # normalised by the number of beads so it does not dominate the other terms
        terms["energy"] = (w["energy"], rmse_plus_mae(m.energy.pred, m.energy.true) * (1.0 / n_beads))
    total = None
    for weight, node in terms.values():
        total = weight * node if total is None else total + weight * node
    return total, terms


def validation_losses(m: CGModel, total, student: bool) -> dict:
    from hippynn.graphs.nodes import loss

    out = {"TotalLoss": total,
           "ForceRMSE": loss.MSELoss.of_node(m.forces) ** 0.5,
           "ForceMAE": loss.MAELoss.of_node(m.forces),
           "ForceRsq": loss.Rsq.of_node(m.forces)}
    if student:
        out["TeacherForceRsq"] = loss.Rsq.of_node(teacher_force_view(m))
        out["BeadEnergyRMSE"] = loss.MSELoss.of_node(m.bead_energies) ** 0.5
        out["BeadEnergyRsq"] = loss.Rsq.of_node(m.bead_energies)
        out["EnergyRMSE"] = loss.MSELoss.of_node(m.energy) ** 0.5
        out["EnergyRsq"] = loss.Rsq.of_node(m.energy)
    return out
