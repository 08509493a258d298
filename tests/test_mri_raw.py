"""Raw fastMRI k-space in: the coil transform, the k-space preparation, ESPIRiT maps, the file's own mask,
the refusals and `recon mri` end to end. Every input is built here with numpy and h5py."""
import json

import h5py
import numpy as np
import pytest
import torch

from operators.coils import CoilFourier
from recon.cli import main
from recon.tasks import UndersampledMRI
from recon.tasks import kspace as ks

RNG = np.random.default_rng(7)


def fft2c(x: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)


def phantom(n: int) -> np.ndarray:
    """An ellipse with two brighter discs and a dark one, peak 1, (n, n)."""
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) / n
    image = np.where((x / 0.38) ** 2 + (y / 0.3) ** 2 < 1, 0.5, 0.0)
    for cx, cy, r, v in ((-0.15, 0.0, 0.08, 1.0), (0.12, 0.08, 0.06, 0.8), (0.1, -0.12, 0.05, 0.1)):
        image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = v
    return image


def phase(n: int, seed: int) -> np.ndarray:
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) / n
    a, b, c = np.random.default_rng(seed).uniform(-2, 2, 3)
    return a * x + b * y + c * x * y


def coil_maps(n: int, coils: int) -> np.ndarray:
    """Smooth sensitivities peaking on a circle around the field of view, sum_c |S_c|^2 = 1, (C, n, n)."""
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) / n
    maps = []
    for angle in 2 * np.pi * np.arange(coils) / coils:
        distance = (x - 0.5 * np.cos(angle)) ** 2 + (y - 0.5 * np.sin(angle)) ** 2
        maps.append(np.exp(-distance / 0.3) * np.exp(1j * (angle + x - y)))
    maps = np.array(maps)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(0))


def complex_slices(n: int, slices: int = 2) -> np.ndarray:
    """(S, n, n) complex images: the phantom (flipped for odd slices) times a smooth phase, peak 1000."""
    return np.stack([1000 * (phantom(n) if s % 2 == 0 else phantom(n)[::-1]) * np.exp(1j * phase(n, s))
                     for s in range(slices)])


def oversampled(images: np.ndarray) -> np.ndarray:
    """(..., n, n) -> (..., 2n, n) k-space with fastMRI's 2x oversampled readout (image rows zero-padded)."""
    n = images.shape[-1]
    padded = np.zeros((*images.shape[:-2], 2 * n, n), dtype=complex)
    padded[..., n // 2:n // 2 + n, :] = images
    return fft2c(padded).astype(np.complex64)


def write(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle[key] = value
        handle.attrs["acquisition"] = "CORPD_FBK"
    return path


def single_coil_file(path, n: int = 32, crop: int = 24):
    """Single-coil (2, 2n, n) k-space with its reference, the centre crop x crop of the magnitude."""
    images = complex_slices(n)
    low = n // 2 - crop // 2
    reference = np.abs(images)[:, low:low + crop, low:low + crop].astype(np.float32)
    return write(path, kspace=oversampled(images), reconstruction_esc=reference), reference


def multi_coil_file(path, n: int = 64, coils: int = 8, mask=None):
    """(2, C, 2n, n) k-space; with ``mask`` a challenge file (undersampled, the mask, no reference)."""
    images = complex_slices(n)
    kspace = oversampled(images[:, None] * coil_maps(n, coils))
    if mask is not None:
        return write(path, kspace=kspace * mask, mask=mask.astype(np.float32)), np.abs(images)
    return write(path, kspace=kspace, reconstruction_rss=np.abs(images).astype(np.float32)), np.abs(images)


def run(argv, capsys):
    """`recon` with ``argv``; returns (exit status, stderr lines)."""
    status = main(argv)
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.conj() * b).real.sum()) if a.is_complex() else float((a * b).sum())


