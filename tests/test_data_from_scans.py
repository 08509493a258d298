"""`recon data build --from DIR`: training sets from the user's own DICOM, NIfTI and fastMRI files, split by patient."""
import copy
import json
import shutil

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from recon.cli import main
from recon.data import SliceDataset, read_manifest
from recon.data.from_scans import Recipe, build_from_scans
from recon.errors import InputError
from recon.io import read_volume
from recon.resample import resize
from recon.units import hu_to_model

CT_SMALL = get_testdata_file("CT_small.dcm")  # 128 x 128, 0.661468 mm pixels, RescaleIntercept -1024
MR_SMALL = get_testdata_file("MR_small.dcm")  # PatientID 4MR1
CT_SPACING = 0.661468
SPLITS = ("train", "val", "test")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread


def disk(shape, radii, inside, outside=-1000.0):
    """An ellipse of the given radii (pixels along rows, columns) at the centre of a ``shape`` image."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    r2 = ((yy - (shape[0] - 1) / 2) / radii[0]) ** 2 + ((xx - (shape[1] - 1) / 2) / radii[1]) ** 2
    return np.where(r2 < 1, inside, outside)


def write_ct_series(folder, patient, hu_slices, name="s", series_uid=None, **tags):
    """A CT series made from CT_small, as tests/test_io_dicom.py makes one: slice i holds ``hu_slices[i]``."""
    template = pydicom.dcmread(CT_SMALL)
    series_uid = series_uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, hu in enumerate(hu_slices):
        ds = copy.deepcopy(template)
        ds.PixelData = np.rint(hu - float(ds.RescaleIntercept)).astype(np.int16).tobytes()
        ds.PatientID, ds.SeriesInstanceUID, ds.InstanceNumber = patient, series_uid, i + 1
        ds.ImagePositionPatient = [-158.135803, -179.035797, float(i)]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword, value in tags.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        paths.append(folder / f"{name}{i}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def disks(n, hu0, radius=30):
    return [disk((128, 128), (radius, radius), hu0 + 10.0 * i) for i in range(n)]


def write_nifti(path, data, zooms):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.int16), np.diag(list(zooms) + [1.0])), str(path))


def write_fastmri(path, n=2, patient_id="knee-7"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("reconstruction_rss", data=np.stack([disk((40, 40), (14, 14), 5.0 + i, 0.0)
                                                                   for i in range(n)]).astype(np.float32))
        handle.attrs["patient_id"] = patient_id


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Six CT patients (one series split over two folders, two series in one folder, one without a PatientID,
    one NIfTI volume), a bad DICOM file in a series, an MR file, a fastMRI file and a text file."""
    root = tmp_path_factory.mktemp("scans")
    write_ct_series(root / "dicom" / "p1", "P1", disks(2, 0) + [np.full((128, 128), -1000.0)])  # last: only air
    write_ct_series(root / "dicom" / "p1b", "P1", disks(2, 100))
    write_ct_series(root / "dicom" / "mixed", "P2", disks(2, 200), name="a")
    write_ct_series(root / "dicom" / "mixed", "P3", disks(2, 300), name="b")
    p4 = write_ct_series(root / "dicom" / "p4", "P4", disks(4, 400))
    bad = pydicom.dcmread(p4[-1])
    bad.PixelData = bad.PixelData[:100]  # fewer bytes than Rows x Columns need
    bad.save_as(root / "dicom" / "p4" / "bad.dcm", enforce_file_format=True)
    p4[-1].unlink()
    write_ct_series(root / "dicom" / "anon", "", disks(2, 500))
    volume = np.stack([disk((40, 40), (12, 12), 60.0 + i) for i in range(3)], axis=-1)
    write_nifti(root / "vol" / "ct_vol.nii.gz", volume, (1.0, 1.0, 2.0))
    (root / "mr").mkdir()
    shutil.copy(MR_SMALL, root / "mr" / "MR_small.dcm")
    write_fastmri(root / "knee" / "file1000.h5")
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden").write_text("ignored\n")
    return root


