"""End-to-end `recon ct` / `recon mri --method score` with an untrained tiny prior on every input format.

The prior is random (``tiny_priors``), so the checks are about the plumbing:
every output exists, reads back, and ``metrics.json`` records the run.
"""
import copy
import json

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from recon.cli import main
from recon.io import read_volume

N = 32
STEPS = "3"
PC_NFE = 2 * int(STEPS) + 1  # predictor + corrector per level, plus the final Tweedie denoise


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread."""


def phantom(shift: int = 0) -> np.ndarray:
    """(N, N) model units: a water disc with a bone insert and a dark hole."""
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    image = np.where(xx**2 + yy**2 < (0.42 * N) ** 2, 0.25, 0.0)
    image[(xx - 4 - shift) ** 2 + yy**2 < 10] = 0.5
    image[(xx + 5) ** 2 + (yy - 3) ** 2 < 6] = 0.05
    return image.astype(np.float32)


def volume(slices: int = 2) -> np.ndarray:
    return np.stack([phantom(s) for s in range(slices)])


def _dicom(template_name: str, stored: np.ndarray, z: float = 0.0, series_uid: str | None = None):
    """A copy of a pydicom test file holding the (N, N) int16 ``stored`` values."""
    ds = pydicom.dcmread(get_testdata_file(template_name))
    ds = copy.deepcopy(ds)
    ds.Rows, ds.Columns = stored.shape
    ds.PixelData = stored.astype(np.int16).tobytes()
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _ct_stored(image: np.ndarray) -> np.ndarray:
    return np.round(image * 4000 - 1000 + 1024)  # CT_small: slope 1, intercept -1024


def write_ct(kind: str, folder) -> str:
    """Write the CT phantom as ``kind``; returns the path to pass to `recon ct`."""
    if kind == "dicom":
        path = folder / "ct.dcm"
        _dicom("CT_small.dcm", _ct_stored(phantom())).save_as(path)
    elif kind == "dicom-series":
        path = folder / "series"
        path.mkdir()
        uid = generate_uid()
        for i, image in enumerate(volume()):
            _dicom("CT_small.dcm", _ct_stored(image), z=2.5 * i, series_uid=uid).save_as(path / f"{i}.dcm")
    elif kind == "nifti":
        path = folder / "ct.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(volume(), 0, -1) * 4000 - 1000, np.diag([0.8, 0.8, 2.5, 1.0])), path)
    elif kind == "npy":
        path = folder / "ct.npy"
        np.save(path, volume() * 4000 - 1000)  # HU
    elif kind == "png":
        path = folder / "ct.png"
        Image.fromarray(np.round(phantom() * 255).astype(np.uint8)).save(path)  # grey = model units
    else:
        path = folder / "ct.tiff"
        tifffile.imwrite(path, (volume() * 4000 - 1000).astype(np.float32))  # float TIFF: HU
    return str(path)


def write_mri(kind: str, folder) -> str:
    """Write the MR phantom (magnitude, arbitrary units) as ``kind``; returns its path."""
    magnitude = volume() * 1000
    if kind == "nifti":
        path = folder / "brain.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(magnitude, 0, -1), np.diag([0.9, 0.9, 3.0, 1.0])), path)
    elif kind == "dicom":
        path = folder / "brain.dcm"
        _dicom("MR_small.dcm", np.round(magnitude[0])).save_as(path)
    elif kind == "fastmri":
        path = folder / "brain.h5"
        image = np.fft.ifftshift(magnitude, axes=(-2, -1))
        kspace = np.fft.fftshift(np.fft.fft2(image, norm="ortho"), axes=(-2, -1)).astype(np.complex64)
        with h5py.File(path, "w") as f:
            f.create_dataset("kspace", data=kspace)
            f.create_dataset("reconstruction_esc", data=magnitude.astype(np.float32))
            f.attrs["acquisition"] = "CORPD_FBK"
    else:
        path = folder / "brain.npy"
        np.save(path, magnitude)
    return str(path)


def read_output(path: str) -> np.ndarray:
    """Read a written file back by its own format's reader; returns its pixels."""
    if path.endswith(".png"):
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            return np.asarray(image)
    if path.endswith(".dcm"):
        return pydicom.dcmread(path).pixel_array
    if path.endswith((".nii", ".nii.gz")):
        return np.asarray(nib.load(path).dataobj)
    if path.endswith(".npy"):
        return np.load(path)
    if path.endswith(".tiff"):
        return tifffile.imread(path)
    if path.endswith(".h5"):
        with h5py.File(path, "r") as f:
            return np.asarray(f["reconstruction"])
    raise AssertionError(f"unexpected output file {path}")


