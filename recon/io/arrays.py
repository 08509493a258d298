"""Plain arrays and pictures: .npy, .npz, PNG, TIFF.

The readers return the stored values, an (S, H, W) stack of the file's own dtype;
:func:`to_real` gives them units, in one place:

* float or signed-integer arrays (``.npy``, ``.npz``, float TIFF): real
  units, HU for CT and magnitude for MR;
* unsigned 8- or 16-bit pictures (PNG, TIFF): grey levels g of full scale
  G = 255 or 65535; for CT they are model units g / G (0 = air, G = 3000 HU),
  for MR magnitudes g;
* with ``rescale`` = (slope, intercept), CT values are HU = slope * stored + intercept whatever the dtype
  (DICOM's RescaleSlope / RescaleIntercept; a normalised float TIFF in [-1, 1] needs one).

CT values spanning less than MIN_CT_SPAN_HU cannot be HU (a slice holds air, tissue or bone) and are refused
with a message naming ``--rescale``. Colour pictures are accepted only when their channels are equal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from recon.errors import InputError
from recon.units import model_to_hu

NPZ_KEYS = ("image", "images", "data", "volume", "arr_0")
TIFF_SUFFIXES = (".tif", ".tiff")
SUFFIXES = (".npy", ".npz", ".png", *TIFF_SUFFIXES)
"""The files this module reads; their values carry no unit of their own (``--rescale`` gives CT ones)."""
MIN_CT_SPAN_HU = 100.0
"""The smallest range of CT numbers accepted from a unit-less file: less is a normalised image, not HU."""


def _as_stack(array: np.ndarray, path: Path) -> np.ndarray:
    """(H, W), (S, H, W) or (S, 1, H, W) -> (S, H, W)."""
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"{path}: expected an (H, W) image or (S, H, W) stack, got shape {array.shape}")
    return array


def _grey(array: np.ndarray, path: Path) -> np.ndarray:
    """Drop equal colour channels (last axis of size 3 or 4, alpha ignored); refuse true colour."""
    if array.ndim >= 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise InputError(f"{path}: colour image; expected a grey-scale image")
        array = rgb[..., 0]
    return array


def to_real(stored: np.ndarray, modality: str, path: Path, rescale: tuple[float, float] | None = None) -> np.ndarray:
    """Stored values (S, H, W) -> float64 real units by the rules of this module."""
    if stored.dtype.kind not in "fiub":
        raise InputError(f"{path}: unsupported array type {stored.dtype}")
    if rescale is not None:
        if modality != "ct":
            raise InputError(f"{path}: --rescale sets CT numbers (HU); MR magnitudes need no scale")
        slope, intercept = rescale
        real = slope * stored.astype(np.float64) + intercept
    elif stored.dtype in (np.uint8, np.uint16):
        grey = stored.astype(np.float64)
        real = model_to_hu(grey / float(np.iinfo(stored.dtype).max)) if modality == "ct" else grey
    else:
        real = stored.astype(np.float64)
    return real


def check_ct_span(real: np.ndarray, path: Path, rescaled: bool) -> None:
    """InputError when a unit-less file's CT numbers (S, H, W), finite, span less than MIN_CT_SPAN_HU."""
    lo, hi = float(real.min()), float(real.max())
    if hi - lo < MIN_CT_SPAN_HU:
        given = " after --rescale" if rescaled else ""
        raise InputError(f"{path}: values span {lo:.4g} to {hi:.4g} HU{given}, too narrow for a CT slice (air -1000, "
                         f"bone +1000); give the file's scale with --rescale SLOPE INTERCEPT "
                         f"(HU = SLOPE * value + INTERCEPT)")


def read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    if np.iscomplexobj(array):
        raise InputError(f"{path}: complex values; give the magnitude image")
    return _as_stack(array, path)


def read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_KEYS if k in keys), None)
            if key is None:
                raise InputError(f"{path}: .npz holds {keys}; expected one array or one named {'/'.join(NPZ_KEYS)}")
            array = archive[key]
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0]})") from None
    if np.iscomplexobj(array):
        raise InputError(f"{path}: complex values; give the magnitude image")
    return _as_stack(array, path)


def read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({str(exc).splitlines()[0]})") from None
    if mode.startswith("I") and array.dtype != np.uint16:
        array = array.astype(np.uint16) if array.min() >= 0 and array.max() <= 65535 else array
    if mode == "LA":
        array = array[..., 0]
    return _as_stack(_grey(array, path), path)


def read_tiff(path: Path) -> np.ndarray:
    try:
        array = tifffile.imread(path)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable TIFF file ({str(exc).splitlines()[0]})") from None
    if np.iscomplexobj(array):
        raise InputError(f"{path}: complex values; give the magnitude image")
    return _as_stack(_grey(array, path), path)


def write_npy(real: np.ndarray, path: Path) -> None:
    """(S, H, W) real units -> float32 .npy of the same shape."""
    np.save(path, real.astype(np.float32))


def write_tiff(real: np.ndarray, path: Path, description: str) -> None:
    """(S, H, W) real units -> float32 TIFF (one page per slice)."""
    tifffile.imwrite(path, real.astype(np.float32), description=description)
