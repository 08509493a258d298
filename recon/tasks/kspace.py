"""Measured Cartesian k-space made ready for reconstruction: grid, column mask, coil maps and phase.

All arrays are numpy, k-space complex (..., H, W) in the centred orthonormal FFT convention of
fastMRI (readout along H, phase encoding along the W columns, which the masks select). Sizes are
centred the way fastMRI crops: index ``n // 2 - size // 2`` of a side ``n`` becomes index 0.
"""
from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.io.fastmri import centred_fft, ifft2c

ESPIRIT_CALIB = 24
"""The most fully sampled centre columns ESPIRiT calibrates on (sigpy's default width)."""
ESPIRIT_KERNEL = 6
"""ESPIRiT's largest kernel width (sigpy's default); a narrower centre gets a third of its width (a
one-off measurement on a 128² brain slice with 8 smooth coils and 10 centre columns: kernel 3 combined
the coils to 1.5e-4 relative error, 4 to 4e-4, 5 cut the object off and missed by 9%)."""
CENTRE_TAPER = 0.5
"""The tapered share of the Tukey window on the centre columns of :func:`centre_image`. Score (dds, 50
levels) with ``--complex-prior demodulated`` at 4x on 4 test slices of 128² with a smooth phase, single /
8-coil, fastMRI PSNR: no window (0; its ringing flips the phase by pi near edges) 31.7 / 39.9 dB, a Hann
window (1; a blurrier phase) 30.7 / 38.8, 0.5 33.0 / 41.1 (``python benchmarks/mri_raw.py --priors
demodulated --files single multi --taper T``)."""
MIN_CALIBRATION = 4
"""Fewest contiguous centre columns ESPIRiT calibrates on (the low-resolution phase needs one)."""


def _centred(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``a`` centre-cropped or zero-padded to ``size`` along ``axis``."""
    n = a.shape[axis]
    if n == size:
        return a
    shape = list(a.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=a.dtype)
    start = n // 2 - size // 2
    src, dst = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    if start >= 0:
        src[axis] = slice(start, start + size)
    else:
        dst[axis] = slice(-start, -start + n)
    out[tuple(dst)] = a[tuple(src)]
    return out


def square_readout(kspace: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (..., W, W): the readout (H) field of view cut or padded to the W columns' one.

    An inverse FFT along the readout, a centred crop (fastMRI's 2x readout oversampling) or zero
    padding of the image rows, and an FFT back. Each column is transformed on its own, so unmeasured
    columns stay zero and undersampled k-space stays exact; the image of the result is the centre
    W rows of the file's image (the object must lie within them, as fastMRI's 320-row crops do).
    """
    if kspace.shape[-2] == kspace.shape[-1]:
        return kspace
    rows = _centred(centred_fft(kspace, -2, inverse=True), kspace.shape[-1], -2)
    return centred_fft(rows, -2).astype(kspace.dtype)


def resize_kspace(kspace: np.ndarray, size: int) -> np.ndarray:
    """(..., N, N) -> (..., size, size): the same field of view on a ``size`` grid.

    A centred crop (lower resolution) or zero padding of k-space, scaled by size / N so that image
    intensities are unchanged.
    """
    n = kspace.shape[-1]
    if n == size:
        return kspace
    return (_centred(_centred(kspace, size, -1), size, -2) * (size / n)).astype(kspace.dtype)


def resize_columns(mask: np.ndarray, size: int) -> np.ndarray:
    """A column mask (N,) for :func:`resize_kspace`'s grid: cropped, or padded with unmeasured columns."""
    return _centred(mask.astype(bool), size, 0)


def acceleration(mask: np.ndarray) -> float:
    """Columns over measured columns of a mask (W,)."""
    return float(mask.size / max(int(mask.sum()), 1))


def centre_width(mask: np.ndarray) -> int:
    """The number of contiguous measured columns around the centre column W // 2 (0 if it is not measured)."""
    centre = mask.size // 2
    if not mask[centre]:
        return 0
    left = centre
    while left > 0 and mask[left - 1]:
        left -= 1
    right = centre
    while right < mask.size - 1 and mask[right + 1]:
        right += 1
    return right - left + 1


def check_centre(mask: np.ndarray, source: str, coils: int) -> int:
    """The fully sampled centre width of ``mask``; an InputError when it is too narrow for ESPIRiT (more than one
    coil: MIN_CALIBRATION columns) or for the low-resolution phase (one column)."""
    width, needed = centre_width(mask), MIN_CALIBRATION if coils > 1 else 1
    if width < needed:
        raise InputError(f"{source}: the column mask has {width} contiguous centre columns; "
                         f"{'ESPIRiT coil maps' if coils > 1 else 'the image phase'} need at least {needed}")
    return width


def espirit_maps(kspace: np.ndarray, centre: int) -> np.ndarray:
    """Coil sensitivities (C, N, N) complex64 of one slice's k-space (C, N, N) by ESPIRiT (sigpy).

    Calibrates on the centre ``min(centre, ESPIRIT_CALIB)`` square of k-space (``centre``: the fully
    sampled centre columns) with a kernel of a third of that width (2 .. ESPIRIT_KERNEL); one set of
    maps, normalised so that sum_c |S_c|^2 = 1 where the eigenvalue passes sigpy's crop (0.95) and 0
    elsewhere, phase relative to the first coil.
    """
    from sigpy.mri.app import EspiritCalib

    calib = min(centre, ESPIRIT_CALIB)
    kernel = min(ESPIRIT_KERNEL, max(2, calib // 3))
    maps = EspiritCalib(kspace.astype(np.complex64), calib_width=calib, kernel_width=kernel,
                        show_pbar=False).run()
    return np.nan_to_num(np.asarray(maps)).astype(np.complex64)


def centre_image(kspace: np.ndarray, maps: np.ndarray, centre: int) -> np.ndarray:
    """A low-resolution complex image (N, N) of one slice from its fully sampled centre.

    The ``centre`` middle columns of k-space (C, N, N), every row (the readout is fully sampled), under
    a Tukey window (CENTRE_TAPER) across the columns, inverse FFT and combined over coils with the
    conjugate maps (C, N, N).
    """
    from scipy.signal.windows import tukey

    n = kspace.shape[-1]
    low = np.zeros_like(kspace)
    block = slice(n // 2 - centre // 2, n // 2 - centre // 2 + centre)
    low[..., block] = kspace[..., block] * tukey(centre + 2, CENTRE_TAPER)[1:-1]
    return (np.conj(maps) * ifft2c(low)).sum(0)


def noise_std(kspace: np.ndarray, columns: np.ndarray) -> float:
    """An estimate of the k-space noise std per real part from the outer eighth of the readout at both ends.

    The median modulus of the measured samples there over sqrt(2 ln 2) (the median of a complex Gaussian's
    modulus); signal left there makes it an overestimate. ``kspace`` (..., N, N), ``columns`` (N,) measured.
    """
    n = kspace.shape[-2]
    edge = max(1, n // 8)
    outer = np.concatenate([kspace[..., :edge, :], kspace[..., n - edge:, :]], axis=-2)[..., columns]
    return float(np.median(np.abs(outer)) / np.sqrt(2 * np.log(2))) if outer.size else 0.0