def score_run(verb: str, source: str, out, prior: str, *extra: str) -> dict:
    argv = [verb, "--method", "score", "--sampler", "pc", "--prior", prior, "--steps", STEPS, "--device", "cpu", "--quiet",
            *extra, source, "-o", str(out)]
    assert main(argv) == 0
    return json.loads((out / "metrics.json").read_text())


def check_report(report: dict, prior_id: str, task: str, slices: int, channels: int = 1) -> None:
    """``channels``: prior images per slice (2 for raw k-space: the real and imaginary parts)."""
    assert report["prior"] == prior_id and report["task"] == task
    assert report["method"] == "score-pc" and report["slices"] == slices
    assert report["nfe_per_slice"] == channels * PC_NFE
    parameters = report["parameters"]
    assert parameters["steps"] == int(STEPS) and parameters["sampler"] == "pc" and parameters["seed"] == 0
    assert 0 <= parameters["lam"] <= 1 and parameters["snr"] > 0
    assert "defaults_source" in report  # where lam/snr came from (None for a prior without a note)
    assert np.isfinite(report["mean"]["psnr"]) and -1 <= report["mean"]["ssim"] <= 1  # untrained prior


def check_files(report: dict, out, volume_suffix: str, n_volume_files: int) -> None:
    files = report["files"]
    assert sorted(files) == sorted(str(p) for p in out.iterdir() if p.name != "metrics.json")
    volumes = [f for f in files if f.endswith(volume_suffix)]
    assert len(volumes) == n_volume_files
    for f in files:
        pixels = read_output(f)
        assert pixels.size > 0 and np.isfinite(pixels.astype(np.float64)).all()
    for f in volumes:
        assert N in read_output(f).shape


CT_FORMATS = [("dicom", ".dcm", 1, 1), ("dicom-series", ".dcm", 2, 2), ("nifti", ".nii.gz", 1, 2),
              ("npy", ".npy", 1, 2), ("png", ".tiff", 1, 1), ("tiff", ".tiff", 1, 2)]


@pytest.mark.parametrize("kind, suffix, n_files, slices", CT_FORMATS, ids=[f[0] for f in CT_FORMATS])
def test_ct_score_every_format(tmp_path, tiny_priors, kind, suffix, n_files, slices):
    source = write_ct(kind, tmp_path)
    out = tmp_path / "out"
    report = score_run("ct", source, out, tiny_priors["ct"], "--projections", "8")
    check_report(report, "tiny-ct-32", "ct-sparse-view", slices)
    check_files(report, out, suffix, n_files)
    again = read_volume(next(f for f in report["files"] if f.endswith(suffix)), modality="ct")
    assert again.data.shape == (slices if n_files == 1 else 1, N, N)
    if kind == "dicom-series":
        assert {pydicom.dcmread(f).SeriesInstanceUID for f in report["files"] if f.endswith(".dcm")} != \
            {pydicom.dcmread(p).SeriesInstanceUID for p in (tmp_path / "series").iterdir()}


MRI_FORMATS = [("nifti", ".nii.gz", 2), ("dicom", ".dcm", 1), ("fastmri", ".h5", 2), ("npy", ".npy", 2)]


