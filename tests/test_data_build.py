"""`recon data build/show/examples` and the lazy SliceDataset."""
import json

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

import recon.data.build
from recon.cli import main
from recon.data import SliceDataset, build_dataset, read_manifest, thorax_phantom
from recon.data.build import item_seed
from recon.io import read_volume
from recon.units import model_to_hu

MANIFEST_KEYS = {"modality", "size", "counts", "seeds", "source", "splits", "intensity", "generator", "created",
                 "pixel_spacing_range_mm"}


@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_cli_build_tiny(tmp_path, capsys, modality):
    out = tmp_path / f"{modality}.h5"
    code = main(["data", "build", "--modality", modality, "--size", "32", "--n", "5", "--val", "3", "--test", "2",
                 "--seed", "7", "-o", str(out), "--quiet"])
    assert code == 0 and "5 train, 3 val, 2 test" in capsys.readouterr().out
    with h5py.File(out) as handle:
        for split, count in (("train", 5), ("val", 3), ("test", 2)):
            images = handle[f"{split}/images"]
            assert images.shape == (count, 1, 32, 32) and images.dtype == np.float32
            assert images.chunks == (1, 1, 32, 32)
            data = images[()]
            assert np.isfinite(data).all() and data.std() > 0.01
        manifest = json.loads(handle.attrs["manifest"])
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["modality"] == modality and manifest["size"] == 32
    assert manifest["counts"] == {"train": 5, "val": 3, "test": 2} and manifest["seeds"]["seed"] == 7
    assert manifest["intensity"].startswith(f"{modality}:")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]

    dataset = SliceDataset(out, "val")
    assert len(dataset) == 3 and dataset.manifest["modality"] == modality
    item = dataset[1]
    assert isinstance(item, torch.Tensor) and item.shape == (1, 32, 32) and item.dtype == torch.float32
    batch = next(iter(torch.utils.data.DataLoader(SliceDataset(out), batch_size=4)))
    assert batch.shape == (4, 1, 32, 32)

    assert main(["data", "show", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["train"] == 5


def test_build_is_reproducible_and_splits_differ(tmp_path):
    a = build_dataset("ct", 16, {"train": 3, "val": 2, "test": 2}, tmp_path / "a.h5", seed=1, progress=False)
    b = build_dataset("ct", 16, {"train": 3, "val": 2, "test": 2}, tmp_path / "b.h5", seed=1, progress=False)
    with h5py.File(a) as ha, h5py.File(b) as hb:
        assert np.array_equal(ha["train/images"][()], hb["train/images"][()])
        assert not np.array_equal(ha["train/images"][:2], ha["val/images"][()])
    assert read_manifest(a)["counts"] == {"train": 3, "val": 2, "test": 2}


def test_mri_val_starts_with_the_held_out_slices(tmp_path):
    from recon.data.mri_slices import VAL_SLICES, mri_slices

    path = build_dataset("mri", 32, {"train": 1, "val": len(VAL_SLICES) + 2, "test": 1}, tmp_path / "m.h5",
                         progress=False)
    plain = np.stack(list(mri_slices("val", 32, seed=0, augment=False)))
    with h5py.File(path) as handle:
        val = handle["val/images"][:, 0]
    assert np.array_equal(val[:len(VAL_SLICES)], plain)
    assert not any(np.array_equal(val[-1], p) for p in plain)


def test_failed_build_leaves_no_file(tmp_path, monkeypatch):
    real = recon.data.build.make_item

    def failing(modality, size, seed, split, index, anatomy):
        if split == "val":
            raise RuntimeError("boom")
        return real(modality, size, seed, split, index, anatomy)

    monkeypatch.setattr(recon.data.build, "make_item", failing)
    with pytest.raises(RuntimeError, match="boom"):
        build_dataset("ct", 16, {"train": 2, "val": 1, "test": 0}, tmp_path / "x.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_build_options(tmp_path, capsys):
    assert main(["data", "build", "--modality", "ct", "--size", "4", "--n", "2", "-o", str(tmp_path / "a.h5")]) == 2
    assert "size 4 is out of range" in capsys.readouterr().err
    assert main(["data", "build", "--modality", "ct", "--n", "0", "-o", str(tmp_path / "a.h5")]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err
    assert main(["data", "show", str(tmp_path / "none.h5")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_examples(tmp_path, capsys):
    assert main(["data", "examples", "-o", str(tmp_path / "examples")]) == 0
    ct = read_volume(tmp_path / "examples" / "CT_small.dcm")
    assert ct.modality == "ct" and ct.data.shape == (1, 128, 128)
    phantom = read_volume(tmp_path / "examples" / "phantom_ct.dcm")
    expected = thorax_phantom(128, item_seed(0, "test", 0))
    assert phantom.modality == "ct" and phantom.data.shape == (1, 128, 128)
    inside = expected > -1000  # below -1024 HU (air noise) reads as -1024
    assert np.abs(model_to_hu(phantom.data[0].astype(np.float64)) - expected)[inside].max() <= 0.5 + 1e-3
    brain = nib.load(tmp_path / "examples" / "brain.nii.gz")
    assert brain.shape == (128, 128, 16) and brain.get_data_dtype() == np.int16
    assert nib.aff2axcodes(brain.affine) == ("R", "A", "S")
    assert np.allclose(np.diag(brain.affine)[:3], [1.5625, 1.5625, 1.0])
    volume = read_volume(tmp_path / "examples" / "brain.nii.gz")
    assert volume.modality == "mri" and volume.data.shape == (16, 128, 128)
    assert (volume.data > 0.2).mean(axis=(1, 2)).min() > 0.3
