"""One NFE figure and target table from several `recon bench nfe` runs (e.g. CT and MRI run side by side).

Usage:
    python benchmarks/plot_nfe.py out/bench/nfe-ct/results.json out/bench/nfe-mri/results.json
        [-o docs/images/bench_nfe.png]

A run given as ``results.json=OLD:NEW[;OLD:NEW...]`` has each sampler OLD shown as NEW (e.g.
``=dds:dds, zero-filled start`` for a run made with other sampler defaults or another prior).
A method that several runs share is drawn once, from the first run that has it.

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
    parser.add_argument("results", nargs="+", help="results.json of `recon bench nfe` runs, each optionally =OLD:NEW[;OLD:NEW...]")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/bench_nfe.png"))
    args = parser.parse_args()
    rows, seen = [], set()
    for given in args.results:
        path, _, renames = given.partition("=")
        names = dict(pair.split(":", 1) for pair in renames.split(";") if pair)
        run = json.loads(Path(path).read_text())
        for row in run["rows"]:
            parts = row["method"].split(":")
            if len(parts) > 1 and parts[1] in names:
                row = {**row, "method": ":".join([parts[0], names[parts[1]], *parts[2:]])}
            if (row["task"], row["method"]) not in seen:
                seen.add((row["task"], row["method"]))
                rows.append(row)
        if run.get("target"):
            table = bench.target_markdown(run["target"], run.get("target_reference", "score:pc:2000"))
            print(f"{path} (commit {run['commit']}):\n{table}\n")
    print(f"wrote {bench.plot_nfe(rows, args.output)}")


if __name__ == "__main__":
    main()
