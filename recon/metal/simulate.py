"""Metal artifact simulation after Yu et al. (2020), as the paper used it.

Given a clean CT slice in HU, :func:`simulate_metal` inserts random metal
implants and simulates a polychromatic 120 kVp scan of the result:

1. Attenuation at the 70 keV reference energy, mu = mu_w (1 + HU / 1000),
   split into water and bone parts by HU thresholds: below 100 HU all water,
   above 1500 HU all bone, linear in between (bone part = mu times the
   fraction ``(mu - mu(100 HU)) / (mu(1500 HU) - mu(100 HU))``).
2. Implants (screws, rods, plates, hip-like heads; random sizes, positions
   inside the body, orientations) of titanium or steel, rendered with 4x4
   supersampling so that edge pixels hold a metal fraction (partial volume);
   the metal fraction replaces tissue.
3. Each material's line integrals at 70 keV are projected with
   :class:`operators.Radon` (pixel units times the pixel size in cm) and
   scaled to every energy bin of the 120 kVp spectrum by the ratio of mass
   attenuation coefficients; photon counts I = N0 sum_E w_E exp(-p(E)).
4. Poisson noise on N0 = 2e7 incident photons per detector bin (Yu et al.'s
   count, per ray, used as is: the simulated starvation behind metal depends
   on counts per ray), plus 20 scatter photons; counts below 1 are set to 1.
5. Water beam-hardening correction: a cubic polynomial without constant term,
   fitted by least squares over water thicknesses 0 .. the FOV diagonal, maps
   -log(I / N0) to the 70 keV water line integral.
6. Conversion to the units of ``Radon.forward`` of model-unit images:
   ``p / (4 mu_w(70 keV) * pixel_cm)``, so FBP gives model units
   (x = (HU + 1000) / 4000) with metal streaks.

Geometry: the project's parallel beam with ``size`` views (or those of the
given Radon transform). The pixel size defaults to 40 cm / N (a 40 cm field
of view, e.g. 0.3125 cm at 128 px); attenuation is per cm, so it sets how
strong beam hardening and photon starvation are. Everything is seeded:
the same image and seed give the same case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from operators import BooleanMask, Measurement, Radon, metal_trace
from recon.metal.spectrum import METALS, REFERENCE_KEV, linear_attenuation, mass_attenuation, spectrum
from recon.units import hu_to_model

IMPLANT_KINDS = ("screw", "rod", "plate", "hip")
WATER_HU, BONE_HU = 100.0, 1500.0
SUPERSAMPLE = 4


@dataclass
class MetalCase:
    """One simulated metal artifact case (all tensors on the CPU, batch of one).

    Attributes:
        clean: (1, 1, N, N) float32 ground truth in model units (no metal).
        metal_mask: (1, 1, N, N) bool, pixels holding any metal.
        sinogram: (1, 1, M, D) float32 corrupted sinogram (polychromatic, noisy,
            water beam-hardening corrected) in the units of ``Radon.forward``
            of model-unit images.
        corrupted_fbp: (1, 1, N, N) float32 FBP of ``sinogram`` (model units, streaks).
        trace: (1, 1, M, D) bool, the bins whose rays cross ``metal_mask``.
        radon: the Radon transform used.
        implants: what was inserted (kind, material, centre and size in pixels).
    """

    clean: torch.Tensor
    metal_mask: torch.Tensor
    sinogram: torch.Tensor
    corrupted_fbp: torch.Tensor
    trace: torch.Tensor
    radon: Radon
    implants: list[dict] = field(default_factory=list)

    def measurement(self, trace: torch.Tensor | None = None) -> tuple[Measurement, torch.Tensor]:
        """The MAR problem: A = P(not trace) T and y = P(sinogram).

        ``trace`` defaults to the true one; pass one estimated from the image
        (e.g. ``metal_trace(segment_metal(...), radon)``) to mimic real data.
        """
        trace = self.trace if trace is None else trace
        measurement = Measurement(self.radon, BooleanMask(~trace))
        return measurement, measurement.P(self.sinogram)


def _shape_indicator(kind: str, xs: np.ndarray, ys: np.ndarray, size: dict) -> np.ndarray:
    """Indicator of an implant centred at the origin, on coordinates in pixels."""
    if kind in ("rod", "hip"):
        return xs ** 2 + ys ** 2 <= (size["diameter"] / 2) ** 2
    c, s = np.cos(size["angle"]), np.sin(size["angle"])
    u, v = c * xs + s * ys, -s * xs + c * ys
    return (np.abs(u) <= size["length"] / 2) & (np.abs(v) <= size["width"] / 2)


def _random_size(kind: str, rng: np.random.Generator, pixel_cm: float) -> dict:
    """Physical implant sizes (cm), converted to pixels; at least 1.5 pixels thick."""
    def px(low: float, high: float) -> float:
        return max(1.5, rng.uniform(low, high) / pixel_cm)

    angle = rng.uniform(0, np.pi)
    if kind == "screw":
        return {"length": px(2.0, 4.5), "width": px(0.45, 0.7), "angle": angle}
    if kind == "plate":
        return {"length": px(3.0, 7.0), "width": px(0.25, 0.45), "angle": angle}
    if kind == "rod":
        return {"diameter": px(0.5, 1.0)}
    return {"diameter": px(2.5, 4.5)}  # hip: femoral-head-like disc


def _render(kind: str, size: dict, centre: tuple[float, float], n: int) -> np.ndarray:
    """Metal fraction (N, N) of one implant, by SUPERSAMPLE^2 point sampling per pixel."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    fine = (np.arange(n)[:, None] + offsets[None, :]).ravel()
    rows, cols = np.meshgrid(fine - centre[0], fine - centre[1], indexing="ij")
    inside = _shape_indicator(kind, cols, rows, size).astype(np.float64)
    return inside.reshape(n, SUPERSAMPLE, n, SUPERSAMPLE).mean(axis=(1, 3))


