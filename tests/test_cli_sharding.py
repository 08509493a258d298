"""`recon ct` under torchrun: slice batches sharded over two gloo processes give the single-process result."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from recon.cli import main

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


def volume(n: int = 32, slices: int = 3) -> np.ndarray:
    """(slices, n, n) HU: a water disc with a bone insert that moves from slice to slice."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    out = np.full((slices, n, n), -1000.0, dtype=np.float32)
    for s in range(slices):
        out[s][xx**2 + yy**2 < (0.4 * n) ** 2] = 0.0
        out[s][(xx - 4 + 3 * s) ** 2 + yy**2 < 9] = 1000.0
    return out


def test_two_gloo_processes_match_one_process(tmp_path, one_thread):
    path = tmp_path / "vol.npy"
    np.save(path, volume())
    argv = ["ct", "--method", "sirt", "--projections", "8", "--batch-size", "1", "--device", "cpu", "--quiet",
            str(path)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "recon.cli", *argv, "-o", str(tmp_path / "two")]
    done = subprocess.run(cmd, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote") == 1  # only rank 0 writes
    assert main([*argv, "-o", str(tmp_path / "one")]) == 0

    two, one = np.load(tmp_path / "two" / "vol_sirt.npy"), np.load(tmp_path / "one" / "vol_sirt.npy")
    assert two.shape == (3, 32, 32)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-3)  # HU; same slices in the same order
    assert not np.allclose(two[0], two[1], atol=1.0)  # the slices differ, so their order is checked
    report_two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    report_one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert report_two["processes"] == 2 and report_one["processes"] == 1
    assert report_two["per_slice"] == report_one["per_slice"]
