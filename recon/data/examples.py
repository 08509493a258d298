"""The small real inputs of the README demo, made from files installed with the packages.

* ``CT_small.dcm``: pydicom's 128 x 128 CT test image (HU via
  RescaleSlope/Intercept), copied from the installed pydicom.
* ``phantom_ct.dcm``: a 128 x 128 thorax phantom from the CT test split
  (seed 0, item 0) as a CT DICOM file (2.97 mm pixels, HU via slope 1 and
  intercept -1024), for a demo inside the CT prior's training distribution;
  CT_small.dcm is a vertebra close-up (85 mm field of view) and is not.
* ``brain.nii.gz``: 16 axial slices of 128 x 128 (1.5625 mm in-plane,
  1 mm apart, int16) resampled from nilearn's MNI152 T1 template, taken from
  the held-out block (MNI z = +14..+29 mm) that the MR training set never
  uses; the affine maps voxels to MNI millimetres.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from recon.data.mri_slices import brain_window, template_image
from recon.data.phantom_ct import thorax_phantom
from recon.data.phantom_geometry import FOV_MM
from recon.io.atomic import atomic_path

BRAIN_SLICES = range(86, 102)  # template k; all inside EXCLUDED_FROM_TRAIN
BRAIN_SIZE = 128
BRAIN_PEAK = 1000.0  # stored grey value of the template's 1.0


def copy_ct_small(out_dir: Path) -> Path:
    """Copy pydicom's ``CT_small.dcm`` into ``out_dir``."""
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("CT_small.dcm"))
    target = out_dir / "CT_small.dcm"
    with atomic_path(target) as temp:
        shutil.copyfile(source, temp)
    return target


def phantom_dicom(path: Path) -> Path:
    """Write the CT test-split phantom (seed 0, item 0) as a DICOM file, CT_small.dcm's
    header serving as template (new identity, UIDs and geometry)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from recon.data.build import item_seed

    hu = thorax_phantom(BRAIN_SIZE, item_seed(0, "test", 0))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.remove_private_tags()
    ds.PatientName, ds.PatientID = "Phantom^Thorax", "PHANTOM-CT-TEST-0"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    spacing = FOV_MM / BRAIN_SIZE
    ds.PixelSpacing = [round(spacing, 6)] * 2
    ds.ImagePositionPatient = [round(-FOV_MM / 2 + spacing / 2, 6)] * 2 + [0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 3.0
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SeriesDescription = "thorax phantom (recon.data.phantom_ct), CT test item 0"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = np.clip(np.rint(hu + 1024), -32768, 32767).astype("<i2").tobytes()
    with atomic_path(path) as temp:
        ds.save_as(temp, enforce_file_format=True)
    return path


def brain_volume() -> nib.Nifti1Image:
    """The example brain volume (see the module docstring)."""
    template = template_image()
    data = np.asarray(template.get_fdata(), dtype=np.float32)
    rows, cols, side = brain_window()
    # Window of the display frame (rows = -y, cols = +x) -> voxel indices of the RAS template.
    step = side / BRAIN_SIZE
    x0 = cols + 0.5 * step - 0.5
    y_top = data.shape[1] - 1 - (rows + 0.5 * step - 0.5)
    voxel_to_template = np.array([[step, 0, 0, x0],
                                  [0, step, 0, y_top - (BRAIN_SIZE - 1) * step],
                                  [0, 0, 1, BRAIN_SLICES.start],
                                  [0, 0, 0, 1]])
    grid = np.indices((BRAIN_SIZE, BRAIN_SIZE, len(BRAIN_SLICES)), dtype=np.float64).reshape(3, -1)
    source = voxel_to_template[:3, :3] @ grid + voxel_to_template[:3, 3:]
    smoothed = ndimage.gaussian_filter(data, (0.4 * step, 0.4 * step, 0))
    values = ndimage.map_coordinates(smoothed, source, order=3, mode="constant")
    values = values.reshape(BRAIN_SIZE, BRAIN_SIZE, len(BRAIN_SLICES))
    volume = np.rint(np.clip(values, 0, None) * BRAIN_PEAK).astype(np.int16)
    image = nib.Nifti1Image(volume, template.affine @ voxel_to_template)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = b"MNI152 T1 template slices (nilearn), resampled"
    image.set_qform(image.affine, code=4)  # 4 = MNI152
    image.set_sform(image.affine, code=4)
    return image


def write_examples(out_dir: Path | str) -> list[Path]:
    """Write ``CT_small.dcm``, ``phantom_ct.dcm`` and ``brain.nii.gz`` into ``out_dir``;
    returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    brain = out_dir / "brain.nii.gz"
    with atomic_path(brain) as temp:
        nib.save(brain_volume(), str(temp))
    return [copy_ct_small(out_dir), phantom_dicom(out_dir / "phantom_ct.dcm"), brain]
