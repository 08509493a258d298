"""Unconditional samples of the bundled priors beside real training slices (the README's grid).

Usage:
    python benchmarks/prior_samples.py [--ct data/ct128.h5] [--mri data/mri128.h5] [--n 8] [--steps 500]
        [-o docs/images/prior_samples.png]

Top row of each modality: the first ``--n`` training slices of the dataset;
bottom row: ``--n`` samples of the bundled prior (PC sampler, ``--steps``
noise levels, one corrector step, snr ``priors.discretisation.DEFAULT_SNR``
(0.16), Tweedie-denoised), CT shown in a soft-tissue window.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import priors  # noqa: E402
from recon.bench import load_split  # noqa: E402
from recon.io.atomic import atomic_path  # noqa: E402
from recon.io.preview import to_display  # noqa: E402
from recon.samplers import sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct", type=Path, default=Path("/work/data/ct128.h5"))
    parser.add_argument("--mri", type=Path, default=Path("/work/data/mri128.h5"))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/prior_samples.png"))
    args = parser.parse_args()

    rows = []
    for modality, data in (("ct", args.ct), ("mri", args.mri)):
        prior = priors.load(f"{modality}-128")
        started = time.perf_counter()
        drawn = sample(prior, args.n, "pc", steps=args.steps, seed=args.seed, progress=True)
        print(f"{prior.meta['id']}: {args.n} samples, {2 * args.steps + 1} NFE each, "
              f"{time.perf_counter() - started:.0f} s")
        rows.append((f"{modality}: training slices", load_split(data, "train", args.n), modality))
        rows.append((f"{prior.meta['id']} samples", drawn, modality))

    fig, axes = plt.subplots(len(rows), args.n, figsize=(1.6 * args.n, 1.7 * len(rows)))
    for r, (label, images, modality) in enumerate(rows):
        for c in range(args.n):
            ax = axes[r, c]
            image = images[c, 0].clamp(0, 1).numpy()
            ax.imshow(to_display(image, "ct", "soft-tissue") if modality == "ct" else image,
                      cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(label, color="white", fontsize=8)
    fig.subplots_adjust(wspace=0.03, hspace=0.05)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", facecolor="black")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
