"""Pixel spacing: read from the files, recorded by the generated sets, checked against the prior's trained range."""
import json
from types import SimpleNamespace

import h5py
import nibabel as nib
import numpy as np
import pytest

from recon.cli import main
from recon.data.build import build_dataset, pixel_spacing_range, read_manifest
from recon.data.from_scans import grid_spacing
from recon.io import read_volume
from recon.io.fastmri import read_kspace
from recon.io.spacing import ismrmrd_spacing
from recon.spacing import SLACK, spacing_record
from conftest import save_tiny_prior
from test_cli_score import write_ct


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread."""


def test_readers_give_the_pixel_spacing(tmp_path):
    dicom = read_volume(write_ct("dicom", tmp_path))  # a copy of pydicom's CT_small.dcm: 0.661 mm pixels
    assert dicom.pixel_spacing_mm == pytest.approx(0.661468, abs=1e-6)
    path = tmp_path / "mr.nii.gz"  # columns along x (0.9 mm), rows along y (1.1 mm)
    nib.save(nib.Nifti1Image(np.ones((16, 16, 3), np.float32), np.diag([0.9, 1.1, 3.0, 1.0])), path)
    volume = read_volume(path)
    assert volume.meta["pixel_spacing_mm"] == pytest.approx((1.1, 0.9)) and volume.pixel_spacing_mm == pytest.approx(1.0)
    np.save(tmp_path / "a.npy", np.linspace(-1000, 1000, 256, dtype=np.float32).reshape(16, 16))
    assert read_volume(tmp_path / "a.npy").pixel_spacing_mm is None


HEADER = """<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>32</x><y>32</y><z>1</z></matrixSize>
<fieldOfView_mm><x>64</x><y>48</y><z>3</z></fieldOfView_mm></encodedSpace>
<reconSpace><matrixSize><x>16</x><y>16</y><z>1</z></matrixSize>
<fieldOfView_mm><x>24</x><y>24</y><z>3</z></fieldOfView_mm></reconSpace></encoding></ismrmrdHeader>"""


def test_fastmri_spacing_comes_from_the_ismrmrd_header(tmp_path):
    """The k-space's image: encodedSpace (64 mm over 32 rows, 48 mm over 32 columns); a reference
    reconstruction: reconSpace (24 mm over 16); a file without a header, or a header without the space: None."""
    path = tmp_path / "file.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        handle["kspace"] = (rng.standard_normal((1, 32, 32)) + 1j * rng.standard_normal((1, 32, 32))).astype(np.complex64)
        handle["reconstruction_rss"] = rng.random((1, 16, 16)).astype(np.float32)
        handle["ismrmrd_header"] = HEADER
    assert read_kspace(path).spacing == pytest.approx((2.0, 1.5))
    assert read_volume(path).meta["pixel_spacing_mm"] == pytest.approx((1.5, 1.5))
    assert ismrmrd_spacing(None, "encodedSpace") is None and ismrmrd_spacing("<not xml", "reconSpace") is None
    assert ismrmrd_spacing(HEADER.replace("reconSpace", "other"), "reconSpace") is None
    with h5py.File(path, "a") as handle:
        del handle["ismrmrd_header"]
    assert read_volume(path).pixel_spacing_mm is None


def test_generated_sets_record_their_spacing(tmp_path):
    """The range is the generators' field of view over the grid side: thorax phantoms span 380 mm, heads
    220-300 mm; the manifest of a built set holds it."""
    assert pixel_spacing_range("ct", "thorax", 128) == pytest.approx([380 / 128] * 2, abs=1e-4)
    assert pixel_spacing_range("ct", "mixed", 64) == pytest.approx([220 / 64, 380 / 64], abs=1e-4)
    brain, varied = pixel_spacing_range("mri", "brain", 128), pixel_spacing_range("mri", "varied", 128)
    assert brain[0] < 200 / 128 < brain[1] and varied[0] < brain[0] and varied[1] >= 2 * brain[1] * 0.99
    path = build_dataset("ct", 16, {"train": 2, "val": 1, "test": 1}, tmp_path / "s.h5", progress=False,
                         anatomy="head")
    assert read_manifest(path)["pixel_spacing_range_mm"] == pytest.approx([220 / 16, 300 / 16], abs=1e-4)


def test_spacing_on_a_user_set_grid():
    """A 512² slice of 0.7 mm resized to 128 has 2.8 mm pixels; with --pixel-spacing the grid's own; unknown: None."""
    assert grid_spacing((512, 400), (0.7, 0.7), 128, None) == pytest.approx(2.8)
    assert grid_spacing((512, 512), (0.7, 0.7), 128, 1.5) == 1.5
    assert grid_spacing((512, 512), None, 128, None) is None


def _prior(size: int, trained: list[float] | None):
    manifest = {} if trained is None else {"pixel_spacing_range_mm": trained}
    meta = {"id": "p", "size": size, "dataset": {"manifest": manifest}}
    return SimpleNamespace(meta=meta, pixel_spacing_range=None if trained is None else tuple(trained))


def test_spacing_record_warns_only_far_outside_the_trained_range():
    volume = SimpleNamespace(pixel_spacing_mm=0.7, source="scan.dcm")
    inside = spacing_record(_prior(128, [2.0, 3.0]), volume, 512)  # 0.7 mm * 512 / 128 = 2.8 mm on the grid
    assert inside["on_prior_grid_mm"] == pytest.approx(2.8) and inside["warning"] is None
    edge = spacing_record(_prior(128, [2.0 * SLACK, 3.0]), volume, 512)  # 2.8 >= 3.0 / SLACK = 2.0: passes
    assert edge["warning"] is None
    far = spacing_record(_prior(128, [2.0, 3.0]), volume, 128)  # 0.7 mm on the grid: 2.9x below
    assert far["warning"].startswith("scan.dcm: 0.7 mm pixels") and "2-3 mm" in far["warning"]
    assert spacing_record(_prior(128, None), volume, 128)["warning"] is None  # nothing to check against
    assert spacing_record(None, volume, 128) == {"scan_mm": 0.7, "on_prior_grid_mm": None, "trained_mm": None,
                                                 "warning": None}
    unknown = SimpleNamespace(pixel_spacing_mm=None, source="a.npy")
    assert spacing_record(_prior(128, [2.0, 3.0]), unknown, 128)["warning"] is None


@pytest.mark.parametrize("trained, warns", [([1.7, 3.0], True), ([0.5, 1.0], False)])
def test_recon_ct_warns_and_records(tmp_path, capsys, trained, warns):
    """`recon ct` on a 0.66 mm DICOM with a prior trained on 1.7-3 mm pixels: one warning line on stderr, the
    same text in metrics.json, and the run completes; within the range neither."""
    prior = save_tiny_prior(tmp_path / "tiny", "ct", dataset={"manifest": {"pixel_spacing_range_mm": trained}})
    source, out = write_ct("dicom", tmp_path), tmp_path / "out"
    assert main(["ct", "--method", "score", "--sampler", "dds", "--steps", "2", "--prior", f"{prior}.json",
                 "--projections", "8", "--quiet", source, "-o", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())["pixel_spacing"]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert record["scan_mm"] == pytest.approx(0.6615, abs=1e-4) and record["trained_mm"] == trained
    assert (record["warning"] is not None) == warns and len(err) == (1 if warns else 0)
    if warns:
        assert err[0] == f"warning: {record['warning']}"
