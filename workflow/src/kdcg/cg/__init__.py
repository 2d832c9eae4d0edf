"""Stage 2: the coarse-grained mapping of the all-atom frames, and bead-structure maths."""
