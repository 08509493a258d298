"""NIfTI, fastMRI HDF5, arrays and pictures: read in model units, write back in real units."""
import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from recon.errors import InputError
from recon.io import read_volume, to_display, write_png, write_volume
from recon.units import hu_to_model, model_to_hu

RNG = np.random.default_rng(0)


def _oblique_affine():
    """A permuted, flipped, anisotropic affine: array axis 1 runs inferior-superior."""
    return np.array([[0.0, 0.0, -2.0, 10.0], [-1.5, 0.0, 0.0, 20.0], [0.0, 1.2, 0.0, -5.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip_keeps_affine_and_layout(tmp_path, suffix):
    data = (RNG.random((24, 5, 24)) * 800).astype(np.float32)
    source = tmp_path / f"vol{suffix}"
    nib.save(nib.Nifti1Image(data, _oblique_affine()), source)
    volume = read_volume(source)
    assert volume.format == "nifti" and volume.modality == "mri"
    assert volume.data.shape == (5, 24, 24)  # axial slices along the S axis, which is array axis 1
    [path] = write_volume(volume, volume.data, tmp_path / "out", "recon", "score-prior MRI")
    assert path.name == f"recon{suffix}"
    written = nib.load(path)
    assert np.allclose(written.affine, _oblique_affine())
    assert written.shape == data.shape
    assert np.allclose(written.get_fdata(), data, rtol=1e-5, atol=1e-3)
    assert written.header["descrip"].tobytes().startswith(b"score-prior MRI")


def test_one_volume_of_a_4d_nifti_is_read_and_written_as_3d(tmp_path):
    data = (RNG.random((24, 24, 5, 3)) * 800).astype(np.float32)
    data[..., 1] += 1000.0  # volume 1 is the brightest
    source = tmp_path / "dwi.nii.gz"
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), source)
    volume = read_volume(source, volume=1)
    assert volume.data.shape == (5, 24, 24)  # the axial slices of volume 1 alone
    [path] = write_volume(volume, volume.data, tmp_path / "out", "recon", "score-prior MRI")
    written = nib.load(path)
    assert written.shape == data.shape[:3] and np.allclose(written.affine, affine)
    assert np.allclose(written.get_fdata(), data[..., 1], rtol=1e-5, atol=1e-3)


def test_nifti_axial_slices_are_anterior_up():
    data = np.zeros((16, 20, 3), dtype=np.float32)
    data[:, 15:, :] = 1.0  # anterior (high y) voxels
    data[12:, :, :] += 2.0  # right (high x) voxels
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ras.nii"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        volume = read_volume(path, square="pad")
    image = volume.data[0] * volume.scale
    assert image[2, 8] == pytest.approx(1.0, abs=1e-5)  # top rows: anterior
    assert image[10, 2 + 14] == pytest.approx(2.0, abs=1e-5)  # right columns: subject's right


def test_nifti_2d_and_ct_units(tmp_path):
    hu = RNG.uniform(-1000, 1500, (32, 32)).astype(np.float32)
    source = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([0.7, 0.7, 2.0, 1.0])), source)
    volume = read_volume(source, modality="ct")
    assert volume.data.shape == (1, 32, 32)
    assert np.allclose(model_to_hu(volume.data.astype(np.float64)).min(), hu.min(), atol=0.05)
    [path] = write_volume(volume, volume.data, tmp_path / "out", "ct", "x")
    written = nib.load(path)
    assert written.shape == (32, 32)
    assert np.abs(written.get_fdata() - hu).max() < 0.05


def _fastmri_file(path, coils=0, with_reconstruction=True):
    shape = (3, coils, 40, 24) if coils else (3, 40, 24)
    kspace = (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64) * 1e-4
    reference = (RNG.random((3, 32, 32)) * 3e-4).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle["kspace"] = kspace
        if with_reconstruction:
            handle["reconstruction_rss" if coils else "reconstruction_esc"] = reference
        handle.attrs["acquisition"] = "CORPD_FBK"
        handle.attrs["max"] = float(reference.max())
        handle.attrs["patient_id"] = "abc"
    return kspace, reference


def test_fastmri_singlecoil_reads_reference_and_kspace(tmp_path):
    _, reference = _fastmri_file(tmp_path / "file1000001.h5")
    volume = read_volume(tmp_path / "file1000001.h5")
    assert volume.format == "fastmri" and volume.modality == "mri"
    assert volume.meta["reference"] == "reconstruction_esc" and volume.meta["attrs"]["acquisition"] == "CORPD_FBK"
    assert np.allclose(volume.data * volume.scale, reference, rtol=1e-5)
    [path] = write_volume(volume, volume.data, tmp_path / "out", "recon", "score-prior MRI")
    with h5py.File(path) as handle:
        assert np.allclose(handle["reconstruction"][()], reference, rtol=1e-5)
        assert handle.attrs["acquisition"] == "CORPD_FBK" and handle.attrs["patient_id"] == "abc"


def test_fastmri_multicoil_without_reconstruction_uses_rss(tmp_path):
    kspace, _ = _fastmri_file(tmp_path / "multi.h5", coils=4, with_reconstruction=False)
    volume = read_volume(tmp_path / "multi.h5", square="crop")
    coil_images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(axis=1))[:, 8:32, :]
    assert volume.meta["reference"] == "kspace" and volume.meta["coils"] == 4
    assert np.allclose(volume.data * volume.scale, rss, rtol=1e-4)


