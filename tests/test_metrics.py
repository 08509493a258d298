"""PSNR / SSIM conventions: clipping, data range, batching, masks, fastMRI variant."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from recon.metrics import fastmri_psnr, fastmri_ssim, metal_excluded_mask, psnr, ssim


def _image(seed: int = 0, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(size, size))


def test_psnr_of_a_known_error():
    ref = _image()
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0, abs=1e-9)
    assert psnr(ref + 0.01, ref) == pytest.approx(40.0, abs=1e-9)
    assert psnr(ref, ref) == float("inf")


def test_reconstruction_is_clipped_to_unit_range_but_reference_is_not():
    ref = np.zeros((16, 16))
    ref[4:8, 4:8] = 1.0
    x = ref.copy()
    x[4:8, 4:8] = 3.0  # clipped back to 1
    x[0, 0] = -2.0  # clipped back to 0
    assert psnr(x, ref) == float("inf")
    assert ssim(x, ref) == pytest.approx(1.0)
    assert np.isfinite(fastmri_psnr(x, ref))  # the fastMRI variant does not clip


def test_batches_give_per_image_values_and_match_single_images():
    refs = np.stack([_image(0), _image(1)])[:, None]
    xs = refs + np.array([0.1, 0.05])[:, None, None, None]
    batch = psnr(torch.from_numpy(xs), torch.from_numpy(refs))
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    assert batch[0] == pytest.approx(psnr(xs[0, 0], refs[0, 0]))
    assert batch[1] == pytest.approx(26.0206, abs=1e-3)
    s = ssim(xs, refs)
    assert s.shape == (2,) and s[0] == pytest.approx(ssim(xs[0, 0], refs[0, 0]))


def test_ssim_matches_scikit_image():
    ref = _image(2)
    x = np.clip(ref + np.random.default_rng(3).normal(0, 0.05, ref.shape), 0, 1)
    assert ssim(x, ref) == pytest.approx(structural_similarity(x, ref, data_range=1.0))
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(x, ref) < 0.99


def test_mask_excludes_pixels():
    ref = _image(4)
    x = ref.copy()
    metal = np.zeros_like(ref, dtype=bool)
    metal[10:14, 10:14] = True
    x[metal] = 1.0  # errors only on the metal
    keep = metal_excluded_mask(metal)
    assert psnr(x, ref, mask=keep) == float("inf")
    assert np.isfinite(psnr(x, ref))
    x[0, 0] += 0.1  # one error outside the metal
    expected = 10 * np.log10(1.0 / (0.1 ** 2 / keep.sum()))
    assert psnr(x, ref, mask=keep) == pytest.approx(expected, rel=1e-6)
    assert ssim(x, ref, mask=keep) > ssim(x, ref)


def test_metal_excluded_mask_dilates_and_keeps_shape():
    metal = torch.zeros(2, 1, 9, 9, dtype=torch.bool)
    metal[0, 0, 4, 4] = True
    keep = metal_excluded_mask(metal, dilate=1)
    assert keep.shape == (2, 1, 9, 9)
    assert (~keep[0, 0]).sum() == 9 and keep[1].all()


def test_a_rectangular_mask_crops_the_images():
    """A centre crop as the mask: SSIM of the cropped images (their windows see nothing outside), PSNR alike."""
    rng = np.random.default_rng(3)
    ref, x = rng.random((32, 32)), rng.random((32, 32))
    keep = np.zeros((32, 32), dtype=bool)
    keep[4:28, 6:26] = True
    outside = x.copy()
    outside[~keep] = 0.0  # changing what lies outside the crop changes nothing
    for image in (x, outside):
        assert ssim(image, ref, mask=keep) == pytest.approx(ssim(x[4:28, 6:26], ref[4:28, 6:26]))
        assert psnr(image, ref, mask=keep) == pytest.approx(psnr(x[4:28, 6:26], ref[4:28, 6:26]))


def test_fastmri_uses_reference_maximum():
    ref = _image(5)
    x = ref + 0.02
    assert fastmri_psnr(2 * x, 2 * ref) == pytest.approx(fastmri_psnr(x, ref))
    assert fastmri_psnr(x, ref) == pytest.approx(20 * np.log10(ref.max() / 0.02))
    assert fastmri_ssim(ref, ref) == pytest.approx(1.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)), mask=np.zeros((4, 4), dtype=bool))


def test_a_runs_metrics_scored_batch_by_batch_equal_the_whole_volumes():
    """Scores kept per batch (first slice, values), in any order, come out per slice in slice order."""
    import recon.outputs

    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(11, 1, 16, 16, generator=generator)
    output = reference + 0.05 * torch.randn(11, 1, 16, 16, generator=generator)
    starts = [8, 0, 4]  # batches of 4, 4 and 3, added out of order
    parts = {"method": {"psnr": [], "ssim": []}, "fbp": {"psnr": [], "ssim": []}}
    for start in starts:
        part = slice(start, start + 4)
        for name, images in (("method", output), ("fbp", reference.flip(-1))):
            parts[name]["psnr"].append((start, list(np.atleast_1d(psnr(images[part], reference[part])))))
            parts[name]["ssim"].append((start, list(np.atleast_1d(ssim(images[part], reference[part])))))
    scores = recon.outputs._metrics(parts, SimpleNamespace(baseline="fbp"))
    assert np.allclose(scores["per_slice"]["method"]["psnr"], psnr(output, reference))
    assert np.allclose(scores["per_slice"]["fbp"]["ssim"], ssim(reference.flip(-1), reference))
    assert scores["mean"]["fbp_psnr"] == pytest.approx(np.mean(psnr(reference.flip(-1), reference)))

