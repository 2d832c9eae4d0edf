"""What every kdcg job pays to import PyTorch and hippynn (prints figures; asserts nothing).

Side by side in one run, alternating, each in a fresh interpreter: ``import torch, hippynn``
as hippynn does it, and through ``kdcg.models.hippynn_import`` (hippynn's torch.compile wrapper
skipped); wall seconds, medians.

    .venv/bin/python benchmarks/imports.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATHS = {
    "hippynn as it is": "import torch, hippynn",
    "kdcg.models.hippynn_import": "import kdcg.models.hippynn_import, hippynn",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    times = {k: [] for k in PATHS}
    for _ in range(args.repeats):
        for name, code in PATHS.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"import in a fresh interpreter ({sys.executable}), median of {args.repeats}:")
    for name, t in med.items():
        print(f"  {name:<22} {t:6.2f} s")
    print(f"  kdcg.models.hippynn_import / as it is: {med['kdcg.models.hippynn_import'] / med['hippynn as it is']:.2f}")


if __name__ == "__main__":
    main()
