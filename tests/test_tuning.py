"""`recon tune` and recon.tuning: Bayesian tuning, held-out-measurement scoring, resume, prior profiles.

The toy problem: a rank-40 Gaussian prior on 32x32 images (random
orthonormal basis, so k-space columns are correlated through the prior and
held-out columns are predictable), 4x MRI with complex noise of std 0.2. With
noise, enforcing the data fully (lambda = 1) over-fits it and lambda = 0
ignores it: PSNR has an interior maximum in lambda (about 0.35 here).
"""
import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
import torch

from operators import BooleanMask, ViewMask, metal_trace_ct, sparse_view_ct, undersampled_mri
from priors.analytic import GaussianPrior
from priors.errors import PriorError
from priors.learned import apply_profile, profile_path, read_profile
from recon.cli import main
from recon.errors import InputError
from recon.samplers import defaults_source, resolve_options, sampler_defaults
from recon.tasks import Problem
from recon.tuning import (holdout_error, holdout_objective, holdout_split, metric_objective, save_profile,
                          search_space, tune)


SIZE, RANK, NOISE = 32, 40, 0.2
FIXED = {"steps": 30, "snr": 0.2}  # snr fixed: lambda is tuned alone
N_SAMPLES = 4


def options_for(prior):
    return lambda point: resolve_options(prior, "pc", None, **FIXED, **point)
