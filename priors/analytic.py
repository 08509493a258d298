"""Analytic priors with exact VE-perturbed scores: a Gaussian and a Gaussian mixture.

Perturbing x ~ N(mu, C) with N(0, sigma^2 I) gives N(mu, C + sigma^2 I), whose
score is -(C + sigma^2 I)^-1 (x - mu); a mixture stays a mixture with every
component covariance grown by sigma^2 I. These priors share the
:class:`priors.base.ScorePrior` interface with the learned ones, so the
samplers can be tested against closed forms (posterior means, sample
statistics, mixture weights).

Images are (B, 1, H, W); D = H * W. A set of 2-D points is the image shape
(1, 1, 2).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from priors.sde import VESDE, largest_pairwise_distance


def _image_shape(mean: torch.Tensor, shape: tuple[int, int] | None) -> tuple[int, int]:
    if shape is not None:
        return int(shape[0]), int(shape[1])
    if mean.dim() >= 2:
        return int(mean.shape[-2]), int(mean.shape[-1])
    side = math.isqrt(mean.numel())
    if side * side != mean.numel():
        raise ValueError(f"a flat mean of {mean.numel()} values is not square; pass shape=(H, W)")
    return side, side


def _meta(kind: str, shape: tuple[int, int], defaults: dict | None, prior_id: str | None) -> dict[str, Any]:
    height, width = shape
    return {"id": prior_id or f"{kind}-{height}x{width}", "modality": "synthetic",
            "size": height if height == width else [height, width], "intensity": "synthetic",
            "defaults": dict(defaults or {})}


def _sigma_max_from_samples(sample_fn, n: int = 1000) -> float:
    """Technique 1 (largest pairwise distance) on ``n`` samples drawn with a fixed seed."""
    return largest_pairwise_distance(sample_fn(n, torch.Generator().manual_seed(0)),
                                     generator=torch.Generator().manual_seed(1))


def squared_exponential_basis(size: int, length_scale: float, std: float, nugget: float = 0.0
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenbasis of a separable squared-exponential covariance on a size x size grid.

    C = std^2 (K ⊗ K) + nugget^2 I with K_ij = exp(-(i - j)^2 / (2 l^2)); its
    eigenvectors are Kronecker products of the 1-D ones, so no D x D
    eigendecomposition is needed.

    Returns:
        eigvecs (D, D) orthonormal columns and eigvals (D,), float64, D = size^2,
        pixel order row-major as in ``image.reshape(-1)``.
    """
    grid = torch.arange(size, dtype=torch.float64)
    kernel = torch.exp(-(grid[:, None] - grid[None, :]) ** 2 / (2 * length_scale ** 2))
    values, vectors = torch.linalg.eigh(kernel)
    values = values.clamp_min(0.0)
    eigvecs = torch.kron(vectors, vectors)
    eigvals = std ** 2 * torch.outer(values, values).reshape(-1) + nugget ** 2
    return eigvecs, eigvals


