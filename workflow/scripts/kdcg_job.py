"""Entry point of every workflow job: the kdcg of this checkout (workflow/src), whichever
environment runs the job (the project's venv, or a conda env from envs/ with --sdm conda)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kdcg.cli import main  # noqa: E402

sys.exit(main())