@pytest.mark.parametrize("kind, suffix, slices", MRI_FORMATS, ids=[f[0] for f in MRI_FORMATS])
def test_mri_score_every_format(tmp_path, tiny_priors, kind, suffix, slices):
    source = write_mri(kind, tmp_path)
    out = tmp_path / "out"
    report = score_run("mri", source, out, tiny_priors["mri"], "--accel", "4")
    check_report(report, "tiny-mri-32", "mri", slices, channels=2 if kind == "fastmri" else 1)
    check_files(report, out, suffix, 1)
    result = read_output(next(f for f in report["files"] if f.endswith(suffix)))
    assert result.size == slices * N * N


@pytest.mark.parametrize("verb, options", [("ct", ("--projections", "8")), ("mri", ("--accel", "4"))])
def test_two_samples_write_a_std_map(tmp_path, tiny_priors, verb, options):
    source = (write_ct if verb == "ct" else write_mri)("npy", tmp_path)
    out = tmp_path / "out"
    report = score_run(verb, source, out, tiny_priors[verb], "--samples", "2", *options)
    assert report["nfe_per_slice"] == 2 * PC_NFE
    stem = "ct" if verb == "ct" else "brain"
    std = np.load(out / f"{stem}_score-pc_std.npy")  # real units: HU for CT, magnitude for MR
    assert str(out / f"{stem}_score-pc_std.npy") in report["files"]
    assert std.shape == (2, N, N) and (std >= -1e-3).all() and std.max() > 0


def test_same_seed_same_output(tmp_path, tiny_priors):
    source = write_ct("npy", tmp_path)
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        score_run("ct", source, tmp_path / name, tiny_priors["ct"], "--projections", "8", "--seed", seed)
        runs[name] = np.load(tmp_path / name / "ct_score-pc.npy")
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])


