"""DICOM tags checked before any pixel is used, and DICOM out that says what it holds.

Each case is one of issue 18's reproductions: a header that cannot describe its
pixels is refused in one line naming the file and the tag; values are written
through a rescale they fit; the std map is its own derived series.
"""

import h5py
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import generate_uid

from recon.errors import InputError
from recon.io import read_volume, write_volume
from recon.units import hu_to_model

CT_SMALL = get_testdata_file("CT_small.dcm")


def _ct(**tags) -> pydicom.Dataset:
    ds = pydicom.dcmread(CT_SMALL)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _save(ds: pydicom.Dataset, path):
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _series(folder, datasets):
    """Write ``datasets`` as one series (shared SeriesInstanceUID, z = 5 mm apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for i, ds in enumerate(datasets):
        ds.SeriesInstanceUID = uid
        if "ImagePositionPatient" in ds and len(ds.ImagePositionPatient) == 3:
            ds.ImagePositionPatient = [0.0, 0.0, 5.0 * i]
        ds.InstanceNumber = i + 1
        _save(ds, folder / f"slice{i}.dcm")
    return folder


def _refused(path, fragment, **kwargs):
    with pytest.raises(InputError) as info:
        read_volume(path, **kwargs)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message
    return message


@pytest.mark.parametrize("slope", ["0", "1e-9", "5e4"])
def test_absurd_rescale_slope_is_refused(tmp_path, slope):
    path = _save(_ct(RescaleSlope=slope), tmp_path / "slope.dcm")
    assert str(path) in _refused(path, "RescaleSlope is")


def test_slice_without_rows_names_the_file(tmp_path):
    datasets = [_ct() for _ in range(3)]
    del datasets[1].Rows
    folder = _series(tmp_path / "series", datasets)
    assert "slice1.dcm" in _refused(folder, "no Rows")


def test_two_value_image_position_names_the_file(tmp_path):
    path = _save(_ct(ImagePositionPatient=[1.0, 2.0]), tmp_path / "position.dcm")
    assert str(path) in _refused(path, "ImagePositionPatient has 2 values, expected 3")


def test_rows_disagreeing_with_pixel_data_is_refused_at_reading(tmp_path):
    path = _save(_ct(Rows=130), tmp_path / "rows.dcm")
    _refused(path, "need 33280 bytes of pixel data, the file holds 32768")


def test_other_modalities_need_force(tmp_path):
    _refused(get_testdata_file("rtdose.dcm"), "Modality is RTDOSE, not CT", modality="ct")
    pet = _save(_ct(Modality="PT"), tmp_path / "pet.dcm")
    _refused(pet, "pass --force-modality", modality="ct")
    assert read_volume(pet, modality="ct", force=True).modality == "ct"
    _refused(pet, "neither CT nor MR")


def test_series_mixing_modalities_is_refused_even_when_forced(tmp_path):
    folder = _series(tmp_path / "mixed", [_ct(), _ct(Modality="MR")])
    _refused(folder, "series mixes modalities CT, MR", modality="ct", force=True)


def test_output_rescale_widens_instead_of_clipping(tmp_path):
    # Input stored with slope 0.001: its int16 range spans only -32.8..32.8 HU.
    path = _save(_ct(RescaleSlope="0.001", RescaleIntercept="0"), tmp_path / "fine.dcm")
    volume = read_volume(path)
    hu = np.linspace(-1000.0, 2000.0, 128 * 128).reshape(1, 128, 128)
    written = write_volume(volume, hu_to_model(hu).astype(np.float32), tmp_path / "out", "recon", "test")[0]
    ds = pydicom.dcmread(written)
    slope = float(ds.RescaleSlope)
    assert slope > 0.001
    back = apply_modality_lut(ds.pixel_array, ds)
    # Rounding to the stored integer costs at most half a step, float32 model units add < 0.01 HU.
    assert np.abs(back - hu[0]).max() <= slope / 2 + 0.01


def test_unchanged_values_keep_the_input_rescale(tmp_path):
    volume = read_volume(CT_SMALL)
    ds = pydicom.dcmread(write_volume(volume, volume.data, tmp_path, "same", "identity")[0])
    original = pydicom.dcmread(CT_SMALL)
    assert (ds.RescaleSlope, ds.RescaleIntercept) == (original.RescaleSlope, original.RescaleIntercept)


def test_lossy_flag_kept_and_input_referenced(tmp_path):
    source = _ct(LossyImageCompression="01", LossyImageCompressionRatio="10", LossyImageCompressionMethod="ISO_10918_1")
    path = _save(source, tmp_path / "lossy.dcm")
    volume = read_volume(path)
    ds = pydicom.dcmread(write_volume(volume, volume.data, tmp_path / "out", "recon", "test")[0])
    assert ds.LossyImageCompression == "01"
    assert float(ds.LossyImageCompressionRatio) == 10.0 and ds.LossyImageCompressionMethod == "ISO_10918_1"
    (reference,) = ds.SourceImageSequence
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == source.SOPClassUID


def test_std_map_is_its_own_series(tmp_path):
    volume = read_volume(CT_SMALL)
    out = tmp_path / "out"
    image = pydicom.dcmread(write_volume(volume, volume.data, out, "recon", "image")[0])
    std_hu = np.full((1, 128, 128), 12.5)
    std_hu[0, :8] = 250.0
    # The writer maps model units to HU; shift so the stored values are the std in HU.
    std = pydicom.dcmread(write_volume(volume, hu_to_model(std_hu).astype(np.float32), out, "std", "posterior std",
                                       kind="std")[0])
    original = pydicom.dcmread(CT_SMALL)
    assert std.SeriesInstanceUID != image.SeriesInstanceUID
    assert (image.SeriesNumber, std.SeriesNumber) == (original.SeriesNumber + 1000, original.SeriesNumber + 2000)
    assert "POSTERIOR_STD" in list(std.ImageType) and std.RescaleType == "US"
    assert "WindowCenter" not in std
    assert np.abs(apply_modality_lut(std.pixel_array, std) - std_hu[0]).max() <= float(std.RescaleSlope) / 2 + 0.01


def test_fastmri_reconstruction_of_strings_is_refused(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as handle:
        handle["reconstruction_esc"] = np.array([b"abc", b"def"])
    _refused(path, "'reconstruction_esc' must hold real numbers")
