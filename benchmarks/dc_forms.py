"""Projection vs residual form of the proximal data-consistency step with the FBP inverse.

With T the Radon transform and T^-1 filtered back-projection, the two forms of
Theorem 8.1's step differ: the projection form back-projects the whole mixed
sinogram, x' = FBP(lam Lambda P^-1 y_t + (1 - lam) Lambda R x + (I - Lambda) R x), so the
image passes through FBP(R x) != x at every step; the residual form
x' = x + lam FBP(P^-1(y_t - A x)) back-projects only the data mismatch.

This script reconstructs small sparse-view CT images with the PC sampler
and an analytic Gaussian prior (separable squared-exponential covariance,
exact scores) using each form, and prints a markdown table: PSNR/SSIM
against the ground truth (data range 1, clipped to [0, 1]) after the final
projection and before it, the distance to the prior's exact posterior mean,
and the data residual. Images: the Shepp-Logan phantom, the real AAPM slice
and pydicom's CT_small.dcm (all resized), plus /work/data/ct128.h5
``/test/images`` when present.

    .venv/bin/python benchmarks/dc_forms.py --size 64 --views 8 16 --lams 1.0
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

import operators
from priors.analytic import GaussianPrior, squared_exponential_basis
from priors.discretisation import DEFAULT_SNR
from recon.data.figures import real_ct_slice
from recon.samplers import core, pc
from recon.samplers.consistency import FORMS, DataConsistency, project
from recon.samplers.options import PCOptions
from recon.units import hu_to_model

CT128 = Path("/work/data/ct128.h5")


def test_images(size: int, n_h5: int = 2) -> dict[str, np.ndarray]:
    """Name -> (size, size) image in model units x = (HU + 1000) / 4000."""
    import pydicom
    from pydicom.data import get_testdata_file
    from skimage.data import shepp_logan_phantom

    images = {"shepp-logan": 0.4 * shepp_logan_phantom()}
    aapm = real_ct_slice(size=512)  # approximate HU (recon.data.figures.AAPM_RESCALE); None when absent
    if aapm is not None:
        images["aapm-L506"] = hu_to_model(aapm)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    images["CT_small"] = hu_to_model(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    if CT128.exists():
        import h5py

        with h5py.File(CT128) as f:
            for i in range(n_h5):
                images[f"ct128-test-{i}"] = np.asarray(f["/test/images"][i, 0])  # (N, 1, 128, 128)
    return {name: np.clip(resize(np.asarray(im, dtype=np.float64), (size, size), anti_aliasing=True), 0, 1)
            .astype(np.float32) for name, im in images.items()}


def gaussian_prior(size: int, length: float, std: float, nugget: float, mean: float) -> GaussianPrior:
    vecs, vals = squared_exponential_basis(size, length, std, nugget)
    return GaussianPrior(torch.full((size * size,), mean), vecs, vals, prior_id=f"gaussian-se-{size}")


def metrics(x: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM over the batch, data range 1, output clipped to [0, 1]."""
    psnr, ssim = [], []
    for out, ref in zip(x[:, 0].clamp(0, 1).numpy(), truth[:, 0].numpy()):
        psnr.append(peak_signal_noise_ratio(ref, out, data_range=1.0))
        ssim.append(structural_similarity(ref, out, data_range=1.0))
    return float(np.mean(psnr)), float(np.mean(ssim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--views", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--lams", type=float, nargs="+", default=[1.0])
    parser.add_argument("--steps", type=int, default=100, help="noise levels N (NFE = 2N + 1)")
    parser.add_argument("--samples", type=int, default=2, help="posterior samples averaged per image")
    parser.add_argument("--snr", type=float, default=DEFAULT_SNR)
    parser.add_argument("--length", type=float, default=1.5, help="prior correlation length (pixels)")
    parser.add_argument("--std", type=float, default=0.15, help="prior std of the correlated part")
    parser.add_argument("--nugget", type=float, default=0.03, help="prior std of the white part")
    parser.add_argument("--windows", nargs="+", default=["ram-lak", "hann"], help="FBP windows of T^-1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images = test_images(args.size)
    truth = torch.from_numpy(np.stack(list(images.values())))[:, None]
    prior = gaussian_prior(args.size, args.length, args.std, args.nugget, float(truth.mean()))
    print(f"images ({args.size}x{args.size}): {', '.join(images)}")
    for window in args.windows:
        radon = operators.Radon(args.size, window=window)
        error = (radon.inverse(radon.forward(truth)) - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)
        print(f"T^-1 = FBP ({window}): one-shot FBP(R x) relative error "
              + ", ".join(f"{n} {e:.3f}" for n, e in zip(images, error)) + f"; largest gain of FBP R {gain(radon):.3f}")
    print(f"prior: separable squared-exponential, length {args.length} px, std {args.std}, nugget {args.nugget}, "
          f"mean {float(truth.mean()):.3f}, sigma_max {prior.sde.sigma_max:.2f}; PC with N = {args.steps} "
          f"(NFE {2 * args.steps + 1}), snr {args.snr}, {args.samples} samples averaged, seed {args.seed}; "
          "final projection by CGLS to ||Ax-y||/||y|| < 1e-4\n")
    print("| views | lambda | FBP window | form | PSNR | SSIM | PSNR before final projection | "
          "rel. distance to exact posterior mean | CGLS iterations | wall s |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for n_views in args.views:
        y = operators.sparse_view_ct(args.size, n_views).measure(truth)
        exact = prior.posterior_mean(operators.sparse_view_ct(args.size, n_views), y).float()
        exact_psnr, exact_ssim = metrics(exact, truth)
        for lam in args.lams:
            for window in args.windows:
                m = operators.sparse_view_ct(args.size, n_views, window=window)
                for form in FORMS:
                    start = time.perf_counter()
                    samples = pc_samples(prior, m, y, form, lam, args)
                    fitted = [project(m, s, y) for s in samples]
                    projected = torch.stack([x for x, _ in fitted]).mean(0)
                    iterations = max(info["iterations"] for _, info in fitted)
                    wall = time.perf_counter() - start
                    psnr, ssim = metrics(projected, truth)
                    before, _ = metrics(samples.mean(0), truth)
                    distance = float((projected - exact).norm() / exact.norm())
                    print(f"| {n_views} | {lam:.2f} | {window} | {form} | {psnr:.2f} | {ssim:.3f} | {before:.2f} | "
                          f"{distance:.3f} | {iterations} | {wall:.1f} |", flush=True)
        print(f"| {n_views} | | | exact posterior mean of this prior | {exact_psnr:.2f} | {exact_ssim:.3f} | | 0 | | |",
              flush=True)


def gain(radon: operators.Radon, iterations: int = 100) -> float:
    """Largest gain ||FBP R v|| / ||v|| by power iteration (> 1: the projection form diverges)."""
    v = torch.randn(1, 1, radon.size, radon.size, generator=torch.Generator().manual_seed(0))
    value = 0.0
    for _ in range(iterations):
        w = radon.inverse(radon.forward(v))
        value, v = float(w.norm() / v.norm()), w / w.norm()
    return value


def pc_samples(prior, m, y: torch.Tensor, form: str, lam: float, args) -> torch.Tensor:
    """K PC samples (K, B, 1, H, W) with the given form, before the final projection.

    Built from the sampler's parts rather than :func:`recon.samplers.reconstruct`,
    which refuses the projection form where FBP R is expansive; here that
    case is measured.
    """
    k, like = args.samples, torch.zeros(y.shape[0], 1, args.size, args.size)
    generator = torch.Generator().manual_seed(args.seed)
    sigmas = prior.sde.discrete_sigmas(args.steps)
    ctx = core.Context(core.CountedScore(prior), sigmas, generator, PCOptions(steps=args.steps, snr=args.snr),
                       progress=False, consistency=DataConsistency(m, y.repeat(k, 1, 1, 1), lam, form))
    x = sigmas[0] * torch.randn((k * y.shape[0], *like.shape[1:]), generator=generator)
    x = pc.run(x, ctx)
    x = x + float(sigmas[-1]) ** 2 * ctx.score(x, float(sigmas[-1]))
    return x.reshape(k, *like.shape)


if __name__ == "__main__":
    main()
