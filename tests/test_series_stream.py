"""A CT DICOM series is read lazily and written batch by batch: a run never holds the whole volume.

Checked structurally (memory itself is measured by the benchmark in RESULTS.md, "A 512² DICOM series"):
the lazy stack decodes only the slices indexed, the run never asks for the whole stack, each batch's
files are in the staging folder before the next batch is reconstructed, and the result does not depend
on the batch size.
"""
import json

import numpy as np
import pydicom
import pytest

import recon.batches
from recon.cli import main
from recon.io import read_volume
from recon.io.lazy_stack import LazyStack
from tests.test_cli_score import _ct_stored, _dicom, phantom

SLICES = 7


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread."""


def _series(folder, slices: int = SLICES):
    from pydicom.uid import generate_uid

    folder.mkdir()
    uid = generate_uid()
    for i in range(slices):  # file names in reverse order of position: the reader sorts by position
        _dicom("CT_small.dcm", _ct_stored(phantom(i % 4)), z=2.5 * i, series_uid=uid).save_as(
            folder / f"{slices - i:02d}.dcm")
    return folder


def test_a_ct_series_is_read_lazily_and_equals_the_eager_read(tmp_path, monkeypatch):
    series = _series(tmp_path / "series")
    eager = read_volume(series, modality="ct")
    lazy = read_volume(series, modality="ct", lazy=True)
    assert isinstance(lazy.data, LazyStack) and lazy.data.shape == eager.data.shape
    assert all("PixelData" not in ds for ds in lazy.meta["datasets"])  # headers only are held
    decoded = []
    import recon.io.dicom as dicom

    original = dicom._decoded
    monkeypatch.setattr(dicom, "_decoded", lambda path: decoded.append(path) or original(path))
    assert np.array_equal(lazy.data[2:4], eager.data[2:4]) and len(decoded) == 2
    assert np.array_equal(lazy.data[-1], eager.data[-1])
    assert np.array_equal(np.asarray(lazy.data), eager.data)


def test_every_slice_of_a_lazy_series_is_checked_before_any_work(tmp_path, monkeypatch, capsys):
    import recon.io.dicom as dicom

    series = _series(tmp_path / "series")
    original = dicom._decoded
    monkeypatch.setattr(dicom, "_decoded", lambda path: original(path) * (np.nan if path.name == "02.dcm" else 1))
    monkeypatch.setattr(recon.batches, "reconstruct_batches", lambda *a, **k: pytest.fail("reconstruction started"))
    assert main(["ct", "--method", "fbp", str(series), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "contains NaN or Inf values" in capsys.readouterr().err
    monkeypatch.setattr(dicom, "_decoded", original)
    assert main(["mar", str(series), "-o", str(tmp_path / "out"), "--quiet"]) == 2  # the check sees every slice
    assert "no pixel above" in capsys.readouterr().err


def _run(series, out, batch: int) -> list[np.ndarray]:
    assert main(["ct", "--method", "fista-tv", "--projections", "12", "--batch-size", str(batch), str(series),
                 "-o", str(out), "--quiet"]) == 0
    files = sorted(out.glob("*_fista-tv_*.dcm"))
    assert len(files) == SLICES
    return [pydicom.dcmread(f).pixel_array.astype(float) for f in files]


def test_a_series_is_written_as_its_batches_finish_whatever_the_batch_size(tmp_path, monkeypatch):
    series = _series(tmp_path / "series")
    monkeypatch.setattr(LazyStack, "__array__", lambda *a, **k: pytest.fail("the whole series was read at once"))
    reconstruct = recon.batches.reconstruct_batches
    staged = []

    def watched(*args, **kwargs):
        for batch in reconstruct(*args, **kwargs):
            yield batch
            staging = next((tmp_path).glob(".out.staging-*"))
            staged.append(len([p for p in staging.iterdir() if p.suffix == ".dcm"]))

    monkeypatch.setattr(recon.batches, "reconstruct_batches", watched)
    by_three = _run(series, tmp_path / "out", 3)
    assert staged == [3, 6, 7]  # each batch's files written before the next batch is reconstructed
    monkeypatch.setattr(recon.batches, "reconstruct_batches", reconstruct)
    whole = _run(series, tmp_path / "whole", SLICES)
    # FISTA-TV per slice does not depend on its batch; float32 sums in another order move a stored HU by <= 1
    assert max(np.abs(a - b).max() for a, b in zip(by_three, whole)) <= 1
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    whole_report = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert report["slices"] == SLICES and len(report["per_slice"]["method"]["psnr"]) == SLICES
    assert np.allclose(report["per_slice"]["method"]["psnr"], whole_report["per_slice"]["method"]["psnr"], atol=0.05)
    assert np.allclose(report["data_residual"]["per_slice"]["method"],
                       whole_report["data_residual"]["per_slice"]["method"], rtol=1e-3)