@pytest.mark.parametrize("verb, prior, size, message", [
    ("ct", "mri", N, "trained on mri"),
    ("mri", "ct", N, "trained on ct"),
])
def test_wrong_prior_is_one_line_exit_2(tmp_path, capsys, tiny_priors, verb, prior, size, message):
    source = tmp_path / "image.npy"
    np.save(source, np.linspace(-1000, 1000, size * size, dtype=np.float32).reshape(size, size))
    out = tmp_path / "out"
    argv = [verb, "--method", "score", "--prior", tiny_priors[prior], "--steps", STEPS, "--device", "cpu",
            "--quiet", str(source), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recon: error:") and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("verb, side, task_flags", [("ct", 48, ["--projections", "8"]), ("mri", 16, ["--accel", "2"])])
def test_a_slice_keeps_its_own_grid(tmp_path, tiny_priors, verb, side, task_flags):
    """Without --resample a 48² or a 16² slice keeps its grid: the prior samples on its 32² grid through A R (R
    bilinear onto the finer grid, the area average onto the coarser), the refinement runs on the slice's grid,
    and the output, like the measurement, is side²."""
    source = tmp_path / "image.npy"
    np.save(source, np.pad(np.full((side // 2, side // 2), 600.0, np.float32), side // 4))  # HU for CT
    out = tmp_path / "out"
    report = score_run(verb, str(source), out, tiny_priors[verb], *task_flags, "--sampler", "dds",
                       "--refine-tv", "1e-4")
    image = np.load(next(out.glob("*.npy")))
    assert image.shape[-2:] == (side, side) and np.isfinite(image).all()
    params = report["parameters"]
    assert (params["prior_grid"], params["output_grid"]) == (32, side)
    assert params["final_projection"] is False and params["refine_mu"]


def test_a_non_square_slice_is_padded_and_cut_back(tmp_path, capsys, tiny_priors):
    """By default a 24x32 slice is padded with air to 32² for the reconstruction and the output is 24x32 again;
    --square refuse refuses it in one line."""
    source = tmp_path / "wide.npy"
    np.save(source, np.pad(np.full((24, 24), 200.0, np.float32), ((0, 0), (4, 4)), constant_values=-1000.0))
    out = tmp_path / "out"
    score_run("ct", str(source), out, tiny_priors["ct"], "--projections", "8")
    assert np.load(out / "wide_score-pc.npy").shape[-2:] == (24, 32)
    refused = tmp_path / "refused"
    assert main(["ct", "--prior", tiny_priors["ct"], "--square", "refuse", "--quiet", str(source),
                 "-o", str(refused)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not square" in err[-1] and not refused.exists()


def test_without_sampler_the_default_sampler_runs(tmp_path, tiny_priors):
    from recon.samplers import DEFAULT_SAMPLER

    source = write_ct("npy", tmp_path)
    out = tmp_path / "out"
    assert main(["ct", "--prior", tiny_priors["ct"], "--steps", STEPS, "--projections", "8", "--device", "cpu",
                 "--quiet", str(source), "-o", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == f"score-{DEFAULT_SAMPLER}" and report["parameters"]["sampler"] == DEFAULT_SAMPLER
    assert (out / f"ct_score-{DEFAULT_SAMPLER}.npy").is_file()


def test_fast_sampler_options_reach_the_sampler(tmp_path, tiny_priors, capsys):
    source = write_ct("npy", tmp_path)
    out = tmp_path / "out"
    assert main(["ct", "--prior", tiny_priors["ct"], "--sampler", "dds", "--steps", STEPS, "--eta", "0.5",
                 "--start-sigma", "0.5", "--start-from", "fista-tv", "--cg-steps", "3", "--gamma", "0.1",
                 "--projections", "8", "--device", "cpu", "--quiet", str(source), "-o", str(out)]) == 0
    parameters = json.loads((out / "metrics.json").read_text())["parameters"]
    assert (parameters["eta"], parameters["start_sigma"], parameters["start_from"], parameters["cg_steps"],
            parameters["gamma"]) == (0.5, 0.5, "fista-tv", 3, 0.1)
    assert parameters["nfe"] == int(STEPS)
    for bad, message in ((["--sampler", "pc", "--eta", "0.5"], "pc does not use eta"),
                         (["--eta", "2"], "--eta: must be in [0, 1], got 2.0"),
                         (["--lam", "1.5"], "--lam: must be in [0, 1], got 1.5"),
                         (["--start-from", "nmar", "--start-sigma", "0.5"], "--start-from nmar: li and nmar")):
        assert main(["ct", "--prior", tiny_priors["ct"], *bad, "--steps", STEPS, "--projections", "8", "--quiet",
                     str(source), "-o", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("verb, sampler", [("ct", "pc"), ("mri", "dds")])
def test_a_slice_does_not_depend_on_the_batch_it_shares(tiny_priors, tmp_path, verb, sampler):
    """Same seed, same volume: --batch-size 1 and --batch-size 3 give the same slices (noisy data, K = 2)."""
    path = tmp_path / "volume.npy"
    stack = np.stack([phantom(s) for s in range(3)])
    np.save(path, stack * 4000 - 1000 if verb == "ct" else stack * 1000)
    outputs = []
    for batch in ("1", "3"):
        out = tmp_path / f"b{batch}"
        assert main([verb, "--prior", tiny_priors[verb], "--sampler", sampler, "--steps", STEPS, "--samples", "2",
                     "--noise", "0.01", "--batch-size", batch, "--quiet", str(path), "-o", str(out)]) == 0
        outputs.append(np.load(next(out.glob(f"volume_score-{sampler}.npy"))))
    # float32 round-off of batched matrix products only: far below 1 HU (CT) or 1e-3 of the MR scale
    tolerance = 1.0 if verb == "ct" else 1e-3 * float(np.abs(outputs[0]).max())
    assert np.abs(outputs[0] - outputs[1]).max() < tolerance
