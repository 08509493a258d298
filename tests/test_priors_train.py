"""Training: the loss falls, kill-and-resume is exact (also on a rebuilt dataset), DDP with two gloo processes, CLI and
export."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import priors
from priors.checkpoint import latest_checkpoint, load_checkpoint
from priors.checkpoint import sha256_file as ckpt_sha
from priors.config import PRESETS, load_config
from priors.errors import PriorError
from priors.losses import dsm_loss
from priors.train import Trainer, train
from priors.training_data import images_sha256, same_training_data
from recon.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
# Tiny models run fastest, and bit-reproducibly across processes, on one thread;
# two threads on a busy 2-core machine can be ten times slower.
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread


def write_disc_set(path: Path, size: int = 32, n_train: int = 48, modality: str = "ct") -> Path:
    """Random bright discs on a dark background, in the documented HDF5 layout."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("val", 4), ("test", 4)):
            out = np.zeros((n, 1, size, size), dtype=np.float32)
            for i in range(n):
                cx, cy, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.1, 0.3)]
                out[i, 0] = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) * rng.uniform(0.3, 0.8)
            f.create_dataset(f"{split}/images", data=out)
        f.attrs["manifest"] = json.dumps({"modality": modality, "generator": "discs"})
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("data") / "discs.h5")


def _final_tensors(run_dir: Path) -> tuple[dict, dict]:
    return load_checkpoint(latest_checkpoint(run_dir))


def test_a_few_steps_lower_the_loss(data, tmp_path):
    trainer = Trainer(data, tmp_path / "run", PRESETS["tiny"], {"steps": 30, "lr": 2e-3, "warmup": 1},
                      progress=False)
    gen = torch.Generator().manual_seed(5)
    x0 = trainer.images[:32]
    t = torch.rand(32, generator=gen) * 0.6 + 0.2
    z = torch.randn(x0.shape, generator=gen)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(dsm_loss(trainer.model.eval(), x0, t, z, trainer.sde)) / x0[0].numel()

    before = held_out_loss()
    trainer.run()
    after = held_out_loss()
    assert after < 0.8 * before, (before, after)
    meta = _final_tensors(tmp_path / "run")[1]["prior_meta"]
    assert meta["modality"] == "ct" and meta["size"] == 32 and meta["training"]["hflip"] is False
    images = torch.from_numpy(h5py.File(data)["train/images"][:])
    assert meta["sde"]["sigma_max"] == pytest.approx(float(torch.pdist(images.flatten(1).double()).max()))


