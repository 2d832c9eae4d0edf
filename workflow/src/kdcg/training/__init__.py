"""Stage 3: teachers, their labels, and the distilled students (losses, splits,
early stopping, held-out metrics)."""
