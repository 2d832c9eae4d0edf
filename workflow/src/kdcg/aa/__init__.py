"""Stage 1: the all-atom reference -- GROMACS topology, Packmol box, GROMACS runs."""