GRID = np.round(np.linspace(0.0, 1.0, 21), 3)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs on one torch thread."""


@pytest.fixture(scope="module")
def toy():
    """(prior, [Problem], [seed]) of the noisy 4x MRI toy problem with 8 images."""
    basis, _ = torch.linalg.qr(torch.randn(SIZE * SIZE, RANK, generator=torch.Generator().manual_seed(0),
                                           dtype=torch.float64))
    prior = GaussianPrior(torch.full((SIZE, SIZE), 0.4), basis, torch.full((RANK,), 0.15 ** 2 * SIZE * SIZE / RANK))
    x = prior.sample(8, torch.Generator().manual_seed(3)).float()
    measurement = undersampled_mri(SIZE, 4, 0.125, noise_std=NOISE)
    y = measurement.measure(x, torch.Generator().manual_seed(1))
    return prior, [Problem(measurement, y, x)], [0]


@pytest.fixture(scope="module")
def grids(toy):
    """Ground-truth PSNR and minus the held-out error of the toy over a lambda grid."""
    prior, problems, seeds = toy
    truth = metric_objective(prior, problems, seeds, "psnr", options_for(prior), N_SAMPLES)
    held = holdout_objective(prior, problems, seeds, -1, options_for(prior), every=2, keep_center=4,
                             n_samples=N_SAMPLES)
    return np.array([truth({"lam": float(lam)}) for lam in GRID]), np.array([held({"lam": float(lam)}) for lam in GRID])


def test_tuning_finds_the_grid_searched_best_lambda(toy, grids):
    prior, problems, seeds = toy
    truth, _ = grids
    best_lam, best_psnr = GRID[np.argmax(truth)], truth.max()
    assert 0.1 <= best_lam <= 0.7 and best_psnr > truth[0] + 3 and best_psnr > truth[-1] + 0.1  # interior optimum
    result = tune(metric_objective(prior, problems, seeds, "psnr", options_for(prior), N_SAMPLES), search_space("pc", "mri", {"snr": 0.2}),
                  calls=12, seed=0, start={"lam": 1.0})
    assert len(result.history) == 12 and set(result.best) == {"lam"}
    assert abs(result.best["lam"] - best_lam) <= 0.15
    assert result.best_score >= best_psnr - 0.05


def test_held_out_error_is_lowest_near_the_ground_truth_optimum(grids):
    truth, held = grids
    assert abs(GRID[np.argmax(held)] - GRID[np.argmax(truth)]) <= 0.15
    assert held.max() > held[0] and held.max() > held[-1]  # an interior optimum too
    # the ground-truth-free choice costs little ground-truth quality
    assert truth[np.argmax(held)] >= truth.max() - 0.3


def test_holdout_split_views_columns_and_metal_trace():
    x = torch.rand(2, 1, 16, 16)
    ct = sparse_view_ct(16, 8)
    full = ct.P_inv(ct.measure(x))
    fit, held = holdout_split(ct, full, axis=-2, every=4)
    assert isinstance(fit.sampling, ViewMask)
    held_views = torch.nonzero(held[0, 0, :, 0]).flatten().tolist()
    assert held_views and set(held_views) <= set(ct.sampling.indices.tolist())
    assert sorted(fit.sampling.indices.tolist() + held_views) == ct.sampling.indices.tolist()
    assert float(holdout_error(x, ct, full, held).max()) < 1e-10  # the truth predicts its own views

    mri = undersampled_mri(16, 2, 0.25)
    full = mri.P_inv(mri.measure(x))
    fit, held = holdout_split(mri, full, axis=-1, every=2, keep_center=4)
    columns = torch.nonzero(mri.sampling.mask.flatten()).flatten()
    centre = columns[torch.argsort((columns - 8).abs(), stable=True)[:4]].tolist()
    held_columns = torch.nonzero(held.flatten()).flatten().tolist()
    assert held_columns and not set(held_columns) & set(centre)
    assert isinstance(fit.sampling, BooleanMask) and not (fit.sampling.mask & held).any()

    metal = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    metal[0, 0, 5:7, 5:7] = metal[1, 0, 9:11, 3:5] = True
    mar = metal_trace_ct(metal)
    full = mar.P_inv(mar.measure(x))
    fit, held = holdout_split(mar, full, axis=-2, every=4)
    lam = mar.mask(full)
    assert held.shape == lam.shape and not (held & ~lam).any()  # only measured bins are held out
    assert torch.equal(fit.sampling.mask | held, lam) and held.any()

    with pytest.raises(InputError, match="too few"):
        holdout_split(sparse_view_ct(16, 1), torch.zeros(1, 1, 16, 23), axis=-2, every=2)


def test_tune_resumes_from_its_dump_and_refuses_other_settings(tmp_path):
    space = {"lam": (0.0, 1.0), "snr": (0.1, 0.5)}
    calls = []

    def objective(point):
        calls.append(point)
        return -(point["lam"] - 0.3) ** 2 - (point["snr"] - 0.2) ** 2

    dump = tmp_path / "history.json"
    whole = tune(objective, space, calls=7, seed=1)

    def interrupted(point):
        if len(calls) == 10:
            raise KeyboardInterrupt
        return objective(point)

    with pytest.raises(KeyboardInterrupt):
        tune(interrupted, space, calls=7, seed=1, dump=dump, meta={"a": 1})
    assert len(json.loads(dump.read_text())["history"]) == 3
    resumed = tune(objective, space, calls=7, seed=1, dump=dump, meta={"a": 1})
    assert len(resumed.history) == 7 and len(calls) == 7 + 3 + 4  # nothing evaluated twice
    # the first max(4, calls // 4) calls are the same fixed design, interrupted or not
    assert [h["lam"] for h in resumed.history[:4]] == [h["lam"] for h in whole.history[:4]]
    longer = tune(objective, space, calls=9, seed=1, dump=dump, meta={"a": 1})
    assert len(longer.history) == 9 and longer.history[:7] == resumed.history
    assert abs(longer.best["lam"] - 0.3) < 0.2
    with pytest.raises(InputError, match="other settings"):
        tune(objective, space, calls=9, seed=1, dump=dump, meta={"a": 2})


def test_search_space():
    assert search_space("pc", "mri") == {"lam": (0.0, 1.0), "snr": (0.2, 0.8)}
    assert search_space("pc", "ct-sparse-view", {"lam": 0.5})["snr"][1] == 0.4
    assert set(search_space("ddim", "mri")) == {"lam", "eta"}
    assert search_space("dds", "mri", sigma_max=80.0) == {"eta": (0.0, 1.0), "start_sigma": (0.03, 10.0)}
    assert search_space("dds", "mri", {"eta": 1.0}, sigma_max=0.05) == {"start_sigma": (0.025, 0.05)}
    with pytest.raises(InputError, match="cannot be tuned"):
        search_space("langevin", "mri")
    with pytest.raises(InputError, match="nothing to tune"):
        search_space("pc", "mri", {"lam": 0.5, "snr": 0.3})


def test_a_profile_sets_the_choice_run():
    meta = {"defaults": {"ct-mar": {"dds": {"refine_tv": 1e-4, "choice_steps": 25}}}}
    prior = type("Prior", (), {"meta": meta})()
    options = resolve_options(prior, "dds", "ct-mar")
    assert (options.choice_steps, options.steps) == (25, 50)
    assert resolve_options(prior, "dds", "ct-sparse-view").choice_steps is None
    assert resolve_options(prior, "dds", "ct-mar", choice_steps=50).choice_steps == 50


def test_a_new_entry_keeps_the_values_it_was_tuned_under(tmp_path):
    """Re-tuning lam under a hand-set choice_steps keeps choice_steps and its note; new weights start afresh."""
    path = tmp_path / "p.profile.json"
    save_profile(path, "ct", "dds", {"values": {"refine_tv": 1e-5, "choice_steps": 25}, "prior_sha256": "abc",
                                     "choice_steps_source": "set by hand"})
    save_profile(path, "ct", "dds", {"values": {"refine_tv": 2e-5}, "prior_sha256": "abc"})
    entry = read_profile(path)["ct"]["dds"]
    assert entry["values"] == {"refine_tv": 2e-5, "choice_steps": 25} and entry["carried"] == ["choice_steps"]
    assert entry["choice_steps_source"] == "set by hand"
    save_profile(path, "ct", "dds", {"values": {"refine_tv": 3e-5}, "prior_sha256": "new weights"})
    assert read_profile(path)["ct"]["dds"] == {"values": {"refine_tv": 3e-5}, "prior_sha256": "new weights"}


def test_profile_merges_into_the_prior_defaults(tmp_path):
    path = tmp_path / "p.profile.json"
    save_profile(path, "mri", "pc", {"values": {"lam": 0.5, "snr": 0.3}, "date": "d", "prior_sha256": "abc"})
    save_profile(path, "mri", "ald", {"values": {"lam": 0.6, "snr": 0.4}, "prior_sha256": "abc"})
    save_profile(path, "ct-sparse-view", "pc", {"values": {"lam": 0.7, "snr": 0.1}, "prior_sha256": "abc"})
    profile = read_profile(path)
    assert set(profile) == {"mri", "ct-sparse-view"} and set(profile["mri"]) == {"pc", "ald"}

    meta = {"id": "p", "weights": {"sha256": "abc"}, "defaults": {"mri": {"snr": 0.9, "lam": 0.9}},
            "defaults_source": "published values"}
    merged = apply_profile(meta, profile, path)
    prior = type("Prior", (), {"meta": merged})()
    unrefined = {"refine_tv": 0.0, "choice_steps": None}
    assert sampler_defaults(prior, "pc", "mri") == {"snr": 0.3, "lam": 0.5, **unrefined}
    assert sampler_defaults(prior, "ald", "mri") == {"snr": 0.4, "lam": 0.6, **unrefined}
    assert sampler_defaults(prior, "pc", "ct-sparse-view") == {"snr": 0.1, "lam": 0.7, **unrefined}
    assert merged["defaults_source"]["mri"]["pc"] == {"profile": str(path), "date": "d", "prior_sha256": "abc"}
    assert defaults_source(prior, "pc", "mri")["profile"] == str(path)
    assert defaults_source(prior, "ddim", "mri") == "published values"  # the metadata's note, for untuned samplers
    assert meta["defaults"] == {"mri": {"snr": 0.9, "lam": 0.9}}  # the input is left alone

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stale = apply_profile(dict(meta, weights={"sha256": "other"}), profile, path)
    assert "other weights" in str(caught[0].message)
    assert stale["defaults"] == meta["defaults"]

    assert profile_path(tmp_path / "ct-128.json") == tmp_path / "ct-128.profile.json"
    assert profile_path(tmp_path / "ct-128") == tmp_path / "ct-128.profile.json"
    path.write_text("[1, 2]")
    with pytest.raises(PriorError, match="prior profile"):
        read_profile(path)


# ---------------------------------------------------------------- the command line

def _val_set(path, modality="ct", n=3, size=32):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = np.stack([np.where(xx ** 2 + yy ** 2 < (0.4 * size) ** 2, 0.25 + 0.05 * i, 0.0) for i in range(n)])
    with h5py.File(path, "w") as handle:
        handle.create_dataset("val/images", data=images[:, None].astype(np.float32))
        handle.attrs["manifest"] = json.dumps({"modality": modality, "size": size})
    return path


def _prior_copy(tiny_priors, modality, folder):
    """A private copy of the tiny prior (its profile is written next to it): the path of its .json."""
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_priors[modality].replace(".json", suffix), folder)
    return str(folder / f"tiny-{modality}-32.json")


def test_recon_tune_ct_writes_a_profile_that_recon_ct_uses_and_resumes(tiny_priors, tmp_path, capsys):
    prior = _prior_copy(tiny_priors, "ct", tmp_path)
    val = _val_set(tmp_path / "val.h5")
    out = tmp_path / "tune"
    command = ["tune", "ct", "--projections", "8", "--val", str(val), "--n", "2", "--prior", prior,
               "--sampler", "pc", "--steps", "2", "-o", str(out)]
    assert main([*command, "--calls", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["call 1/3", "call 2/3", "call 3/3"]
    report = json.loads((out / "tune.json").read_text())
    assert report["calls"] == 3 and len(report["history"]) == 3 and report["val_set"]["indices"] == [0, 2]
    assert report["start"] == {"lam": 0.841, "snr": 0.246}  # the published CT defaults come first
    assert report["best_score"] == max(h["score"] for h in report["history"])
    assert (out / "convergence.png").stat().st_size > 0
    profile = read_profile(tmp_path / "tiny-ct-32.profile.json")
    entry = profile["ct-sparse-view"]["pc"]
    assert entry["values"] == report["best"] and entry["steps"] == 2 and entry["metric"] == "ssim"
    assert entry["source"].startswith("recon tune ct") and entry["val_set"]["sha256"]

    image = tmp_path / "slice.npy"
    np.save(image, np.pad(np.full((16, 16), 40.0, np.float32), 8, constant_values=-1000.0))  # HU
    assert main(["ct", "--method", "score", "--sampler", "pc", "--projections", "8", "--prior", prior, "--steps", "2",
                 "--quiet",
                 str(image), "-o", str(tmp_path / "ct")]) == 0
    used = json.loads((tmp_path / "ct" / "metrics.json").read_text())["parameters"]
    assert (used["lam"], used["snr"]) == (entry["values"]["lam"], entry["values"]["snr"])

    assert main([*command, "--calls", "4", "--quiet"]) == 0  # resumes: one more call
    resumed = json.loads((out / "tune.json").read_text())
    assert len(resumed["history"]) == 4 and resumed["history"][:3] == report["history"]
    assert main([*command[:-2], "-o", str(out), "--calls", "5", "--metric", "psnr"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_recon_tune_mri_holdout_and_mar(tiny_priors, tmp_path, capsys):
    prior = _prior_copy(tiny_priors, "mri", tmp_path)
    val = _val_set(tmp_path / "val.h5", "mri", n=1)
    assert main(["tune", "mri", "--accel", "4", "--val", str(val), "--prior", prior, "--sampler", "pc", "--steps", "2",
                 "--calls", "2",
                 "--holdout", "--holdout-every", "2", "--lam", "0.9", "--no-save", "--quiet",
                 "-o", str(tmp_path / "mri")]) == 0
    report = json.loads((tmp_path / "mri" / "tune.json").read_text())
    assert report["objective"] == "-holdout_error" and report["best_score"] < 0 and report["profile"] is None
    assert set(report["best"]) == {"lam", "snr"} and report["best"]["lam"] == 0.9
    assert set(report["ground_truth_check"]) == {"metric", "at_best", "at_start"}
    assert not (tmp_path / "tiny-mri-32.profile.json").exists()

    ct_prior = _prior_copy(tiny_priors, "ct", tmp_path)
    ct_val = _val_set(tmp_path / "ct.h5", "ct", n=1)
    assert main(["tune", "mar", "--val", str(ct_val), "--prior", ct_prior, "--sampler", "pc", "--steps", "2", "--calls", "1",
                 "--quiet", "-o", str(tmp_path / "mar")]) == 0
    assert "ct-mar" in read_profile(tmp_path / "tiny-ct-32.profile.json")


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "langevin"], "cannot be tuned"),
    (["--sampler", "dds", "--start-sigma", "500"], "--start-sigma: must lie in"),
    (["--eta", "0.5"], "pc does not use eta"),
    (["--modality-mismatch"], "not ct"),
    (["--lam", "1.5"], "--lam"),
    (["--sampler", "ddim", "--start-from", "cs-tv"], "--start-from: needs --start-sigma"),
])
def test_recon_tune_input_errors(tiny_priors, tmp_path, capsys, extra, message):
    prior = _prior_copy(tiny_priors, "ct", tmp_path)
    val = _val_set(tmp_path / "val.h5", "mri" if extra == ["--modality-mismatch"] else "ct", n=1)
    extra = [] if extra == ["--modality-mismatch"] else extra
    assert main(["tune", "ct", "--val", str(val), "--prior", prior, "--sampler", "pc", "--steps", "2", "--calls", "1",
                 "--quiet", "-o", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()  # refused before any output


def test_initial_points_extend_and_start_with_the_clipped_defaults():
    from recon.tuning import initial_points

    space = {"lam": (0.0, 1.0), "snr": (0.2, 0.8)}
    start = {"lam": 0.9, "snr": 0.1}
    short, long = initial_points(space, 3, 5, start), initial_points(space, 6, 5, start)
    assert short[0] == {"lam": 0.9, "snr": 0.2} and long[:3] == short
    assert all(0 <= p["lam"] <= 1 and 0.2 <= p["snr"] <= 0.8 for p in long)


def test_recon_tune_dds_saves_its_steps_and_warm_start_as_the_defaults(tiny_priors, tmp_path, capsys):
    prior = _prior_copy(tiny_priors, "ct", tmp_path)
    val = _val_set(tmp_path / "val.h5", "ct", n=1)
    command = ["tune", "ct", "--projections", "8", "--val", str(val), "--prior", prior, "--sampler", "dds",
               "--start-from", "fista-tv", "--steps", "3", "--calls", "2", "--quiet", "-o", str(tmp_path / "tune")]
    assert main([*command, "--save-steps"]) == 0
    report = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert report["start"]["eta"] == 1.0 and report["start"]["start_sigma"] == report["space"]["start_sigma"][1]
    values = read_profile(tmp_path / "tiny-ct-32.profile.json")["ct-sparse-view"]["dds"]["values"]
    assert values == {**report["best"], "steps": 3} and values["start_from"] == "fista-tv"

    image = tmp_path / "slice.npy"
    np.save(image, np.pad(np.full((16, 16), 40.0, np.float32), 8, constant_values=-1000.0))  # HU
    assert main(["ct", "--sampler", "dds", "--projections", "8", "--prior", prior, "--quiet", str(image),
                 "-o", str(tmp_path / "ct")]) == 0
    used = json.loads((tmp_path / "ct" / "metrics.json").read_text())["parameters"]
    assert used["steps"] == 3 and used["nfe"] == 3 and used["start_sigma"] == values["start_sigma"]
    assert used["start_from"] == "fista-tv"

    assert main([*command[:-2], "-o", str(tmp_path / "other"), "--save-steps", "--no-save"]) == 2
    assert "--save-steps" in capsys.readouterr().err

    # retuned without --start-from: the profile's warm start is held and saved with the new values
    again = [arg for arg in command[:-2] if arg not in ("--start-from", "fista-tv")]
    assert main([*again, "-o", str(tmp_path / "again")]) == 0
    report = json.loads((tmp_path / "again" / "tune.json").read_text())
    assert report["fixed"] == {"start_from": "fista-tv"}
    assert read_profile(tmp_path / "tiny-ct-32.profile.json")["ct-sparse-view"]["dds"]["values"]["start_from"] == "fista-tv"


def test_refine_tv_is_tuned_on_request_on_the_real_validation_slices(tiny_priors, tmp_path):
    from recon.data import real_slices

    assert search_space("dds", "ct-sparse-view", {"eta": 1.0, "start_sigma": 0.1},
                        names=("eta", "start_sigma", "refine_tv")) == {"refine_tv": (1e-6, 1e-3)}
    with pytest.raises(InputError, match="--tune: pc tunes lam, snr, refine_tv, not eta"):
        search_space("pc", "mri", names=("eta",))
    prior = _prior_copy(tiny_priors, "ct", tmp_path)
    assert main(["tune", "ct", "--projections", "12", "--val", "real", "--prior", prior, "--sampler", "dds",
                 "--steps", "2", "--eta", "1", "--start-sigma", "0.1", "--tune", "refine_tv", "--calls", "2",
                 "--quiet", "-o", str(tmp_path / "tune")]) == 0
    report = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert report["val_set"] == {"real_slices": real_slices.names("ct", "validation"), "size": 32}
    assert set(report["space"]) == {"refine_tv"} and 1e-6 <= report["best"]["refine_tv"] <= 1e-3
    entry = read_profile(tmp_path / "tiny-ct-32.profile.json")["ct-sparse-view"]["dds"]
    assert entry["values"]["eta"] == 1 and entry["values"]["refine_tv"] == report["best"]["refine_tv"]
