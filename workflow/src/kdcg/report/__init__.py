"""Stage 6: figures, tables and the report's front page."""