@pytest.mark.parametrize("parts, with_phase", [(False, True), (True, True), (True, False)],
                         ids=["magnitude", "demodulated", "parts"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_coil_transform_is_adjoint_with_a_left_inverse(parts, with_phase, dtype):
    """<T x, k> = <x, T^H k> (real inner products: T is real-linear), T^-1 T x = x where the maps are non-zero.

    Tolerance: exact up to round-off; float64 1e-12 relative; float32 with eps32 * log2(H W) * 20 (an FFT's
    relative error grows as eps log n, the inner products sum H W C terms pairwise), 2.4e-5 here."""
    n, coils = 32, 4
    maps = torch.from_numpy(coil_maps(n, coils)).unsqueeze(0)
    maps[..., :3, :] = 0  # a strip outside every map's support (as ESPIRiT's crop leaves)
    transform = CoilFourier(maps.to(torch.complex128 if dtype == torch.float64 else torch.complex64),
                            torch.from_numpy(phase(n, 1)).view(1, 1, n, n).to(dtype) if with_phase else None, parts)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2 if parts else 1, n, n, generator=generator, dtype=dtype)
    k = torch.complex(*torch.randn(2, 3, coils, n, n, generator=generator, dtype=dtype))
    forward, back = transform.forward(x), transform.adjoint(k)
    assert forward.shape == (3, coils, n, n) and back.shape == x.shape and not back.is_complex()
    tol = 1e-12 if dtype == torch.float64 else 20 * torch.finfo(dtype).eps * np.log2(n * n)
    scale = float(forward.abs().norm() * k.abs().norm())
    assert abs(inner(forward, k) - inner(x, back)) <= tol * scale
    support = (maps.abs().sum(1, keepdim=True) > 0).expand_as(x)
    recovered = transform.inverse(forward)
    assert torch.allclose(recovered[support], x[support], atol=100 * tol) and (recovered[~support] == 0).all()


def test_square_readout_cuts_the_oversampled_field_of_view():
    """The k-space of the centre n rows, exactly (each column on its own: unmeasured columns stay zero)."""
    images = complex_slices(16, 1)
    mask = np.zeros(16, dtype=bool)
    mask[::3] = True
    squared = ks.square_readout(oversampled(images) * mask)
    assert squared.shape == (1, 16, 16) and (squared[..., ~mask] == 0).all()
    assert np.allclose(ks.ifft2c(squared), ks.ifft2c(fft2c(images) * mask), atol=1e-3)  # peak 1000, float32
    padded = ks.square_readout(fft2c(images[..., 4:12, :]))  # fewer rows than columns: zero-padded rows
    assert np.allclose(ks.ifft2c(padded)[..., 4:12, :], images[..., 4:12, :], atol=1e-9)


def test_resized_kspace_keeps_the_field_of_view_and_intensities():
    image = phantom(32)
    small = ks.ifft2c(ks.resize_kspace(fft2c(image), 16)).real
    assert small.shape == (16, 16) and abs(small.mean() - image.mean()) < 1e-9


def test_espirit_maps_reproduce_the_synthetic_coil_combination():
    """On the object: the estimated maps span the true ones (|<S_hat, S>| = 1 per pixel, both of unit norm)
    and the SENSE-combined image has the true magnitude (ESPIRiT fixes each pixel's phase only relative to
    the first coil). Tolerance 1e-3: float32 k-space, sigpy's 100 power iterations and its 0.02 singular
    value threshold; measured 1e-4 on 128² brain slices with 16 or more centre columns."""
    n, coils = 64, 8
    image = complex_slices(n, 1)[0]
    truth = coil_maps(n, coils)
    kspace = fft2c(truth * image).astype(np.complex64)
    maps = ks.espirit_maps(kspace, centre=24)
    on_object = np.abs(image) > 0.1 * np.abs(image).max()
    assert np.abs((np.conj(maps) * truth).sum(0))[on_object].min() > 1 - 1e-3
    combined = np.abs((np.conj(maps) * ks.ifft2c(kspace)).sum(0))
    error = np.linalg.norm((combined - np.abs(image))[on_object]) / np.linalg.norm(np.abs(image)[on_object])
    assert error < 1e-3


def test_fully_sampled_single_coil_file_reproduces_its_reference(tmp_path, capsys):
    """--accel 1, zero-filled, the image's own parts: the written crop is the reference itself, in its units."""
    path, reference = single_coil_file(tmp_path / "file1000.h5")
    with h5py.File(path, "a") as handle:  # 2x readout oversampling: 128 mm over 64 rows, 32 mm over 32 columns
        handle["ismrmrd_header"] = ('<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding><encodedSpace>'
                                    '<matrixSize><x>64</x><y>32</y></matrixSize><fieldOfView_mm><x>128</x><y>32</y>'
                                    '</fieldOfView_mm></encodedSpace></encoding></ismrmrdHeader>')
    out = tmp_path / "out"
    status, _ = run(["mri", "--accel", "1", "--method", "zero-filled", "--complex-prior", "parts", str(path),
                     "-o", str(out), "--quiet"], capsys)
    assert status == 0
    with h5py.File(out / "file1000_zero-filled.h5") as handle:
        written = handle["reconstruction"][()]
        assert handle.attrs["acquisition"] == "CORPD_FBK"
    assert written.shape == reference.shape == (2, 24, 24)
    assert np.allclose(written, reference, rtol=1e-4, atol=1e-3 * reference.max())
    report = json.loads((out / "metrics.json").read_text())
    assert report["mean"]["fastmri_psnr"] > 80 and report["measurement"].startswith("MRI raw k-space (1 coil), 1x")
    assert report["pixel_spacing"]["scan_mm"] == pytest.approx(1.5)  # the header's encodedSpace: (2 + 1) / 2


@pytest.mark.parametrize("method", ["zero-filled", "cs-tv"])
def test_single_coil_4x_writes_the_reference_crop(tmp_path, capsys, method):
    path, reference = single_coil_file(tmp_path / "single.h5")
    out = tmp_path / method
    assert run(["mri", "--accel", "4", "--method", method, str(path), "-o", str(out), "--quiet"], capsys)[0] == 0
    with h5py.File(out / f"single_{method}.h5") as handle:
        assert handle["reconstruction"].shape == reference.shape and handle["reconstruction"].dtype == np.float32
    report = json.loads((out / "metrics.json").read_text())
    assert {"fastmri_psnr", "fastmri_ssim", "zero-filled_fastmri_psnr"} <= set(report["mean"])
    assert "24x24 crop" in report["metrics_note"] and (out / f"single_{method}.png").stat().st_size > 1000
    if method == "cs-tv":
        assert report["mean"]["fastmri_psnr"] > report["mean"]["zero-filled_fastmri_psnr"] + 3


def test_multi_coil_file_is_reconstructed_from_its_coils(tmp_path, capsys):
    """8 coils, ESPIRiT maps: the fully sampled SENSE combination is the RSS reference; CS-TV at 4x beats it."""
    path, magnitude = multi_coil_file(tmp_path / "multi.h5")
    out = tmp_path / "full"
    assert run(["mri", "--accel", "1", "--method", "zero-filled", "--complex-prior", "parts", str(path),
                "-o", str(out), "--quiet"], capsys)[0] == 0
    with h5py.File(out / "multi_zero-filled.h5") as handle:
        written = handle["reconstruction"][()]
    assert written.shape == (2, 64, 64)
    assert np.linalg.norm(written - magnitude) / np.linalg.norm(magnitude) < 1e-3  # as ESPIRiT's test
    out = tmp_path / "4x"
    assert run(["mri", "--accel", "4", "--center-fraction", "0.25", "--method", "cs-tv", str(path), "-o", str(out),
                "--quiet"], capsys)[0] == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["measurement"].startswith("MRI raw k-space (8 coils, ESPIRiT maps), 4x")
    assert report["mean"]["fastmri_psnr"] > report["mean"]["zero-filled_fastmri_psnr"] + 5


def challenge_mask(n: int = 64) -> np.ndarray:
    """A random 3x-ish mask with 16 centre columns, not one `--accel` would make."""
    mask = np.random.default_rng(5).random(n) < 0.2
    mask[n // 2 - 8:n // 2 + 8] = True
    return mask


def test_challenge_file_uses_its_own_mask(tmp_path, capsys):
    mask = challenge_mask()
    path, _ = multi_coil_file(tmp_path / "challenge.h5", mask=mask)
    scan = UndersampledMRI(accel_given=False).read(path)
    assert np.array_equal(scan.columns, mask) and scan.reference is None
    problem = scan.problem(0, 2, 64, 0, torch.device("cpu"))
    assert torch.equal(problem.measurement.mask(problem.y).view(-1), torch.from_numpy(mask))
    rate = 64 / mask.sum()
    out = tmp_path / "out"
    status, _ = run(["mri", "--accel", f"{rate * 1.05:.3f}", "--method", "zero-filled", str(path), "-o", str(out),
                     "--quiet"], capsys)  # within the tolerance: the file's mask
    assert status == 0
    report = json.loads((out / "metrics.json").read_text())
    assert "mean" not in report and f"the file's mask ({rate:.2f}x" in report["measurement"]
    assert 0 < report["data_residual"]["method"] < 0.1  # no reference: how well the result fits the data
    with h5py.File(out / "challenge_zero-filled.h5") as handle:
        assert handle["reconstruction"].shape == (2, 64, 64)  # no reference: the grid, at most 320 x 320


def test_short_score_run_writes_the_submission_layout(tmp_path, capsys, tiny_priors):
    path, reference = single_coil_file(tmp_path / "score.h5")
    out = tmp_path / "out"
    status, _ = run(["mri", "--accel", "4", "--prior", tiny_priors["mri"], "--steps", "3", "--device", "cpu",
                     str(path), "-o", str(out), "--quiet"], capsys)
    assert status == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == "score-dds" and report["nfe_per_slice"] == 6  # 3 levels, real and imaginary parts
    assert report["parameters"]["complex_prior"] == "demodulated"
    with h5py.File(out / "score_score-dds.h5") as handle:
        result = handle["reconstruction"][()]
    assert result.shape == reference.shape and np.isfinite(result).all() and (result >= 0).all()


def refusal(tmp_path, capsys, path, *argv):
    out = tmp_path / "out"
    status, lines = run(["mri", *argv, "--method", "zero-filled", str(path), "-o", str(out), "--quiet"], capsys)
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"recon: error: {path}: "), lines
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    real = write(tmp_path / "real.h5", kspace=np.ones((1, 32, 32), dtype=np.float32))
    assert "'kspace' must be complex" in refusal(tmp_path, capsys, real)
    none = write(tmp_path / "none.h5", reconstruction_esc=np.ones((1, 32, 32), dtype=np.float32))
    assert "no 'kspace' dataset" in refusal(tmp_path, capsys, none)
    kspace = oversampled(complex_slices(32, 1))
    short = write(tmp_path / "short.h5", kspace=kspace, mask=np.ones(31, dtype=np.float32))
    assert "'mask' must hold 32 zeros and ones" in refusal(tmp_path, capsys, short)
    mask = challenge_mask()
    challenge, _ = multi_coil_file(tmp_path / "challenge.h5", mask=mask)
    assert "--accel 8 disagrees with the file's mask" in refusal(tmp_path, capsys, challenge, "--accel", "8")
    assert "--volume 0 picks a volume of a 4-D NIfTI" in refusal(tmp_path, capsys, challenge, "--volume", "0")
