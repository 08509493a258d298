"""One NFE figure and target table from several `recon bench nfe` runs (e.g. CT and MRI run side by side).

Usage:
    python benchmarks/plot_nfe.py out/bench/nfe-ct/results.json out/bench/nfe-mri/results.json
        [-o docs/images/bench_nfe.png]

Prints the target check of each run (issue 8: within 0.3 dB / 0.005 SSIM of its pc reference at
<= 50 NFE) and writes one PSNR / SSIM against NFE figure with a panel row per task.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from recon import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json of `recon bench nfe` runs")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/bench_nfe.png"))
    args = parser.parse_args()
    rows = []
    for path in args.results:
        run = json.loads(path.read_text())
        rows += run["rows"]
        if run.get("target"):
            table = bench.target_markdown(run["target"], run.get("target_reference", "score:pc:2000"))
            print(f"{path} (commit {run['commit']}):\n{table}\n")
    print(f"wrote {bench.plot_nfe(rows, args.output)}")


if __name__ == "__main__":
    main()