def insert_implants(image_hu: np.ndarray, rng: np.random.Generator, pixel_cm: float,
                    n_implants: int | None = None, kinds: tuple[str, ...] = IMPLANT_KINDS,
                    body_hu: float = -500.0, tries: int = 200) -> tuple[np.ndarray, list[dict]]:
    """Random implants that fit inside the body (pixels above ``body_hu``) without overlapping.

    Returns:
        the metal fraction image (N, N) in [0, 1] and the implant descriptions.
    Raises:
        ValueError if not even one implant fits.
    """
    for kind in kinds:
        if kind not in IMPLANT_KINDS:
            raise ValueError(f"unknown implant kind {kind!r}; choose from {', '.join(IMPLANT_KINDS)}")
    n = image_hu.shape[0]
    body = image_hu > body_hu
    candidates = np.argwhere(body)
    if len(candidates) == 0:
        raise ValueError(f"no pixel above {body_hu} HU to place metal in")
    count = int(rng.integers(1, 4)) if n_implants is None else n_implants
    fraction = np.zeros((n, n))
    implants: list[dict] = []
    for _ in range(count):
        kind = kinds[int(rng.integers(len(kinds)))]
        for _ in range(tries):
            size = _random_size(kind, rng, pixel_cm)
            r, c = candidates[int(rng.integers(len(candidates)))] + rng.uniform(-0.5, 0.5, size=2)
            shape = _render(kind, size, (r, c), n)
            footprint = shape > 0
            if body[footprint].all() and not (fraction[footprint] > 0).any():
                fraction += shape
                implants.append({"kind": kind, "centre": (float(r), float(c)),
                                 **{k: float(v) for k, v in size.items()}})
                break
    if not implants:
        raise ValueError("no implant fits inside the body of this image")
    return np.clip(fraction, 0.0, 1.0), implants


def water_bhc_coefficients(energies: np.ndarray, weights: np.ndarray, max_cm: float) -> np.ndarray:
    """Cubic (no constant) mapping polychromatic water line integrals to 70 keV ones.

    Returns c with ``p_70 = c[0] p + c[1] p^2 + c[2] p^3``, fitted over water
    thicknesses 0 .. ``max_cm``.
    """
    thickness = np.linspace(0.0, max_cm, 1000)
    mu = linear_attenuation("water", energies)
    p_poly = -np.log(np.exp(-np.outer(thickness, mu)) @ weights)
    p_mono = linear_attenuation("water", REFERENCE_KEV) * thickness
    design = np.stack([p_poly, p_poly ** 2, p_poly ** 3], axis=1)
    return np.linalg.lstsq(design, p_mono, rcond=None)[0]


def _polychromatic_scan(integrals: torch.Tensor, materials: list[str], photons: float, scatter_photons: float,
                        seed: int | None) -> torch.Tensor:
    """-log(I / N0) (M, D) of a 120 kVp scan through material line integrals (K, M, D) at the reference
    energy, with Poisson noise drawn with ``seed`` (None: expected counts) and counts below 1 set to 1."""
    energies, weights = spectrum()
    ratios = np.stack([mass_attenuation(name, energies) / mass_attenuation(name, REFERENCE_KEV) for name in materials])
    exponent = torch.einsum("kmd,ke->emd", integrals, torch.from_numpy(ratios))
    expected = photons * torch.einsum("emd,e->md", torch.exp(-exponent), torch.from_numpy(weights))
    expected = expected + scatter_photons
    counts = expected if seed is None else poisson_counts(expected, seed)
    return -torch.log(counts.clamp(min=1.0) / photons)