@pytest.fixture(scope="module")
def ct_set(scans, tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "ct.h5"
    report = build_from_scans(scans, out, Recipe("ct", size=32, seed=3), progress=False)
    return out, report


def _read_split(path, split):
    with h5py.File(path, "r") as handle:
        return (handle[f"{split}/images"][()], list(handle[f"{split}/source"].asstr()[()]),
                list(handle[f"{split}/patient"].asstr()[()]))


def test_ct_set_layout_counts_and_skips(ct_set):
    out, report = ct_set
    with h5py.File(out, "r") as handle:
        manifest = json.loads(handle.attrs["manifest"])
        for split in SPLITS:
            images = handle[f"{split}/images"]
            assert images.dtype == np.float32 and images.shape[1:] == (1, 32, 32) and images.chunks == (1, 1, 32, 32)
            assert len(handle[f"{split}/source"]) == len(handle[f"{split}/patient"]) == images.shape[0]
    # 16 slices: P1 4 (its air-only slice left out), P2 2, P3 2, P4 3 (bad.dcm skipped), anonymous 2, NIfTI 3.
    assert sum(report.counts.values()) == 16 and report.dropped == 1
    assert report.patients == {"train": 4, "val": 1, "test": 1}
    assert manifest["counts"] == report.counts and manifest["modality"] == "ct" and manifest["size"] == 32
    assert manifest["generator"]["name"] == "recon.data.from_scans" and manifest["seeds"]["seed"] == 3
    assert manifest["empty_slices"].startswith("left out: 1 slices")
    assert {"source", "splits", "intensity", "created"} <= set(manifest)
    skipped = {s["path"]: (s["kind"], s["reason"]) for s in manifest["skipped"]}
    assert set(skipped) == {"notes.txt", "dicom/p4/bad.dcm", "mr/MR_small.dcm", "knee/file1000.h5"}
    assert skipped["notes.txt"][0] == "unsupported"
    assert skipped["dicom/p4/bad.dcm"][0] == "unreadable" and "bytes of pixel data" in skipped["dicom/p4/bad.dcm"][1]
    assert skipped["mr/MR_small.dcm"] == ("modality", "DICOM Modality MR, not CT")
    assert skipped["knee/file1000.h5"][0] == "modality"
    assert report.n_files == 19  # .hidden is not walked


def test_splits_are_patient_disjoint_and_sources_recorded(ct_set, scans):
    out, _ = ct_set
    seen = {}
    for split in SPLITS:
        images, sources, patients = _read_split(out, split)
        for image, source, patient in zip(images, sources, patients):
            file, _, index = source.partition("#")
            if file.endswith(".dcm"):
                found = str(pydicom.dcmread(scans / file, stop_before_pixels=True).PatientID)
                assert patient == (found or "dicom/anon")
                expected = read_volume(scans / file).data[int(index)]
            else:
                assert file == patient == "vol/ct_vol.nii.gz"
                expected = read_volume(scans / file, modality="ct").data[int(index)]
            expected = resize(torch.from_numpy(expected)[None, None], 32)[0, 0].numpy()
            np.testing.assert_allclose(image[0], expected, atol=1e-5)
            seen.setdefault(patient, set()).add(split)
    assert set(seen) == {"P1", "P2", "P3", "P4", "dicom/anon", "vol/ct_vol.nii.gz"}
    assert all(len(splits) == 1 for splits in seen.values()), seen  # no patient in two splits


def test_cli_prints_one_summary_line_and_train_accepts_the_set(scans, tmp_path, capsys):
    out = tmp_path / "set.h5"
    assert main(["data", "build", "--modality", "ct", "--from", str(scans), "--size", "32", "-o", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out} (")
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped 4 of 19 files (1 not DICOM/NIfTI/fastMRI, 1 unreadable, "
                                                   "2 not CT); first unreadable: dicom/p4/bad.dcm: ")
    assert len(SliceDataset(out, "val")) >= 1 and SliceDataset(out)[0].shape == (1, 32, 32)
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "-o", str(run), "--config", "tiny", "--steps", "1", "--batch-size", "4",
                 "--no-progress"]) == 0
    assert (run / "checkpoints").is_dir()


def test_cap_on_training_slices_is_deterministic(scans, ct_set, tmp_path):
    full = _read_split(ct_set[0], "train")[1]
    recipe = Recipe("ct", size=32, seed=3, n=3)
    first = build_from_scans(scans, tmp_path / "a.h5", recipe, progress=False)
    build_from_scans(scans, tmp_path / "b.h5", recipe, progress=False)
    a, b = _read_split(tmp_path / "a.h5", "train"), _read_split(tmp_path / "b.h5", "train")
    assert first.counts["train"] == 3 and a[1] == b[1] and np.array_equal(a[0], b[0])
    assert set(a[1]) <= set(full)
    assert first.counts["val"] + first.counts["test"] == sum(len(_read_split(ct_set[0], s)[1]) for s in ("val", "test"))


def test_pixel_spacing_keeps_physical_sizes(tmp_path):
    root = tmp_path / "scans"
    write_ct_series(root / "a", "A", disks(2, 0, radius=30))  # 30 px of 0.661468 mm: 19.84 mm
    write_ct_series(root / "c", "C", disks(1, 0), PixelSpacing=None)
    # 12 mm circle on 0.8 mm columns (x) and 0.5 mm rows (y): 15 x 24 voxels.
    write_nifti(root / "b.nii", np.stack([disk((40, 64), (15, 24), 40.0)] * 2, axis=-1), (0.8, 0.5, 2.0))
    report = build_from_scans(root, tmp_path / "s.h5", Recipe("ct", size=48, pixel_spacing=1.0, val_fraction=0,
                                                               test_fraction=0), progress=False)
    assert report.counts == {"train": 4, "val": 0, "test": 0} and report.spacing == [1.0, 1.0]
    assert read_manifest(tmp_path / "s.h5")["pixel_spacing_range_mm"] == [1.0, 1.0]
    assert [(s.path, s.kind) for s in report.skipped] == [("c/s0.dcm", "spacing")]
    images, sources, _ = _read_split(tmp_path / "s.h5", "train")
    assert images.shape == (4, 1, 48, 48)
    half = hu_to_model(-480.0)  # halfway between air and the disk
    for image, source in zip(images[:, 0], sources):
        mask = image > half
        radius = np.sqrt(mask.sum() / np.pi)
        expected = 30 * CT_SPACING if source.startswith("a/") else 12.0
        assert abs(radius - expected) < 1.0, (source, radius)
        assert abs(mask.any(axis=1).sum() - 2 * expected) <= 2 and abs(mask.any(axis=0).sum() - 2 * expected) <= 2


def test_mri_set_uses_fastmri_patient_ids(tmp_path):
    root = tmp_path / "scans"
    write_fastmri(root / "knee" / "file1000.h5")
    shutil.copy(MR_SMALL, root / "MR_small.dcm")
    write_nifti(root / "brain.nii.gz", np.stack([disk((40, 40), (15, 15), 300.0, 0.0)] * 3, axis=-1), (1, 1, 1))
    write_ct_series(root / "ct", "P9", disks(1, 0))
    report = build_from_scans(root, tmp_path / "m.h5", Recipe("mri", size=32), progress=False)
    assert report.patients == {"train": 1, "val": 1, "test": 1}
    assert [(s.path, s.kind) for s in report.skipped] == [("ct/s0.dcm", "modality")]
    patients = {}
    for split in SPLITS:
        _, sources, names = _read_split(tmp_path / "m.h5", split)
        patients.update({source.partition("#")[0]: name for source, name in zip(sources, names)})
    assert patients == {"knee/file1000.h5": "knee-7", "MR_small.dcm": "4MR1", "brain.nii.gz": "brain.nii.gz"}
    with pytest.raises(InputError, match="refusing to overwrite the input"):
        build_from_scans(root, root / "knee" / "file1000.h5", Recipe("mri", size=32), progress=False)


def test_too_few_patients(tmp_path, capsys):
    root = tmp_path / "scans"
    write_ct_series(root / "a", "A", disks(2, 0))
    write_ct_series(root / "b", "B", disks(2, 0))
    out = tmp_path / "s.h5"
    assert main(["data", "build", "--modality", "ct", "--from", str(root), "--size", "16", "-o", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "2 patient(s) found; val and test need patients of their own" in err
    assert not out.exists()
    assert main(["data", "build", "--modality", "ct", "--from", str(root), "--size", "16", "-o", str(out),
                 "--val-fraction", "0", "--test-fraction", "0", "--quiet"]) == 0
    assert "4 train, 0 val, 0 test slices of 16x16 from 2 / 0 / 0 patients" in capsys.readouterr().out


@pytest.mark.parametrize("content", ["junk", "broken"])
def test_no_usable_file_is_one_line_and_writes_nothing(tmp_path, capsys, content):
    root = tmp_path / "scans"
    root.mkdir()
    (root / "notes.txt").write_text("hello")
    if content == "broken":  # a DICOM series whose only file cannot be decoded: found, then nothing read
        path = write_ct_series(root, "A", disks(1, 0))[0]
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[:10]
        ds.save_as(path, enforce_file_format=True)
    else:
        (root / "random.dcm").write_bytes(np.random.default_rng(0).bytes(600))
    out = tmp_path / "out" / "s.h5"
    code = main(["data", "build", "--modality", "ct", "--from", str(root), "-o", str(out), "--quiet",
                 "--val-fraction", "0", "--test-fraction", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("recon: error: ")
    if content == "junk":
        assert "no usable CT scans; skipped 2 of 2 files (2 not DICOM/NIfTI/fastMRI)" in err[0]
    else:
        assert "no usable CT slices; skipped 2 of 2 files (1 not DICOM/NIfTI/fastMRI, 1 unreadable)" in err[0]
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


def test_option_errors(tmp_path, capsys):
    out = str(tmp_path / "s.h5")
    assert main(["data", "build", "--modality", "ct", "-o", out]) == 2
    assert "--n (training slices) is required" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--from", str(tmp_path), "--val", "3", "-o", out]) == 2
    assert "--val is for the procedural sets" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--n", "4", "--pixel-spacing", "1", "-o", out]) == 2
    assert "--pixel-spacing needs --from" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--from", str(tmp_path / "none"), "-o", out]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--from", str(tmp_path), "--val-fraction", "0.6",
                 "--test-fraction", "0.5", "-o", out]) == 2
    assert "must be below 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_output_inside_the_folder_is_no_input_and_other_sets_are_skipped(tmp_path):
    root = tmp_path / "scans"
    write_ct_series(root / "a", "A", disks(2, 0))
    recipe = Recipe("ct", size=16, val_fraction=0, test_fraction=0)
    build_from_scans(root, root / "old.h5", recipe, progress=False)
    first = build_from_scans(root, root / "new.h5", recipe, progress=False)
    again = build_from_scans(root, root / "new.h5", recipe, progress=False)  # replaces its own earlier output
    for report in (first, again):
        assert report.n_files == 3 and report.counts["train"] == 2
        assert [(s.path, s.kind) for s in report.skipped] == [("old.h5", "unsupported")]
