"""Fast samplers: Tweedie's denoised estimate, a data step on it, DDIM re-noising.

One network evaluation per noise level. At level sigma_i (largest first)::

    x0  = x + sigma_i^2 s(x, sigma_i)                 Tweedie's estimate of the clean image
    x0' = data step on x0                             (below)
    e   = (x - x0) / sigma_i                          the noise the network saw
    x   = x0' + sigma_next (sqrt(1 - eta^2) e + eta z)   re-noise (eta = 0: deterministic DDIM,
                                                      eta = 1: fresh noise, the default)

and after the last level (sigma_next = 0) x = x0'. NFE = N. No gradient
flows through the network.

Fresh noise matters with the shipped priors: ``recon tune`` on the validation
splits picked eta 1.0 (MRI) and 0.82 (CT) at 50 levels, and eta near 0 lost
about 0.3 validation SSIM on MRI and 0.12 on CT (benchmarks/RESULTS.md).

Warm start (``start_sigma``, after Chung, Sim & Ye's "come closer, diffuse
faster", CVPR 2022): instead of pure noise at sigma_max, the run starts from
a first reconstruction plus noise of std ``start_sigma`` and takes its N
levels from there down to sigma_min, so no evaluation is spent at noise levels
where Tweedie's estimate is little more than the mean image. The first
reconstruction (``start_from``) is a baseline of :data:`recon.methods.BASELINES`:
``cgls`` (WARM_START_CG_STEPS least-squares iterations from 0; MRI: the
zero-filled image) by default; the closer it is, the lower ``start_sigma``
can go and the finer the N levels below it (MRI: ``cs-tv``, see
benchmarks/RESULTS.md).

Data steps:

* ``dds`` (decomposed diffusion sampling, after Chung, Lee & Ye, ICLR 2024):
  ``cg_steps`` conjugate-gradient iterations on
  (A^T A + gamma I) x = A^T y + gamma x0 started at x0; the few Krylov steps
  keep x near the denoised image while fitting the data (gamma = 0 for
  noiseless data, > 0 to stop at a noise-aware balance).
* ``ddim``: the paper's proximal step (Theorem 8.1) applied to x0 against the
  measurement y itself, x0' = T^-1[lam Lambda P^-1 y + (1 - lam) Lambda T x0 + (I - Lambda) T x0].
"""
from __future__ import annotations

import torch

from operators.solvers import conjugate_gradient
from recon.errors import InputError
from recon.samplers import core


WARM_START_CG_STEPS = 5
"""CGLS iterations of the warm start's least-squares image (:func:`recon.baselines.cgls`; MRI:
the minimum-norm least-squares image after two, as A^H A has eigenvalues 0, 1/2 and 1 on real images;
sparse-view CT: 5 and 30 gave the same dds result to 0.01 dB
on two test slices)."""


def warm_start_image(name: str, measurement, y: torch.Tensor) -> torch.Tensor:
    """The warm start's first reconstruction (B, 1, H, W) by baseline ``name`` (``cgls``: WARM_START_CG_STEPS).

    A baseline that does not fit the measurement (``li`` on sparse views, ``fbp`` on MRI) raises an
    InputError naming ``--start-from``.
    """
    from recon.methods import BASELINES

    try:
        if name == "cgls":
            return BASELINES[name](measurement, y, WARM_START_CG_STEPS)
        return BASELINES[name](measurement, y)
    except InputError as error:
        raise InputError(f"--start-from {name}: {error}") from None


def cg_data_step(ctx: core.Context, x0: torch.Tensor) -> torch.Tensor:
    """x0 moved by ``cg_steps`` CG iterations towards the data (the ``dds`` step)."""
    m, y, gamma = ctx.consistency.measurement, ctx.consistency.y, ctx.options.gamma

    def normal(v: torch.Tensor) -> torch.Tensor:
        return m.A_adjoint(m.A(v)) + gamma * v

    return conjugate_gradient(normal, m.A_adjoint(y) + gamma * x0, x0, ctx.options.cg_steps)


def proximal_data_step(ctx: core.Context, x0: torch.Tensor) -> torch.Tensor:
    """The proximal step on x0 against y itself (the ``ddim`` step)."""
    return ctx.data_step(x0, 0.0)


def _run(x: torch.Tensor, ctx: core.Context, data_step) -> torch.Tensor:
    for i, sigma, sigma_next in ctx.levels():
        x0 = x + sigma ** 2 * ctx.score(x, sigma)
        fitted = x0 if ctx.consistency is None else data_step(ctx, x0)
        if sigma_next > 0:
            noise = (x - x0) / sigma
            eta = ctx.options.eta
            if eta > 0:
                noise = (1 - eta ** 2) ** 0.5 * noise + eta * ctx.noise(x)
            x = fitted + sigma_next * noise
        else:
            x = fitted
        ctx.level_done(i, x)
    return x


def run_dds(x: torch.Tensor, ctx: core.Context) -> torch.Tensor:
    """Decomposed sampling from x ~ N(0, sigma_max^2 I) (B, 1, H, W) to the clean estimate."""
    return _run(x, ctx, cg_data_step)


def run_ddim(x: torch.Tensor, ctx: core.Context) -> torch.Tensor:
    """DDIM with the proximal step from x ~ N(0, sigma_max^2 I) (B, 1, H, W) to the clean estimate."""
    return _run(x, ctx, proximal_data_step)