def poisson_counts(expected: torch.Tensor, seed: int) -> torch.Tensor:
    """Poisson counts of mean ``expected`` (any shape), by the inverse CDF of one seeded uniform per bin.

    Exactly Poisson-distributed, and stable: float round-off in ``expected`` (about one count at 2e7
    photons, and different on another CPU) changes a count by one in the few bins whose uniform lies
    at a step of the CDF, where a rejection sampler (``torch.poisson``) would draw different random
    numbers from there on and change every later bin's noise.
    """
    from scipy.stats import poisson

    uniform = torch.rand(expected.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    counts = poisson.ppf(uniform.numpy(), expected.double().numpy())
    return torch.from_numpy(counts).to(expected.dtype)


def simulate_metal(image_hu: np.ndarray | torch.Tensor, seed: int, pixel_size_cm: float | None = None,
                   n_implants: int | None = None, kinds: tuple[str, ...] = IMPLANT_KINDS,
                   materials: tuple[str, ...] = METALS, photons: float = 2e7, scatter_photons: float = 20.0,
                   noise: bool = True, metal_fraction: np.ndarray | None = None,
                   radon: Radon | None = None) -> MetalCase:
    """Insert metal into a clean slice and simulate its corrupted scan.

    Args:
        image_hu: (N, N) clean slice in HU (values below -1000 are clipped).
        seed: seeds implant placement, material choice and Poisson noise.
        pixel_size_cm: physical pixel size (default 40 / N cm).
        n_implants: number of implants (default random, 1 to 3).
        kinds: implant kinds to draw from (see ``IMPLANT_KINDS``).
        materials: metals to draw one from for the case ("titanium", "steel").
        photons: incident photons per detector bin (Yu et al.: 2e7).
        scatter_photons: constant scatter counts added to every bin.
        noise: draw Poisson noise (False: expected counts, for tests).
        metal_fraction: (N, N) metal fraction in [0, 1] to use instead of
            random implants.
        radon: the scan (default ``Radon(N)``: N views, the matrix backend).
    Returns:
        a :class:`MetalCase`.
    """
    if isinstance(image_hu, torch.Tensor):
        image_hu = image_hu.detach().cpu().double().numpy()
    hu = np.asarray(image_hu, np.float64)
    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise ValueError(f"expected a square (N, N) image in HU, got shape {hu.shape}")
    for material in materials:
        if material not in METALS:
            raise ValueError(f"unknown metal {material!r}; choose from {', '.join(METALS)}")
    n = hu.shape[0]
    hu = np.maximum(hu, -1000.0)
    pixel_cm = 40.0 / n if pixel_size_cm is None else float(pixel_size_cm)
    radon = Radon(n) if radon is None else radon
    rng = np.random.default_rng(seed)
    material = materials[int(rng.integers(len(materials)))]
    if metal_fraction is None:
        fraction, implants = insert_implants(hu, rng, pixel_cm, n_implants, kinds)
    else:
        fraction, implants = np.clip(np.asarray(metal_fraction, np.float64), 0.0, 1.0), []
    for implant in implants:
        implant["material"] = material

    # Material line integrals at the reference energy (dimensionless, per ray).
    mu_w = float(linear_attenuation("water", REFERENCE_KEV))
    mu = mu_w * (1.0 + hu / 1000.0)
    t_water, t_bone = mu_w * (1 + WATER_HU / 1000), mu_w * (1 + BONE_HU / 1000)
    bone = np.clip((mu - t_water) / (t_bone - t_water), 0.0, 1.0) * mu
    tissue = 1.0 - fraction
    parts = {"water": (mu - bone) * tissue, "bone": bone * tissue,
             material: fraction * float(linear_attenuation(material, REFERENCE_KEV))}
    stack = torch.from_numpy(np.stack(list(parts.values()))[:, None]).float()  # float32: the cached matrix
    integrals = radon.forward(stack).double()[:, 0] * pixel_cm  # (3, M, D)
    p_poly = _polychromatic_scan(integrals, list(parts), photons, scatter_photons, seed if noise else None)

    # Water beam-hardening correction and conversion to model-unit sinograms.
    energies, weights = spectrum()
    coeffs = water_bhc_coefficients(energies, weights, max_cm=np.sqrt(2) * n * pixel_cm)
    p_bhc = coeffs[0] * p_poly + coeffs[1] * p_poly ** 2 + coeffs[2] * p_poly ** 3
    sinogram = (p_bhc / (4.0 * mu_w * pixel_cm)).float()[None, None]

    metal_mask = torch.from_numpy(fraction > 0)[None, None]
    return MetalCase(
        clean=torch.from_numpy(hu_to_model(hu)).float()[None, None],
        metal_mask=metal_mask,
        sinogram=sinogram,
        corrupted_fbp=radon.inverse(sinogram),
        trace=metal_trace(metal_mask, radon),
        radon=radon,
        implants=implants,
    )