class GaussianPrior:
    """x ~ N(mu, C) with C = U diag(eigvals) U^T on the span of U (zero variance off it).

    Args:
        mean: (D,), (H, W) or (1, H, W) mean image mu.
        eigvecs: (D, K) orthonormal columns U, or None for the pixel basis (K = D).
        eigvals: (K,) variances along the columns of U (>= 0).
        sigma_max: the VE SDE's largest noise level; default: the largest
            pairwise distance among 1000 prior samples (seed 0).
        shape: (H, W) when ``mean`` is flat and not square.
        defaults: per-task sampler defaults for ``meta["defaults"]``.
        prior_id: ``meta["id"]``.
    """

    def __init__(self, mean: torch.Tensor, eigvecs: torch.Tensor | None, eigvals: torch.Tensor,
                 sigma_max: float | None = None, *, shape: tuple[int, int] | None = None,
                 defaults: dict | None = None, prior_id: str | None = None):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        self.shape = _image_shape(mean, shape)
        self.dim = self.shape[0] * self.shape[1]
        self.mean = mean.reshape(self.dim)
        self.eigvals = torch.as_tensor(eigvals, dtype=torch.float64).reshape(-1)
        if (self.eigvals < 0).any():
            raise ValueError("eigvals must be >= 0")
        if eigvecs is None:
            if self.eigvals.numel() != self.dim:
                raise ValueError(f"with the pixel basis eigvals needs {self.dim} values, got {self.eigvals.numel()}")
            self.eigvecs = None
        else:
            self.eigvecs = torch.as_tensor(eigvecs, dtype=torch.float64)
            if self.eigvecs.shape != (self.dim, self.eigvals.numel()):
                raise ValueError(f"eigvecs must be ({self.dim}, {self.eigvals.numel()}), "
                                 f"got {tuple(self.eigvecs.shape)}")
        self._cache: dict[tuple, tuple] = {}
        if sigma_max is None:
            sigma_max = _sigma_max_from_samples(self.sample)
        self.sde = VESDE(float(sigma_max))
        self.meta = _meta("gaussian", self.shape, defaults, prior_id)

    @classmethod
    def from_covariance(cls, mean: torch.Tensor, covariance: torch.Tensor, sigma_max: float | None = None,
                        **kwargs) -> "GaussianPrior":
        """Build from a dense (D, D) covariance (eigendecomposed once)."""
        values, vectors = torch.linalg.eigh(torch.as_tensor(covariance, dtype=torch.float64))
        return cls(mean, vectors, values.clamp_min(0.0), sigma_max, **kwargs)

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple:
        key = (device, dtype)
        if key not in self._cache:
            vecs = None if self.eigvecs is None else self.eigvecs.to(device, dtype)
            self._cache[key] = (self.mean.to(device, dtype), vecs, self.eigvals.to(device, dtype))
        return self._cache[key]

    def covariance(self) -> torch.Tensor:
        """Dense (D, D) covariance, float64."""
        if self.eigvecs is None:
            return torch.diag(self.eigvals)
        return (self.eigvecs * self.eigvals) @ self.eigvecs.T

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n prior samples, (n, 1, H, W) float64 on the CPU."""
        w = torch.randn(n, self.eigvals.numel(), generator=generator, dtype=torch.float64)
        coeffs = w * self.eigvals.sqrt()
        x = self.mean + (coeffs if self.eigvecs is None else coeffs @ self.eigvecs.T)
        return x.reshape(n, 1, *self.shape)

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact score of N(mu, C + sigma^2 I): x (B, 1, H, W), sigma (B,) -> (B, 1, H, W)."""
        mean, vecs, vals = self._tensors(x.device, x.dtype)
        r = x.reshape(x.shape[0], -1) - mean
        var = sigma.to(x.dtype).reshape(-1, 1) ** 2
        if vecs is None:
            return (-r / (vals + var)).reshape(x.shape)
        coeffs = r @ vecs
        inside = (coeffs / (vals + var)) @ vecs.T
        outside = (r - coeffs @ vecs.T) / var
        return (-(inside + outside)).reshape(x.shape)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """log N(x; mu, C + sigma^2 I) per image, (B,); needs sigma > 0 when U is not full rank."""
        mean, vecs, vals = self._tensors(x.device, x.dtype)
        r = x.reshape(x.shape[0], -1) - mean
        var = sigma.to(x.dtype).reshape(-1, 1) ** 2
        if vecs is None:
            quad = (r ** 2 / (vals + var)).sum(1)
            logdet = torch.log(vals + var).sum(1)
        else:
            coeffs = r @ vecs
            quad = (coeffs ** 2 / (vals + var)).sum(1) + ((r ** 2).sum(1) - (coeffs ** 2).sum(1)) / var[:, 0]
            logdet = torch.log(vals + var).sum(1) + (self.dim - vals.numel()) * torch.log(var[:, 0])
        return -0.5 * (quad + logdet + self.dim * math.log(2 * math.pi))

    def posterior(self, measurement, y: torch.Tensor, noise_std: float | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form Gaussian posterior for y = A x + n, n ~ N(0, noise_std^2 I).

        Complex measurements count as real and imaginary parts, each with
        noise std ``noise_std``; with ``noise_std == 0`` the posterior is the
        prior conditioned on A x = y exactly (minimum-norm solution in the
        prior's whitened coordinates).

        Args:
            measurement: an :class:`operators.Measurement` (A must accept (n, 1, H, W) on the CPU).
            y: (B, ...) measurements as returned by ``measurement.measure``.
            noise_std: default ``measurement.noise_std``.
        Returns:
            mean (B, 1, H, W) and per-pixel std (B, 1, H, W), float64 on the CPU.
        """
        noise_std = measurement.noise_std if noise_std is None else noise_std
        vecs = torch.eye(self.dim, dtype=torch.float64) if self.eigvecs is None else self.eigvecs
        factor = vecs * self.eigvals.sqrt()  # x = mu + factor w, w ~ N(0, I)
        b = _real_rows(_apply_columns(measurement, factor, self.shape))  # (M, K)
        resid = _real_rows(y.detach().cpu().to(torch.complex128 if y.is_complex() else torch.float64)
                           .reshape(y.shape[0], -1).T) - _real_rows(_apply_columns(
                               measurement, self.mean[:, None], self.shape))  # (M, B)
        if noise_std > 0:
            gram = b.T @ b + noise_std ** 2 * torch.eye(b.shape[1], dtype=torch.float64)
            w_mean = torch.linalg.solve(gram, b.T @ resid)
            w_cov = noise_std ** 2 * torch.linalg.inv(gram)
        else:
            # A is applied in float32: singular values below ~100 eps_32 of the largest are its round-off
            # (tiny edge weights of the projector), and inverting them would amplify that round-off.
            pinv = torch.linalg.pinv(b, rtol=1e-5)
            w_mean = pinv @ resid
            w_cov = torch.eye(b.shape[1], dtype=torch.float64) - pinv @ b
        mean = (self.mean[:, None] + factor @ w_mean).T.reshape(-1, 1, *self.shape)
        var = ((factor @ w_cov) * factor).sum(1).clamp_min(0.0)
        std = var.sqrt().reshape(1, 1, *self.shape).expand_as(mean)
        return mean, std

    def posterior_mean(self, measurement, y: torch.Tensor, noise_std: float | None = None) -> torch.Tensor:
        """Mean of :meth:`posterior`, (B, 1, H, W) float64."""
        return self.posterior(measurement, y, noise_std)[0]


def _apply_columns(measurement, columns: torch.Tensor, shape: tuple[int, int], chunk: int = 256) -> torch.Tensor:
    """A applied to each column of (D, K) as an image: (M, K) flattened measurements."""
    out = []
    for start in range(0, columns.shape[1], chunk):
        images = columns[:, start:start + chunk].T.reshape(-1, 1, *shape).to(torch.float32)
        a = measurement.A(images)
        out.append(a.to(torch.complex128 if a.is_complex() else torch.float64).reshape(images.shape[0], -1))
    return torch.cat(out).T


def _real_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Stack real and imaginary parts of complex rows; real input passes through."""
    return torch.cat([matrix.real, matrix.imag]) if matrix.is_complex() else matrix


class GaussianMixturePrior:
    """A Gaussian mixture sum_c w_c N(mu_c, C_c).

    Args:
        means: (C, D), (C, H, W) or (C, 1, H, W) component means.
        stds: (C,) isotropic component stds (C_c = std_c^2 I); give this or ``covariances``.
        covariances: (C, D, D) component covariances.
        weights: (C,) mixture weights (normalised here).
        sigma_max: default: largest pairwise distance among 1000 samples (seed 0).
        shape: (H, W) when ``means`` is (C, D); default square, or (1, 2) for D = 2.
        defaults, prior_id: metadata as for :class:`GaussianPrior`.
    """

    def __init__(self, means: torch.Tensor, stds: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                 sigma_max: float | None = None, *, covariances: torch.Tensor | None = None,
                 shape: tuple[int, int] | None = None, defaults: dict | None = None, prior_id: str | None = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        n_comp = means.shape[0]
        if shape is None and means.dim() == 2 and means.shape[1] == 2:
            shape = (1, 2)
        self.shape = _image_shape(means[0], shape)
        self.dim = self.shape[0] * self.shape[1]
        self.means = means.reshape(n_comp, self.dim)
        if (stds is None) == (covariances is None):
            raise ValueError("give exactly one of stds and covariances")
        if covariances is None:
            stds = torch.as_tensor(stds, dtype=torch.float64).reshape(n_comp)
            covariances = stds[:, None, None] ** 2 * torch.eye(self.dim, dtype=torch.float64)
        covariances = torch.as_tensor(covariances, dtype=torch.float64)
        if covariances.shape != (n_comp, self.dim, self.dim):
            raise ValueError(f"covariances must be ({n_comp}, {self.dim}, {self.dim}), got {tuple(covariances.shape)}")
        values, vectors = torch.linalg.eigh(covariances)
        self.eigvals, self.eigvecs = values.clamp_min(0.0), vectors  # (C, D), (C, D, D)
        weights = torch.ones(n_comp) if weights is None else torch.as_tensor(weights)
        self.weights = weights.to(torch.float64).reshape(n_comp) / weights.sum()
        self._cache: dict[tuple, tuple] = {}
        if sigma_max is None:
            sigma_max = _sigma_max_from_samples(self.sample)
        self.sde = VESDE(float(sigma_max))
        self.meta = _meta("gmm", self.shape, defaults, prior_id)

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple:
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = tuple(t.to(device, dtype) for t in
                                     (self.means, self.eigvecs, self.eigvals, self.weights.log()))
        return self._cache[key]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, 1, H, W) float64 on the CPU."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        w = torch.randn(n, self.dim, generator=generator, dtype=torch.float64) * self.eigvals[comp].sqrt()
        x = self.means[comp] + torch.einsum("ndk,nk->nd", self.eigvecs[comp], w)
        return x.reshape(n, 1, *self.shape)

    def responsibilities(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities under the perturbed mixture, (B, C)."""
        return self._parts(x, sigma)[0]

    def _parts(self, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        means, vecs, vals, log_w = self._tensors(x.device, x.dtype)
        r = x.reshape(x.shape[0], 1, -1) - means  # (B, C, D)
        var = vals + sigma.to(x.dtype).reshape(-1, 1, 1) ** 2  # (B, C, D)
        coeffs = torch.einsum("bcd,cdk->bck", r, vecs)
        log_comp = log_w - 0.5 * ((coeffs ** 2 / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))
        resp = torch.softmax(log_comp, dim=1)
        comp_scores = -torch.einsum("bck,cdk->bcd", coeffs / var, vecs)
        return resp, comp_scores, torch.logsumexp(log_comp, dim=1)

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact score of the sigma-perturbed mixture: x (B, 1, H, W), sigma (B,) -> (B, 1, H, W)."""
        resp, comp_scores, _ = self._parts(x, sigma)
        return (resp.unsqueeze(-1) * comp_scores).sum(1).reshape(x.shape)

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Log density of the sigma-perturbed mixture per image, (B,)."""
        return self._parts(x, sigma)[2]
