"""`recon bench real` and recon.data.real_slices: the registry of real slices, its split, the tuning that
sees only validation slices, and a tiny end-to-end run."""
import json

import numpy as np
import pytest
import torch

from recon import bench_real
from recon.cli import main
from recon.data import real_slices
from recon.errors import InputError
from recon.tasks import SparseViewCT
from recon.units import hu_to_model

pytestmark = pytest.mark.usefixtures("one_thread")

DICOM_FILES = {"j2k-skull-base": "J2K_pixelrep_mismatch.dcm", "j2k-head": "693_J2KI.dcm",
               "ct-small-spine": "CT_small.dcm", "overlay-abdomen": "examples_overlay.dcm",
               "mr-small-head": "MR_small.dcm"}
REPORTED = "j2k-skull-base"  # a test slice that ships with pydicom


def load_or_skip(name: str, size: int | None = None) -> torch.Tensor:
    try:
        return real_slices.load(name, size)
    except InputError as exc:
        pytest.skip(f"{name}: {exc}")


@pytest.mark.parametrize("name", real_slices.names())
def test_every_slice_loads_square_finite_in_model_units(name):
    info = real_slices.get(name)
    image = load_or_skip(name)
    assert image.shape == (1, 1, info.side, info.side) and image.dtype == torch.float32
    assert torch.isfinite(image).all()
    if info.modality == "ct":  # air (-1024 HU, the floor) up to dense bone / contrast
        assert image.min() >= hu_to_model(-1024.0) - 1e-6 and image.max() < 1.0
    else:  # magnitude over the slice's robust maximum
        assert image.min() >= 0 and 0.9 < np.percentile(image.numpy(), 99.5) <= 1.0 + 1e-6
    assert load_or_skip(name, 128).shape == (1, 1, 128, 128)
    assert 1 < info.fov_cm < 40


def test_split_is_fixed_disjoint_and_has_both_parts_per_modality():
    for modality in real_slices.MODALITIES:
        validation = set(real_slices.names(modality, "validation"))
        test = set(real_slices.names(modality, "test"))
        assert validation and test and not validation & test
        assert validation | test == set(real_slices.names(modality))
        assert all(real_slices.split(n) == "validation" for n in validation)
    with pytest.raises(InputError, match="unknown real slice"):
        real_slices.split("no-such-slice")
    with pytest.raises(InputError, match="unknown split"):
        real_slices.names(split_name="val")


@pytest.mark.parametrize("name", sorted(DICOM_FILES))
def test_pixel_spacing_is_the_file_s(name):
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file(DICOM_FILES[name], download=False)
    if path is None:
        pytest.skip(f"{DICOM_FILES[name]} is not bundled with this pydicom")
    spacing = [float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).PixelSpacing]
    assert real_slices.get(name).spacing_mm == pytest.approx(spacing[0], abs=1e-3) == spacing[1]


def test_tuning_refuses_any_slice_outside_validation():
    test_case = (real_slices.get(REPORTED), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="only see validation"):
        bench_real.tune_weight("fista-tv", SparseViewCT(projections=4), [test_case], calls=1)
    with pytest.raises(InputError, match="validation"):
        bench_real.Plan(split="test", sizes=("128",), slices=("j2k-head",)).check()


def test_cli_real_quick_tiny_run(tiny_priors, tmp_path, monkeypatch):
    load_or_skip(REPORTED)
    seen = []
    tune = bench_real.tune_weight

    def spy(method, task, validation, *args, **kwargs):
        seen.append([(info.name, info.split, tuple(image.shape)) for info, image in validation])
        return tune(method, task, validation, *args, **kwargs)

    monkeypatch.setattr(bench_real, "tune_weight", spy)
    monkeypatch.setattr(bench_real, "METHODS", {**bench_real.METHODS, "ct-sparse-view": ("fbp", "fista-tv", "score")})
    out = tmp_path / "real"
    argv = ["bench", "real", "--quick", "--slices", REPORTED, "--views", "23", "--no-mar", "--tuning-calls", "1",
            "--nfe", "3", "--ct-prior", tiny_priors["ct"], "-o", str(out), "--quiet"]
    assert main(argv) == 0

    # tuning saw validation slices only, at the evaluated size, none of them reported
    assert seen and all(split == "validation" and shape == (1, 1, 128, 128) and name != REPORTED
                        for case in seen for name, split, shape in case)
    results = json.loads((out / "results.json").read_text())
    assert results["suite"] == "real" and results["split"] == "test" and results["slices"] == {"ct": [REPORTED]}
    assert results["priors"] == {"ct": "tiny-ct-32"} and results["sizes"] == ["128"]
    rows = results["rows"]
    assert [r["method"] for r in rows] == ["fbp", "fista-tv", "score:dds:3"]
    assert all(r["slice"] == REPORTED and r["split"] == "test" and np.isfinite(r["psnr"]).all() for r in rows)
    assert rows[1]["params"]["lam"] == results["tuned"][0]["lam"] and rows[2]["side"] == 128 and rows[2]["nfe"] == 3
    assert set(results["tuned"][0]["slices"]) <= set(real_slices.names("ct", "validation"))
    report = (out / "report.md").read_text()
    assert "| 23 views | mean of 1 |" in report and "| score:dds:3 |" in report
    assert (out / "panel_ct-sparse-view_128.png").stat().st_size > 5000
