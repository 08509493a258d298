"""Does the scan's pixel spacing lie where the prior was trained? A record for metrics.json, and a warning.

The prior samples on its own grid (``meta["size"]``): a scan of side N and pixel spacing d is seen there
with pixels of d N / size mm (the same with ``--resample``). A prior trained on 1.7-3.0 mm pixels draws
vertebrae and vessels at that scale; a close-up at 0.66 mm (pydicom's CT_small.dcm) gets anatomy of the
wrong size (benchmarks/RESULTS.md, the real-scan rows). Outside the trained range by more than a factor
SLACK the run warns, and goes on.
"""
from __future__ import annotations

SLACK = 1.5
"""A spacing within [low / SLACK, high * SLACK] of the trained range passes without a warning."""


def spacing_record(prior, volume, side: int) -> dict:
    """The scan's pixel spacing, the spacing on the prior's grid, the prior's trained range and a warning.

    Args:
        prior: the score prior (``meta["size"]``, ``meta["id"]``, ``pixel_spacing_range``), or None (a classical
            method: only the scan's spacing is recorded).
        volume: the input :class:`recon.io.Volume` (``pixel_spacing_mm``, ``source``).
        side: the side of the scan's slices.
    Returns:
        ``{"scan_mm", "on_prior_grid_mm", "trained_mm", "warning"}``; values are None where unknown, and
        ``warning`` is None when the spacing lies in the trained range (or cannot be checked).
    """
    scan = volume.pixel_spacing_mm
    record = {"scan_mm": None if scan is None else round(scan, 4), "on_prior_grid_mm": None, "trained_mm": None,
              "warning": None}
    if prior is None or scan is None:
        return record
    size = prior.meta["size"]
    on_grid = scan * side / size
    trained = getattr(prior, "pixel_spacing_range", None)
    record.update(on_prior_grid_mm=round(on_grid, 4), trained_mm=None if trained is None else list(trained))
    if trained is not None and not trained[0] / SLACK <= on_grid <= trained[1] * SLACK:
        record["warning"] = (f"{volume.source}: {scan:.3g} mm pixels are {on_grid:.3g} mm on prior "
                             f"{prior.meta.get('id')}'s {size}x{size} grid, far outside the {trained[0]:.3g}-"
                             f"{trained[1]:.3g} mm it was trained on; anatomy may be drawn at the wrong scale")
    return record
