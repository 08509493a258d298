"""End-to-end `recon ct` / `recon mri` with classical methods, and their refusals."""
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from recon.cli import main


def disc_image(n: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    image = np.where(xx**2 + yy**2 < (0.4 * n) ** 2, 0.25, 0.0)
    image[(xx - 3) ** 2 + yy**2 < 9] = 0.5
    return image.astype(np.float32)


def test_ct_dicom_in_dicom_out(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    out = tmp_path / "out"
    assert main(["ct", "--projections", "23", "--method", "fbp", source, "-o", str(out), "--quiet"]) == 0
    written = pydicom.dcmread(out / "CT_small_fbp.dcm")
    original = pydicom.dcmread(source)
    assert written.PatientID == original.PatientID
    assert written.SeriesInstanceUID != original.SeriesInstanceUID
    assert (out / "CT_small_fbp.png").stat().st_size > 1000
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == "fbp" and report["slices"] == 1
    assert 15 < report["mean"]["psnr"] < 40
    assert report["parameters"]["projections"] == 23


def test_ct_npy_volume_with_iterative_method(tmp_path):
    volume = np.stack([disc_image(), disc_image()[::-1]])
    path = tmp_path / "phantom.npy"
    np.save(path, volume * 4000 - 1000)  # .npy CT inputs are in HU
    out = tmp_path / "out"
    assert main(["ct", "--projections", "12", "--method", "sirt", str(path), "-o", str(out), "--quiet"]) == 0
    result = np.load(out / "phantom_sirt.npy")
    assert result.shape == (2, 32, 32)
    report = json.loads((out / "metrics.json").read_text())
    assert report["mean"]["psnr"] > report["mean"]["fbp_psnr"]


def test_ct_normalised_tiff_needs_its_scale(tmp_path, capsys):
    """A float TIFF normalised to [-1, 1] is not HU: refused in one line naming --rescale, read with it, and the
    scale is recorded."""
    import tifffile

    path = tmp_path / "normalised.tif"
    tifffile.imwrite(path, disc_image() * 2 - 1)
    assert main(["ct", "--method", "fbp", str(path), "-o", str(tmp_path / "refused"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rescale SLOPE INTERCEPT" in err[0] and not (tmp_path / "refused").exists()
    out = tmp_path / "out"
    assert main(["ct", "--method", "fbp", "--rescale", "2000", "976", str(path), "-o", str(out), "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["parameters"]["rescale"] == [2000.0, 976.0]
    assert tifffile.imread(out / "normalised_fbp.tiff").squeeze().shape == (32, 32)


def test_mri_nifti_in_nifti_out(tmp_path):
    volume = np.stack([disc_image(), disc_image()], axis=-1) * 1000  # (H, W, S) magnitude
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    out = tmp_path / "out"
    assert main(["mri", "--accel", "4", "--method", "cs-tv", str(path), "-o", str(out), "--quiet"]) == 0
    written = nib.load(out / "brain_cs-tv.nii.gz")
    assert np.allclose(written.affine, affine)
    report = json.loads((out / "metrics.json").read_text())
    assert report["mean"]["psnr"] > report["mean"]["zero-filled_psnr"]


@pytest.mark.parametrize("argv, message", [
    (["ct", "--projections", "500", "--method", "fbp"], "--projections"),
    (["mri", "--accel", "0.5", "--method", "zero-filled"], "--accel"),
])
def test_bad_options_exit_2_without_output(tmp_path, capsys, argv, message):
    path = tmp_path / "image.npy"
    np.save(path, disc_image() * 4000 - 1000)
    out = tmp_path / "out"
    assert main([*argv, str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_missing_input_is_one_line(tmp_path, capsys):
    assert main(["ct", str(tmp_path / "nope.dcm"), "-o", str(tmp_path / "out"), "--method", "fbp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.dcm" in err[0]
