"""Stage 4: CG molecular dynamics of trained models in LAMMPS."""
