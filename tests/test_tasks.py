"""recon.tasks: each task builds its problems; limited-angle CT as the design's proof (one task file + one mask)."""
import json

import numpy as np
import pytest
import torch

from operators import arc_view_indices
from recon.cli import main
from recon.errors import InputError
from recon.tasks import (TASKS, LimitedAngleCT, MetalArtifacts, ScanCT, SparseViewCT, UndersampledMRI,
                         task_from_record)
from recon.tasks.base import radon

pytestmark = pytest.mark.usefixtures("one_thread")
N = 32


def discs(n: int = N, batch: int = 2) -> torch.Tensor:
    """(batch, 1, n, n) model units: a water disc with a bone insert, the insert moving with the index."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    images = []
    for b in range(batch):
        image = np.where(xx**2 + yy**2 < (0.4 * n) ** 2, 0.25, 0.0)
        image[(xx - 3 - b) ** 2 + yy**2 < 9] = 0.5
        images.append(image)
    return torch.from_numpy(np.stack(images)[:, None]).float()


def test_arc_views_lie_within_the_arc_and_are_spread():
    full = arc_view_indices(180, 90)
    assert full.tolist() == list(range(90))  # one view per degree, the first 90
    spread = arc_view_indices(180, 90, 10)
    assert len(spread) == 10 and spread[0] == 0 and spread[-1] == 89 and np.all(np.diff(spread) > 0)
    assert arc_view_indices(128, 180).tolist() == list(range(128))  # the whole half turn
    for arc, views in ((0, None), (181, None), (90, 91)):
        with pytest.raises(ValueError):
            arc_view_indices(180, arc, views)


def test_every_task_round_trips_its_record_and_describes_itself(tmp_path):
    geometry = tmp_path / "geom.json"
    geometry.write_text(json.dumps({"beam": "parallel", "angles_rad": np.linspace(0, np.pi, 30).tolist(),
                                    "detector_count": 40, "detector_spacing_mm": 1.0, "image_size": 32,
                                    "pixel_spacing_mm": 1.0}))
    for task in (SparseViewCT(projections=10, noise=0.01), LimitedAngleCT(arc=120, projections=30),
                 UndersampledMRI(accel=4, mask="random", mask_seed=2), MetalArtifacts(threshold=2500, simulate=True),
                 ScanCT(geometry=str(geometry), projections=12)):
        record = json.loads(json.dumps(task.record()))
        assert task_from_record(record) == task and record["task"] == task.name
        assert task.describe() and task.label
    assert set(TASKS) == {"ct-sparse-view", "ct-limited-angle", "mri", "ct-mar", "ct-scan"}


def test_simulated_problems_keep_their_reference_and_fit_the_data():
    x = discs()
    for task in (SparseViewCT(projections=8), LimitedAngleCT(arc=60), UndersampledMRI(accel=4)):
        problem = task.problem(x, seed=0)
        assert torch.equal(problem.reference, x) and problem.keep is None
        assert torch.allclose(problem.measurement.A(x), problem.y)


def test_noise_is_drawn_from_the_seed():
    x = discs()
    task = SparseViewCT(projections=8, noise=0.1)
    a, b, c = task.problem(x, 1), task.problem(x, 1), task.problem(x, 2)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert float((a.y - a.measurement.A(x)).std()) == pytest.approx(0.1, rel=0.1)


def test_limited_angle_measures_only_the_arc():
    task = LimitedAngleCT(arc=45)
    m = task.measurement(N)
    angles = m.transform.geometry.angles()[m.sampling.indices.numpy()]
    assert np.degrees(angles).max() < 45 and len(angles) == int(np.ceil(45 * N / 180))
    assert LimitedAngleCT(arc=45, projections=4).measurement(N).sampling.indices.numel() == 4
    with pytest.raises(InputError, match="--arc 200"):
        LimitedAngleCT(arc=200).measurement(N)
    assert task.defaults_key == "ct-sparse-view"  # uses the sparse-view profile until tuned for itself


def test_a_wider_arc_gives_a_better_reconstruction():
    from recon.methods import BASELINES
    from recon.metrics import psnr

    x = discs()
    scores = []
    for arc in (45, 90, 180):
        problem = LimitedAngleCT(arc=arc).problem(x, 0)
        scores.append(float(np.mean(psnr(BASELINES["cgls"](problem.measurement, problem.y), x))))
    assert scores[0] < scores[1] < scores[2]


def test_measured_metal_has_no_reference_and_reinserts_the_metal():
    x = discs(batch=1)
    x[..., 14:16, 14:16] = 1.2  # about 3800 HU
    problem = MetalArtifacts().problem(x, 0)
    assert problem.reference is None
    assert not bool(problem.measurement.mask(torch.empty(1)).all())
    assert torch.equal(problem.finished(torch.zeros_like(x))[..., 14:16, 14:16], x[..., 14:16, 14:16])
    with pytest.raises(InputError, match="no pixel above 3000 HU"):
        MetalArtifacts().check([discs()], "scan.dcm")


def test_the_radon_transform_is_built_once_per_geometry():
    assert radon(N) is radon(N) and radon(N) is not radon(N, 2 * N)
    assert SparseViewCT().measurement(N).transform is LimitedAngleCT().measurement(N).transform


def test_recon_ct_arc_runs_and_reports_the_task(tmp_path):
    path = tmp_path / "phantom.npy"
    np.save(path, discs()[:, 0].numpy() * 4000 - 1000)  # HU
    out = tmp_path / "out"
    assert main(["ct", "--arc", "90", "--method", "cgls", str(path), "-o", str(out), "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "ct-limited-angle" and "90 degree arc" in report["measurement"]
    assert report["parameters"]["arc"] == 90 and report["mean"]["psnr"] > report["mean"]["fbp_psnr"]


def test_recon_ct_bad_arc_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "phantom.npy"
    np.save(path, discs()[:, 0].numpy() * 4000 - 1000)
    out = tmp_path / "out"
    assert main(["ct", "--arc", "0", "--method", "fbp", str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recon: error: --arc 0") and "\n" not in err
    assert not out.exists()