def test_kill_and_resume_equals_uninterrupted_training(data, tmp_path):
    killed = tmp_path / "killed"
    config = tmp_path / "dropout.json"  # dropout draws from the global RNG, whose state must be restored
    config.write_text(json.dumps({"preset": "tiny", "network": {"dropout": 0.2}}))
    proc = subprocess.Popen([sys.executable, "-m", "recon.cli", "train", "--data", str(data), "-o", str(killed),
                             "--config", str(config), "--steps", "100000", "--ckpt-every", "2", "--no-progress"],
                            cwd=ROOT, env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while not (killed / "checkpoints" / "step-00000004.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint within 90 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = int(_final_tensors(killed)[1]["step"])
    target = reached + 5

    train(data, killed, None, {"steps": target}, progress=False)
    train(data, tmp_path / "straight", load_config(str(config)), {"steps": target, "ckpt_every": 2}, progress=False)
    (a, sa), (b, sb) = _final_tensors(killed), _final_tensors(tmp_path / "straight")
    assert sa["step"] == sb["step"] == target
    assert a.keys() == b.keys() and any(k.startswith("opt.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)  # bit-for-bit
    assert sa["rng"] == sb["rng"]
    with open(killed / "train_log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, target + 1))  # the lost interval was trimmed, nothing duplicated


def test_ddp_two_gloo_processes_match_one_process(data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "recon.cli", "train", "--data", str(data), "-o", str(tmp_path / "ddp"), "--config", "tiny",
           "--steps", "3", "--batch-size", "8", "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    train(data, tmp_path / "one", PRESETS["tiny"], {"steps": 3, "batch_size": 8}, progress=False)
    (a, sa), (b, _) = _final_tensors(tmp_path / "ddp"), _final_tensors(tmp_path / "one")
    assert sa["world_size"] == 2 and sa["prior_meta"]["training"]["world_size"] == 2
    for k in (k for k in a if k.startswith("model.")):
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_cli_train_export_and_load(data, tmp_path):
    run = tmp_path / "run"
    assert cli(["train", "--data", str(data), "-o", str(run), "--config", "tiny", "--steps", "4",
                "--sample-every", "2", "--sample-steps", "3", "--no-progress", "--id", "discs-32", "--amp"]) == 0
    assert (run / "samples" / "step-00000004.png").exists() and (run / "config.json").exists()
    prefix = tmp_path / "bundled" / "discs-32"
    assert cli(["train", "export", str(run), "-o", str(prefix), "--dtype", "float16"]) == 0
    meta = json.loads(prefix.with_suffix(".json").read_text())
    assert meta["id"] == "discs-32" and meta["training"]["steps"] == 4 and meta["weights"]["dtype"] == "float16"
    assert meta["training"]["amp_bf16"] is True
    assert meta["defaults"] == {}  # the samplers' published values apply until the prior is tuned
    assert (tmp_path / "bundled" / "discs-32.train.csv").exists()
    for source in (prefix, run):
        prior = priors.load(source)
        out = prior.score(torch.rand(2, 1, 32, 32), torch.tensor([0.5, 1.0]))
        assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all()
    # Resuming with a different network is refused; a missing checkpoint with --resume too.
    assert cli(["train", "--data", str(data), "-o", str(run), "--config", "small", "--no-progress"]) == 2
    assert cli(["train", "--data", str(data), "-o", str(tmp_path / "new"), "--resume", "--no-progress"]) == 2


def test_ema_decay_warms_up_so_the_initial_weights_fade():
    from priors.train import ema_decay

    decays = [ema_decay(0.999, k) for k in range(20000)]
    assert decays[0] == pytest.approx(0.1) and decays[-1] == 0.999
    assert all(a <= b for a, b in zip(decays, decays[1:]))
    weight_of_init = 1.0
    for d in decays[:1500]:
        weight_of_init *= d
    assert weight_of_init < 1e-3  # a constant 0.999 would leave 0.999**1500 = 0.22


def _copy_with(source: Path, target: Path, manifest: dict, change=None) -> Path:
    """``source``'s splits in a new file with ``manifest``; ``change(images)`` edits the training images."""
    with h5py.File(source, "r") as f, h5py.File(target, "w") as g:
        for split in ("train", "val", "test"):
            images = f[f"{split}/images"][:]
            g.create_dataset(f"{split}/images", data=change(images) if change and split == "train" else images)
        g.attrs["manifest"] = json.dumps(manifest)
    return target


def test_resume_accepts_a_rebuilt_dataset_with_the_same_images_and_refuses_others(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, PRESETS["tiny"], {"steps": 2}, progress=False)
    stored = _final_tensors(run)[1]["prior_meta"]["dataset"]
    assert stored["images_sha256"] == images_sha256(torch.from_numpy(h5py.File(data)["train/images"][:]))

    rebuilt = _copy_with(data, tmp_path / "rebuilt.h5", {"modality": "ct", "generator": "discs", "created": "later"})
    assert ckpt_sha(rebuilt) != stored["sha256"]
    train(rebuilt, run, None, {"steps": 3}, progress=False)
    assert int(_final_tensors(run)[1]["step"]) == 3

    other = _copy_with(data, tmp_path / "other.h5", {"modality": "ct"}, change=lambda x: x * 0.5)
    with pytest.raises(PriorError, match="differs from the dataset this run was trained on"):
        train(other, run, None, {"steps": 4}, progress=False)


def test_runs_without_an_images_hash_resume_on_the_same_file_or_the_same_recipe(data, tmp_path):
    images = torch.from_numpy(h5py.File(data)["train/images"][:])
    recipe = {"modality": "mri", "generator": {"name": "recon.data.mri_slices", "version": 1}, "seeds": {"seed": 0}}
    old = {"sha256": ckpt_sha(data), "n_train": images.shape[0], "manifest": {**recipe, "created": "then"}}
    digest, n = images_sha256(images), images.shape[0]
    assert same_training_data(old, data, digest, n, {})  # the same file
    rebuilt = _copy_with(data, tmp_path / "rebuilt.h5", {**recipe, "created": "now"})
    assert same_training_data(old, rebuilt, digest, n, {**recipe, "created": "now"})
    assert not same_training_data(old, rebuilt, digest, n, {**recipe, "seeds": {"seed": 1}, "created": "now"})
    assert not same_training_data(old, rebuilt, images_sha256(images[:-1]), n - 1, {**recipe, "created": "now"})
    assert not same_training_data({**old, "manifest": {}}, rebuilt, digest, n, {})


def test_a_corrupted_newest_checkpoint_falls_back_to_the_previous_intact_one(data, tmp_path):
    # Issue 18: a damaged last write blocked resuming although the checkpoint before it was intact.
    run = tmp_path / "run"
    train(data, run, PRESETS["tiny"], {"steps": 4, "ckpt_every": 2}, progress=False)
    newest = latest_checkpoint(run)
    assert newest.name == "step-00000004.json"
    weights = newest.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated: its sha256 no longer matches
    with pytest.warns(UserWarning, match="step-00000004.*resuming from the intact step-00000002.json"):
        trainer = Trainer(data, run, None, {"steps": 6}, progress=False)
    assert trainer.step == 2
    with pytest.warns(UserWarning, match="intact step-00000002"):
        priors.load(run)  # the prior of a run folder takes the same fallback
    newest.write_text("{ not json")
    (run / "checkpoints" / "step-00000002.safetensors").unlink()  # nothing intact left
    with pytest.raises(PriorError, match="step-00000004.json: not valid JSON"):
        Trainer(data, run, None, {"steps": 6}, progress=False)  # nothing intact: the newest's error


def test_fine_tuning_starts_from_the_named_prior_and_records_it(data, tmp_path):
    from conftest import save_tiny_prior
    from priors.checkpoint import read_prior

    parent = save_tiny_prior(tmp_path / "parent", "ct", size=32)
    parent_weights, parent_meta = read_prior(parent)
    run = tmp_path / "tuned"
    # lr 0: the optimiser moves nothing, so the run's weights are exactly the parent's
    assert cli(["train", "--data", str(data), "-o", str(run), "--init", str(parent), "--steps", "2", "--lr", "0",
                "--warmup", "1", "--sample-every", "0", "--no-progress"]) == 0
    tensors, state = _final_tensors(run)
    for name, value in parent_weights.items():
        assert torch.equal(tensors["model." + name], value) and torch.equal(tensors["ema." + name], value)
    assert state["config"]["network"] == {**parent_meta["network"], "image_size": 32}
    assert state["prior_meta"]["init"]["id"] == parent_meta["id"]
    assert state["prior_meta"]["init"]["weights_sha256"] == parent_meta["weights"]["sha256"]
    assert "init" not in state["prior_meta"]["init"]  # the parent was trained from scratch
    # a run started from the fine-tuned run records the whole lineage
    assert cli(["train", "--data", str(data), "-o", str(tmp_path / "again"), "--init", str(run), "--steps", "1",
                "--warmup", "1", "--sample-every", "0", "--no-progress"]) == 0
    lineage = _final_tensors(tmp_path / "again")[1]["prior_meta"]["init"]
    assert lineage["from"] == str(run) and lineage["init"]["id"] == parent_meta["id"]
    # the network comes from the parent, so --config is refused; a parent that does not exist too
    assert cli(["train", "--data", str(data), "-o", str(tmp_path / "x"), "--init", str(parent), "--config", "tiny",
                "--no-progress"]) == 2
    assert cli(["train", "--data", str(data), "-o", str(tmp_path / "y"), "--init", str(tmp_path / "none"),
                "--no-progress"]) == 2
