"""Bad input: one-line InputError naming the file and the problem, and no output left behind."""
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder

import recon.io.dicom
from recon.cli import main
from recon.errors import InputError
from recon.io import read_volume, write_volume


def _bad_inputs(folder):
    """name -> (path, expected message fragment, read_volume kwargs)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {"missing": (folder / "nowhere.dcm", "no such file or folder", {})}
    text = folder / "notes.dcm"
    text.write_text("this is not DICOM\n")
    cases["not dicom"] = (text, "not a DICOM file", {})
    cases["no pixel data"] = (get_testdata_file("rtplan.dcm"), "DICOM file has no pixel data", {})
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 4, 3), np.float32), np.eye(4)), folder / "fmri.nii.gz")
    cases["4-D nifti"] = (folder / "fmri.nii.gz", "4-D NIfTI with 3 volumes; choose one with --volume (0..2)", {})
    cases["volume out of range"] = (folder / "fmri.nii.gz", "--volume 3 is out of range: the file holds 3 volumes",
                                   {"volume": 3})
    cases["volume of a 3-D file"] = (folder / "nan.npy", "--volume 0 picks a volume of a 4-D NIfTI file",
                                     {"volume": 0})
    bad = np.zeros((16, 16))
    bad[3, 4] = np.nan
    np.save(folder / "nan.npy", bad)
    cases["nan"] = (folder / "nan.npy", "contains NaN or Inf values", {})
    inf = np.zeros((16, 16))
    inf[0, 0] = np.inf
    np.save(folder / "inf.npy", inf)
    cases["inf"] = (folder / "inf.npy", "contains NaN or Inf values", {})
    np.save(folder / "wide.npy", np.linspace(-1000, 1000, 16 * 24).reshape(16, 24))
    cases["non-square"] = (folder / "wide.npy", "slices are 16x24, not square", {})
    np.save(folder / "tiny.npy", np.zeros((4, 4)))
    cases["too small"] = (folder / "tiny.npy", "image size 4x4 is out of range", {})
    np.save(folder / "huge.npy", np.zeros((8, 5000), np.float32))
    cases["too large"] = (folder / "huge.npy", "image size 8x5000 is out of range", {"square": "pad"})
    (folder / "table.csv").write_text("1,2\n")
    cases["unknown type"] = (folder / "table.csv", "unrecognised file type", {})
    np.save(folder / "normalised.npy", np.linspace(-1, 1, 256).reshape(16, 16))
    cases["not HU"] = (folder / "normalised.npy", "values span -1 to 1 HU, too narrow for a CT slice", {})
    cases["rescale a DICOM"] = (get_testdata_file("CT_small.dcm"), "--rescale gives the HU scale of a .npy",
                                {"rescale": (1.0, 0.0)})
    cases["rescale MR"] = (folder / "normalised.npy", "--rescale sets CT numbers (HU)",
                           {"rescale": (1.0, 0.0), "modality": "mri"})
    return cases


CASES = ["missing", "not dicom", "no pixel data", "4-D nifti", "volume out of range", "volume of a 3-D file", "nan",
         "inf", "non-square", "too small", "too large", "unknown type",
         "not HU", "rescale a DICOM", "rescale MR"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_message(tmp_path, case):
    path, fragment, kwargs = _bad_inputs(tmp_path / "in")[case]
    with pytest.raises(InputError) as info:
        read_volume(path, **kwargs)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_transfer_syntax_without_decoder(monkeypatch):
    """Without a decoder for its compression (pylibjpeg uninstalled), a file says which syntax and what to install."""
    monkeypatch.setattr(recon.io.dicom, "_decodable", lambda syntax: False)
    with pytest.raises(InputError, match="no decoder installed for transfer syntax 'JPEG-LS Lossless Image Compression'"):
        read_volume(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_compressed_copies_read_as_the_uncompressed_file(name):
    """Clinical archives store JPEG-LS, RLE and JPEG 2000: each lossless copy of MR_small reads bit for bit as the
    uncompressed file (pylibjpeg-libjpeg, pydicom's RLE decoder, pillow's OpenJPEG)."""
    np.testing.assert_array_equal(read_volume(get_testdata_file(name)).data, read_volume(get_testdata_file("MR_small.dcm")).data)


def test_jpeg_lossless_and_extended_decode():
    """JPEG lossless (process 14, common for CT archives) and 12-bit extended JPEG (processes 2 and 4) decode."""
    for name in ("SC_rgb_jpeg_gdcm.dcm", "JPGExtended.dcm"):
        path = get_testdata_file(name)
        assert get_decoder(pydicom.dcmread(path).file_meta.TransferSyntaxUID).is_available, name
        assert pydicom.dcmread(path).pixel_array.size > 0


@pytest.mark.parametrize("case", ["missing", "not dicom", "no pixel data", "4-D nifti", "nan", "too small"])
def test_cli_exits_2_without_output(tmp_path, capsys, case):
    path, fragment, _ = _bad_inputs(tmp_path / "in")[case]
    out = tmp_path / "out"
    assert main(["ct", "--method", "fbp", str(path), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("recon: error: ") and fragment in error and error.count("\n") == 1
    assert not out.exists() or not any(out.rglob("*"))


def test_failed_series_write_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(3):
        template.ImagePositionPatient = [0.0, 0.0, float(i)]
        template.save_as(folder / f"{i}.dcm", enforce_file_format=True)
    volume = read_volume(folder)
    real_write = pydicom.dcmwrite
    calls = []

    def failing_write(path, ds, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_write(path, ds, **kwargs)

    monkeypatch.setattr(recon.io.dicom.pydicom, "dcmwrite", failing_write)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        write_volume(volume, volume.data, out, "recon", "x")
    assert list(out.iterdir()) == []


def test_write_refuses_to_overwrite_the_input(tmp_path):
    source = tmp_path / "CT_small.dcm"
    shutil.copyfile(get_testdata_file("CT_small.dcm"), source)
    before = source.read_bytes()
    volume = read_volume(source)
    with pytest.raises(InputError, match="refusing to overwrite the input file"):
        write_volume(volume, volume.data, tmp_path, "CT_small", "x")
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CT_small.dcm"]


def test_result_with_wrong_shape_or_nan_is_not_written(tmp_path):
    np.save(tmp_path / "a.npy", np.linspace(-1000, 1000, 256).reshape(16, 16))
    volume = read_volume(tmp_path / "a.npy")
    with pytest.raises(ValueError, match="does not match"):
        write_volume(volume, np.zeros((1, 8, 8)), tmp_path / "out", "r", "x")
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_volume(volume, np.full((1, 16, 16), np.nan), tmp_path / "out", "r", "x")
    assert not (tmp_path / "out").exists()