def test_npy_and_npz_hold_real_units(tmp_path):
    hu = RNG.uniform(-1000, 2000, (2, 16, 16))
    np.save(tmp_path / "ct.npy", hu)
    np.savez(tmp_path / "ct.npz", image=hu, other=np.zeros(3))
    for name in ("ct.npy", "ct.npz"):
        volume = read_volume(tmp_path / name)
        assert volume.modality == "ct" and volume.format == name[-3:]
        assert np.allclose(volume.data, hu_to_model(hu), atol=1e-6)
        [path] = write_volume(volume, volume.data, tmp_path / "out", name[:-4], "x")
        assert path.suffix == ".npy" and np.allclose(np.load(path), hu, atol=0.01)
    magnitude = RNG.random((16, 16)) * 40
    np.save(tmp_path / "mr.npy", magnitude)
    volume = read_volume(tmp_path / "mr.npy", modality="mri")
    [path] = write_volume(volume, volume.data, tmp_path / "out", "mr", "x")
    assert np.allclose(np.load(path)[0], magnitude, rtol=1e-5)


def test_pictures_8_16_bit_and_float_tiff(tmp_path):
    grey8 = (RNG.random((16, 16)) * 255).astype(np.uint8)
    grey16 = (RNG.random((16, 16)) * 65535).astype(np.uint16)
    Image.fromarray(grey8).save(tmp_path / "a.png")
    Image.fromarray(grey16).save(tmp_path / "b.png")
    tifffile.imwrite(tmp_path / "c.tif", grey16)
    soft = np.full((16, 16), 40.0, dtype=np.float32)
    soft[:, :4] = -1000.0  # air beside soft tissue: a CT slice spans hundreds of HU
    tifffile.imwrite(tmp_path / "d.tiff", soft)
    assert np.allclose(read_volume(tmp_path / "a.png").data[0], grey8 / 255, atol=1e-6)
    assert np.allclose(read_volume(tmp_path / "b.png").data[0], grey16 / 65535, atol=1e-6)
    assert np.allclose(read_volume(tmp_path / "c.tif").data[0], grey16 / 65535, atol=1e-6)
    mr = read_volume(tmp_path / "b.png", modality="mri")
    assert np.allclose(mr.data[0] * mr.scale, grey16, rtol=1e-5)
    ct = read_volume(tmp_path / "d.tiff")  # float TIFF: HU
    assert np.allclose(ct.data, hu_to_model(soft))
    paths = write_volume(ct, ct.data, tmp_path / "out", "recon", "x")
    assert [p.name for p in paths] == ["recon.tiff", "recon.png"]
    assert np.allclose(tifffile.imread(paths[0]), soft, atol=1e-3)
    assert np.asarray(Image.open(paths[1])).dtype == np.uint8


def test_square_pad_and_crop_are_undone_on_output(tmp_path):
    hu = RNG.uniform(-1000, 1000, (20, 28))
    np.save(tmp_path / "wide.npy", hu)
    padded = read_volume(tmp_path / "wide.npy", square="pad")
    assert padded.data.shape == (1, 28, 28)
    assert np.all(padded.data[0, :4] == 0) and np.all(padded.data[0, -4:] == 0)  # air
    [path] = write_volume(padded, padded.data, tmp_path / "out", "pad", "x")
    assert np.allclose(np.load(path)[0], hu, atol=0.01)
    cropped = read_volume(tmp_path / "wide.npy", square="crop")
    assert cropped.data.shape == (1, 20, 20)
    [path] = write_volume(cropped, np.zeros_like(cropped.data), tmp_path / "out", "crop", "x")
    result = np.load(path)[0]
    assert result.shape == (20, 28)
    assert np.allclose(result[:, 4:24], -1000.0) and np.allclose(result[:, :4], hu[:, :4], atol=0.01)


def test_png_windows(tmp_path):
    hu = np.array([[-1000.0, -600.0, 40.0, 240.0, 1300.0]] * 8)
    x = hu_to_model(hu)
    soft = to_display(x, "ct", "soft-tissue")
    lung = to_display(x, "ct", "lung")
    bone = to_display(x, "ct", "bone")
    assert np.allclose(soft[0], [0, 0, 0.5, 1, 1]) and np.allclose(to_display(x, "ct"), soft)
    assert np.allclose(lung[0, :2], [350 / 1500, 0.5]) and lung[0, 2] > 0.9
    assert np.isclose(bone[0, 2], 0.3) and bone[0, 4] == 1.0
    path = write_png(tmp_path / "p.png", x, "ct", "lung")
    pixels = np.asarray(Image.open(path))
    assert pixels.dtype == np.uint8 and pixels[0, 1] == 128
    mr = write_png(tmp_path / "m.png", np.linspace(0, 2, 64).reshape(8, 8), "mri")
    assert np.asarray(Image.open(mr)).max() == 255


def test_rescale_gives_a_normalised_picture_its_hu(tmp_path):
    """A float TIFF normalised to [-1, 1] (the shared AAPM slice) is refused as HU and read with --rescale; the
    same slope and intercept apply to 16-bit grey levels, replacing the picture rule."""
    normalised = np.linspace(-1, 1, 256, dtype=np.float32).reshape(16, 16)
    tifffile.imwrite(tmp_path / "n.tif", normalised)
    with pytest.raises(InputError, match="too narrow for a CT slice.*--rescale SLOPE INTERCEPT"):
        read_volume(tmp_path / "n.tif")
    ct = read_volume(tmp_path / "n.tif", rescale=(2000.0, 976.0))
    assert np.allclose(ct.data, hu_to_model(np.maximum(2000.0 * normalised + 976.0, -1024.0)), atol=1e-6)
    assert ct.meta["rescale"] == [2000.0, 976.0]
    grey = (np.arange(256, dtype=np.uint16) * 16).reshape(16, 16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.allclose(read_volume(tmp_path / "g.png", rescale=(1.0, -1024.0)).data, hu_to_model(grey - 1024.0),
                       atol=1e-6)
