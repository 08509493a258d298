"""DICOM in and out: HU round trips, identity and geometry kept, series sorting."""
import copy

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import generate_uid

from recon.errors import InputError
from recon.io import read_volume, write_volume
from recon.units import hu_to_model, model_to_hu

CT_SMALL = get_testdata_file("CT_small.dcm")
MR_SMALL = get_testdata_file("MR_small.dcm")
KEPT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "FrameOfReferenceUID",
             "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns",
             "RescaleSlope", "RescaleIntercept", "Modality", "SOPClassUID")


def _hu(path):
    ds = pydicom.dcmread(path)
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)


def test_ct_small_reads_in_model_units():
    volume = read_volume(CT_SMALL)
    assert volume.format == "dicom" and volume.modality == "ct" and volume.scale == 1.0
    assert volume.data.shape == (1, 128, 128) and volume.data.dtype == np.float32
    assert np.allclose(model_to_hu(volume.data[0].astype(np.float64)), _hu(CT_SMALL), atol=1e-3)


def test_ct_round_trip_keeps_hu_identity_and_geometry(tmp_path):
    volume = read_volume(CT_SMALL)
    rng = np.random.default_rng(0)
    result = volume.data + hu_to_model(rng.uniform(-30, 30, volume.data.shape)).astype(np.float32) - 0.25
    paths = write_volume(volume, result, tmp_path, "recon", "score-prior sparse-view CT")
    assert [p.name for p in paths] == ["recon.dcm"]
    original, written = pydicom.dcmread(CT_SMALL), pydicom.dcmread(paths[0])
    assert np.abs(_hu(paths[0]) - model_to_hu(result[0].astype(np.float64))).max() <= 0.5 + 1e-3
    for tag in KEPT_TAGS:
        assert written.get(tag) == original.get(tag), tag
    assert written.SeriesInstanceUID != original.SeriesInstanceUID
    assert written.SOPInstanceUID != original.SOPInstanceUID
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert written.SeriesDescription == "score-prior sparse-view CT"
    assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    # Read back through the toolkit: HU within one unit of what was written.
    again = read_volume(paths[0])
    assert np.abs(model_to_hu(again.data.astype(np.float64)) - model_to_hu(result.astype(np.float64))).max() <= 1.0


def test_unchanged_ct_round_trip_is_exact(tmp_path):
    volume = read_volume(CT_SMALL)
    paths = write_volume(volume, volume.data, tmp_path, "same", "identity")
    assert np.array_equal(_hu(paths[0]), _hu(CT_SMALL))


def test_mr_round_trip_restores_the_magnitude_scale(tmp_path):
    volume = read_volume(MR_SMALL)
    assert volume.modality == "mri" and volume.scale > 1
    assert np.percentile(volume.data, 99.5) == pytest.approx(1.0, abs=1e-6)
    paths = write_volume(volume, volume.data, tmp_path, "mr", "test")
    assert np.array_equal(_hu(paths[0]), _hu(MR_SMALL))


def _write_series(folder, positions, instance_numbers, series_uid=None):
    """A CT series made from CT_small: slice i gets +100*i HU and the given z and number."""
    template = pydicom.dcmread(CT_SMALL)
    series_uid = series_uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for i, (z, number) in enumerate(zip(positions, instance_numbers)):
        ds = copy.deepcopy(template)
        ds.PixelData = (ds.pixel_array + 100 * i).astype(np.int16).tobytes()
        ds.ImagePositionPatient = [-158.135803, -179.035797, float(z)]
        ds.InstanceNumber = number
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"file{(7 * i) % len(positions)}.dcm", enforce_file_format=True)
    return series_uid


def test_series_folder_sorted_by_position_then_instance_number(tmp_path):
    # Slice i sits at z[i]; two slices share z = 0 and are ordered by InstanceNumber.
    z = [10.0, -5.0, 0.0, 0.0]
    numbers = [1, 2, 9, 3]
    _write_series(tmp_path / "series", z, numbers)
    volume = read_volume(tmp_path / "series")
    assert volume.data.shape == (4, 128, 128)
    base = _hu(CT_SMALL)
    offsets = [np.median(model_to_hu(s.astype(np.float64)) - base) for s in volume.data]
    # Sorted: z=-5 (i=1), z=0 #3 (i=3), z=0 #9 (i=2), z=10 (i=0).
    assert np.allclose(offsets, [100, 300, 200, 0], atol=0.01)

    out = tmp_path / "out"
    paths = write_volume(volume, volume.data, out, "recon", "score")
    assert [p.name for p in paths] == [f"recon_{i:04d}.dcm" for i in range(1, 5)]
    written = [pydicom.dcmread(p) for p in paths]
    assert len({ds.SeriesInstanceUID for ds in written}) == 1
    assert [float(ds.ImagePositionPatient[2]) for ds in written] == [-5.0, 0.0, 0.0, 10.0]
    assert [int(ds.InstanceNumber) for ds in written] == [2, 3, 9, 1]
    for path, model in zip(paths, volume.data):
        assert np.abs(_hu(path) - model_to_hu(model.astype(np.float64))).max() <= 0.5 + 1e-3


def test_mixed_series_refused(tmp_path):
    folder = tmp_path / "mixed"
    _write_series(folder, [0.0, 5.0], [1, 2])
    extra = pydicom.dcmread(CT_SMALL)
    extra.SeriesInstanceUID = generate_uid()
    extra.save_as(folder / "other.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="mixes 2 DICOM series"):
        read_volume(folder)


def test_modality_mismatch_refused():
    with pytest.raises(InputError, match="Modality is MR, not CT"):
        read_volume(MR_SMALL, modality="ct")
