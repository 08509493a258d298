"""Seconds per slice and peak memory of `recon ct` on 512² DICOM series of growing length.

Usage: python benchmarks/series_memory.py [--slices 16 64] [--size 512] [--method score] [--work /tmp/series]

Writes a series of ``--size``² thorax phantoms (``recon.data.phantom_ct.thorax_phantom(size, seed=100+i)``,
HU, pydicom's CT_small.dcm header as the template, 0.74 mm pixels at 512²) for each length, then runs
``recon ct --projections 23 [--resample] SERIES -o OUT --quiet`` on it under ``/usr/bin/time -v`` as a user
would: the peak resident memory is the whole process's. Prints a markdown table (slices, wall, s/slice from
metrics.json, peak RSS, PSNR/SSIM of the method and of FBP).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from provenance import header


def write_series(folder: Path, slices: int, size: int) -> None:
    """``slices`` phantom slices of ``size``² as one DICOM series (files 0000.dcm ...) in ``folder``."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from recon.data.phantom_ct import thorax_phantom

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    spacing = 380.0 / size  # a 38 cm field of view
    uid = generate_uid()
    folder.mkdir(parents=True)
    for i in range(slices):
        ds = copy.deepcopy(template)
        hu = thorax_phantom(size, seed=100 + i)
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
        ds.PixelData = np.round(np.clip(hu, -1024, 3071) + 1024).astype(np.int16).tobytes()  # intercept -1024
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * i]
        ds.InstanceNumber = i + 1
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"{i:04d}.dcm")


def run(series: Path, out: Path, method: str, resample: bool) -> dict:
    """One `recon ct` run under /usr/bin/time -v: wall, peak RSS and its metrics.json."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "recon.cli", "ct", "--projections", "23",
               "--method", method, *(["--resample"] if resample else []), str(series), "-o", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"recon ct failed: {done.stderr.strip().splitlines()[-1]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60 ** k for k, part in enumerate(reversed(wall.split(":"))))
    return {"wall": seconds, "peak_gb": peak_kb / 2**20, "report": json.loads((out / "metrics.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--method", default="score")
    parser.add_argument("--work", type=Path, default=Path("/tmp/series_memory"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    resample = args.method == "score"  # the bundled priors are 128²
    print(header(f"`recon ct --projections 23 --method {args.method}{' --resample' if resample else ''}` on "
                 f"{args.size}² DICOM series, under /usr/bin/time -v"))
    print("\n| slices | wall (s) | s / slice (metrics.json) | peak RSS | PSNR / SSIM | FBP |\n|---:|---:|---:|---:|---|---|")
    for slices in args.slices:
        series = args.work / f"series{slices}"
        write_series(series, slices, args.size)
        result = run(series, args.work / f"out{slices}", args.method, resample)
        mean = result["report"]["mean"]
        print(f"| {slices} | {result['wall']:.1f} | {result['report']['wall_time_per_slice_s']:.2f} | "
              f"{result['peak_gb']:.2f} GB | {mean['psnr']:.2f} / {mean['ssim']:.3f} | "
              f"{mean['fbp_psnr']:.2f} / {mean['fbp_ssim']:.3f} |", flush=True)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
