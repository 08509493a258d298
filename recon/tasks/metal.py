"""Metal artifact removal (`recon mar`): all views minus the metal trace.

The metal recipe is decided here once: metal = pixels above ``threshold`` HU, grown by one pixel; its
trace = the sinogram bins whose rays cross it; everything above the threshold is put back into every
result. A real scan's sinogram is the forward projection of the scan itself (no reference). Simulated
metal (``simulate``) treats the input as clean: implants are inserted and a polychromatic scan simulated
per slice (:func:`recon.metal.simulate_metal`, seeded by the problem's seed plus the slice's place in the
batch, field of view ``fov_cm``), the metal is segmented from the corrupted FBP as for a real scan, and
PSNR/SSIM against the clean input leave out the metal pixels (inserted and reinserted).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import torch

from operators import BooleanMask, Measurement, metal_trace
from recon.errors import InputError
from recon.metal import segment_metal, simulate_metal
from recon.tasks.base import Problem, Task, radon
from recon.units import hu_to_model, model_to_hu

METAL_THRESHOLD_HU = 3000.0
METAL_DILATION_PX = 1
DEFAULT_FOV_CM = 40.0
METRICS_NOTE = ("PSNR/SSIM: data range 1 on model units, output clipped to [0, 1], metal pixels excluded "
                "(the simulated metal and the reinserted pixels above the metal threshold)")


@dataclass(frozen=True)
class MetalArtifacts(Task):
    """Metal above ``threshold`` HU removed from the full-view sinogram; ``simulate``: insert it into clean
    slices first, scanned over a ``fov_cm`` field of view."""

    threshold: float = METAL_THRESHOLD_HU
    simulate: bool = False
    fov_cm: float = DEFAULT_FOV_CM

    name: ClassVar[str] = "ct-mar"
    modality: ClassVar[str] = "ct"
    baseline: ClassVar[str] = "li"
    methods: ClassVar[tuple[str, ...]] = ("li", "nmar")
    metrics_note: ClassVar[str] = METRICS_NOTE

    def metal(self, images: torch.Tensor) -> torch.Tensor:
        """The metal to remove, (B, 1, N, N) bool: pixels above the threshold, dilated."""
        return segment_metal(model_to_hu(images), threshold_hu=self.threshold, dilate=METAL_DILATION_PX)

    def measurement_for(self, images: torch.Tensor) -> Measurement:
        """All N views minus the trace of the metal found in ``images`` (B, 1, N, N)."""
        transform = radon(images.shape[-1])
        return Measurement(transform, BooleanMask(~metal_trace(self.metal(images).cpu(), transform)))

    def check(self, chunks: Iterable[torch.Tensor], source: str) -> None:
        found = False
        for images in chunks:  # every chunk read: each slice is checked as it is decoded
            found = found or bool((images > hu_to_model(self.threshold)).any())
        if not self.simulate and not found:
            raise InputError(f"{source}: no pixel above {self.threshold:g} HU, so no metal to remove; "
                             "lower --metal-threshold, or pass --simulate-metal to insert metal into a clean image")

    def problem(self, x: torch.Tensor, seed: int) -> Problem:
        return self._simulated(x, seed) if self.simulate else self._measured(x)

    def _measured(self, x: torch.Tensor) -> Problem:
        """A measured scan's slices; one without metal has complete data and nothing to remove, so it is
        returned as it is (``settled``: a series is not reconstructed slice by slice where it has no metal)."""
        measurement = self.measurement_for(x)
        metal = x > hu_to_model(self.threshold)
        clean = ~metal.flatten(1).any(dim=1)
        return Problem(measurement, measurement.measure(x), reference=None,
                       finish=_reinsert(metal | clean.view(-1, 1, 1, 1), x), settled=clean)

    def _simulated(self, x: torch.Tensor, seed: int) -> Problem:
        transform = radon(x.shape[-1])
        cases = []
        for i, image in enumerate(model_to_hu(x[:, 0]).cpu()):
            try:
                cases.append(simulate_metal(image, seed=seed + i, pixel_size_cm=self.fov_cm / x.shape[-1],
                                            radon=transform))
            except ValueError as exc:
                raise InputError(f"slice {i + 1} of the batch: {exc}") from None
        corrupted = torch.cat([case.corrupted_fbp for case in cases])
        inserted = torch.cat([case.metal_mask for case in cases])
        measurement = self.measurement_for(corrupted)
        y = measurement.P(torch.cat([case.sinogram for case in cases])).to(x.device)
        reinserted = corrupted > hu_to_model(self.threshold)
        return Problem(measurement, y, reference=x, keep=~(inserted | reinserted).to(x.device),
                       finish=_reinsert(reinserted, corrupted))

    @property
    def label(self) -> str:
        return "metal"

    @property
    def setting(self) -> float:
        return 0

    def describe(self) -> str:
        source = f"simulated metal ({self.fov_cm:g} cm field of view)" if self.simulate else "metal"
        return f"CT MAR, {source} above {self.threshold:g} HU, all N views minus the metal trace"


def _reinsert(metal: torch.Tensor, values: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A post-process putting ``values`` back where ``metal`` is True."""
    return lambda images: torch.where(metal.to(images.device), values.to(images.device), images)
