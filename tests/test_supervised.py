"""Supervised post-processing U-Nets: network, training with resume, files, baseline use, benchmark."""
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from operators import sparse_view_ct, undersampled_mri
from priors.errors import PriorError
from recon.errors import InputError
from recon.supervised import ResidualUNet, UNetConfig, fbpconvnet, load_postprocessing, unet_mri
from recon.supervised import train as sup_train
from recon.supervised.tasks import network_input, task_of, training_task
from recon.supervised.train import TrainSettings, train_postprocessing

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32
TINY = UNetConfig(base_channels=8, depth=2, groups=4)


def _discs(n: int, seed: int) -> np.ndarray:
    """(n, 1, SIZE, SIZE) float32 images: a few random discs of value 0.1-0.5."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = np.zeros((n, 1, SIZE, SIZE), dtype=np.float32)
    for img in out:
        for _ in range(3):
            cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 8)
            img[0][(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] += rng.uniform(0.1, 0.5)
    return out


def _write_h5(path: Path, modality: str) -> Path:
    with h5py.File(path, "w") as f:
        for i, (split, n) in enumerate((("train", 16), ("val", 4), ("test", 4))):
            f.create_dataset(f"{split}/images", data=_discs(n, seed=i))
        f.attrs["manifest"] = json.dumps({"modality": modality, "size": SIZE})
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supervised-data")
    return {m: _write_h5(folder / f"{m}.h5", m) for m in ("ct", "mri")}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """Prefixes of a CT net (8 views, 40 steps) and an MRI net (4x, 4 steps)."""
    folder = tmp_path_factory.mktemp("supervised-nets")
    ct = folder / "fbpconvnet-ct-8"
    train_postprocessing(data["ct"], "ct-sparse-view", ct, n_views=8, network=TINY, run_dir=folder / "run-ct",
                         settings=TrainSettings(steps=40, batch_size=4, lr=3e-3, ckpt_every=20), progress=False)
    mri = folder / "unet-mri-4"
    train_postprocessing(data["mri"], "mri", mri, accel=4, network=TINY, run_dir=folder / "run-mri",
                         settings=TrainSettings(steps=4, batch_size=4, ckpt_every=2), progress=False)
    return {"ct": ct, "mri": mri, "folder": folder}


def test_unet_shape_and_identity_at_start():
    net = ResidualUNet(TINY)
    x = torch.rand(3, 1, 29, 34)
    assert net(x).shape == (3, 1, 29, 34)
    assert torch.equal(net(x), x)  # the zero-initialised head: the correction starts at 0
    torch.nn.init.normal_(net.head.weight)
    assert not torch.allclose(net(x), x)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(1, 2, 32, 32))
    with pytest.raises(ValueError, match="depth"):
        UNetConfig(depth=0)


def test_training_lowers_the_error(trained, data):
    meta = json.loads(trained["ct"].with_name(trained["ct"].name + ".json").read_text())
    log = meta["log"]
    assert [row["step"] for row in log][-1] == 40 and meta["training"]["steps"] == 40
    x = torch.from_numpy(_discs(16, seed=0))
    task, size = task_of(meta["measurement"])
    m = task.measurement(size)
    fbp_err = torch.mean((network_input(m, x) - x) ** 2).item()
    net_err = torch.mean((fbpconvnet(m, m.A(x), model=trained["ct"]) - x) ** 2).item()
    assert net_err < 0.7 * fbp_err
    assert log[-1]["loss_per_pixel"] < log[0]["loss_per_pixel"]
    csv = trained["ct"].with_name(trained["ct"].name + ".train.csv").read_text().splitlines()
    assert csv[0] == "step,loss_per_pixel,lr,images_per_s,wall_time_s" and len(csv) == len(log) + 1


def test_kill_and_resume_equals_uninterrupted(data, tmp_path, monkeypatch):
    kwargs = dict(accel=4, network=TINY, settings=TrainSettings(steps=6, batch_size=4, ckpt_every=2, log_every=1),
                  progress=False)
    train_postprocessing(data["mri"], "mri", tmp_path / "whole", run_dir=tmp_path / "run-whole", **kwargs)

    real, calls = sup_train.optimise, []

    def killed_at_fifth(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sup_train, "optimise", killed_at_fifth)
    with pytest.raises(KeyboardInterrupt):
        train_postprocessing(data["mri"], "mri", tmp_path / "resumed", run_dir=tmp_path / "run-resumed", **kwargs)
    assert not (tmp_path / "resumed.json").exists()
    assert sorted(p.name for p in (tmp_path / "run-resumed" / "checkpoints").glob("*.json"))[-1] == "step-00000004.json"
    monkeypatch.setattr(sup_train, "optimise", real)
    train_postprocessing(data["mri"], "mri", tmp_path / "resumed", run_dir=tmp_path / "run-resumed", **kwargs)
    whole = load_file(tmp_path / "whole.safetensors")
    resumed = load_file(tmp_path / "resumed.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    logs = [json.loads((tmp_path / f"{n}.json").read_text())["log"] for n in ("whole", "resumed")]
    assert [r["loss_per_pixel"] for r in logs[0]] == [r["loss_per_pixel"] for r in logs[1]]

    with pytest.raises(InputError, match="other settings.*measurement.accel"):
        train_postprocessing(data["mri"], "mri", tmp_path / "other", run_dir=tmp_path / "run-resumed",
                             **dict(kwargs, accel=8))


def test_saved_file_round_trips_and_tampering_is_refused(trained, tmp_path):
    prefix = trained["ct"]  # its weights file starts with byte 0x80 (header length 3456), not a pickle
    net = load_postprocessing(str(prefix) + ".safetensors")
    assert net.meta["task"] == "ct-sparse-view" and net.meta["measurement"]["projections"] == 8
    assert net.meta["kind"] == "fbpconvnet" and net.meta["dataset"]["sha256"]
    stored = load_file(str(prefix) + ".safetensors")
    assert all(torch.equal(stored[k], v) for k, v in net.network.state_dict().items())

    for suffix in (".json", ".safetensors"):
        (tmp_path / f"{prefix.name}{suffix}").write_bytes(Path(str(prefix) + suffix).read_bytes())
    weights = bytearray((tmp_path / f"{prefix.name}.safetensors").read_bytes())
    weights[-1] ^= 1
    (tmp_path / f"{prefix.name}.safetensors").write_bytes(bytes(weights))
    with pytest.raises(InputError, match="sha256"):
        load_postprocessing(tmp_path / prefix.name)
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(PriorError, match="pickle"):
        load_postprocessing(tmp_path / "model.pt")
    with pytest.raises(InputError, match="no such file"):
        load_postprocessing(tmp_path / "missing")
    with pytest.raises(InputError, match="not a post-processing network"):
        load_postprocessing(trained["folder"] / "run-ct" / "checkpoints" / "step-00000040")


def test_baselines_on_other_settings(trained):
    x = torch.from_numpy(_discs(2, seed=5))
    ct = sparse_view_ct(SIZE, 12)
    out = fbpconvnet(ct, ct.A(x), model=trained["ct"])
    assert out.shape == (2, 1, SIZE, SIZE) and out.dtype == torch.float32 and torch.isfinite(out).all()
    mri = undersampled_mri(SIZE, 8)
    assert unet_mri(mri, mri.A(x), model=trained["mri"]).shape == (2, 1, SIZE, SIZE)
    with pytest.raises(InputError, match="is for ct"):
        fbpconvnet(mri, mri.A(x), model=trained["ct"])
    with pytest.raises(InputError, match="trained on 32x32"):
        big = sparse_view_ct(40, 12)
        fbpconvnet(big, big.A(torch.zeros(1, 1, 40, 40)), model=trained["ct"])


def test_cli_errors_are_one_line(data, tmp_path, capsys):
    argv = ["--data", str(data["ct"]), "-o", str(tmp_path / "net"), "--no-progress", "--run-dir", str(tmp_path / "r")]
    assert sup_train.main(argv + ["--task", "ct-sparse-view"]) == 2
    assert "error: --views" in capsys.readouterr().err
    assert sup_train.main(argv + ["--task", "mri", "--accel", "8"]) == 2
    err = capsys.readouterr().err
    assert "holds ct images" in err and len(err.strip().splitlines()) == 1
    assert sup_train.main(argv + ["--task", "ct-sparse-view", "--views", "8", "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(InputError, match="--views"):
        training_task("ct-sparse-view", SIZE, n_views=SIZE + 1)


def test_benchmark_runs_on_tiny_nets(trained, data, capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "supervised.py"
    spec = importlib.util.spec_from_file_location("benchmark_supervised", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--model", str(trained["ct"]), "--data", str(data["ct"]), "--n", "3", "--views", "4", "8"])
    out = capsys.readouterr().out
    assert "| 8 views | fbpconvnet-ct-8 (trained at 8 views, 40 steps) |" in out and "| 4 views | FBP |" in out
    bench.main(["--model", str(trained["mri"]), "--data", str(data["mri"]), "--n", "3", "--accels", "8"])
    assert "PSNR (fastMRI)" in capsys.readouterr().out
