"""`recon bench` and recon.bench: problems, methods, rows, reports and plots on tiny data."""
import json

import h5py
import numpy as np
import pytest
import torch

from recon.bench import Method, evaluate, markdown, steps_for_nfe, target_check, target_markdown
from recon.cli import main
from recon.errors import InputError
from recon.tasks import MetalArtifacts, SparseViewCT, UndersampledMRI

pytestmark = pytest.mark.usefixtures("one_thread")


def disc_images(n: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = []
    for k in range(n):
        image = np.where(xx**2 + yy**2 < (0.4 * size) ** 2, 0.25, 0.0)
        image[(xx - 2 - k) ** 2 + yy**2 < 6] = 0.45
        images.append(image)
    return np.asarray(images, dtype=np.float32)[:, None]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.h5"
    with h5py.File(path, "w") as f:
        f["test/images"] = disc_images(3, 32)
    return path


def test_method_parsing_and_budgets():
    assert Method.parse("fista-tv") == Method("fista-tv")
    assert Method.parse("score:pc:2000") == Method("score:pc:2000", "pc", 2000)
    assert Method.parse("score").is_score and Method.parse("score").sampler is None
    for bad in ("fista", "score:ddpm", "score:pc:many"):
        with pytest.raises(InputError):
            Method.parse(bad)
    # pc: N (1 corrector + 1 predictor) + 1; ald/langevin: 3 N + 1; the fast samplers: N
    assert [steps_for_nfe(s, 2000) for s in ("pc", "score-sde", "ald", "langevin", "dds", "ddim")] == \
        [999, 999, 666, 666, 2000, 2000]


def test_evaluate_scores_every_method_on_every_problem(tiny_priors, dataset):
    import priors

    images = torch.from_numpy(disc_images(3, 32))
    rows = evaluate(images, [SparseViewCT(projections=8), SparseViewCT(projections=16)],
                    [Method("fbp"), Method("sirt"), Method.parse("score:dds:4")], priors.load(tiny_priors["ct"]),
                    batch=2, progress=False)
    assert [(r["setting"], r["method"]) for r in rows] == [(v, m) for v in (8, 16)
                                                           for m in ("fbp", "sirt", "score:dds:4")]
    for r in rows:
        assert len(r["psnr"]) == len(r["ssim"]) == 3 and np.isfinite(r["psnr"]).all()
        assert r["nfe"] == (4 if r["method"].startswith("score") else 0)
    fbp = {r["setting"]: np.mean(r["psnr"]) for r in rows if r["method"] == "fbp"}
    assert fbp[16] > fbp[8]  # more views, better FBP
    table = markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "± " in table
    with pytest.raises(InputError, match="prior"):
        evaluate(images, [UndersampledMRI(accel=4)], [Method.parse("score")], None, progress=False)


def test_mar_problem_leaves_the_metal_out_of_the_metrics():
    images = torch.from_numpy(disc_images(1, 64)) + 0.05
    problem = MetalArtifacts(simulate=True).problem(images, 0)
    assert problem.reference.shape == (1, 1, 64, 64) and problem.keep.shape[-2:] == (64, 64)
    assert 0 < (~np.asarray(problem.keep)).sum() < 0.2 * 64 * 64  # some metal pixels, excluded
    assert not bool(problem.measurement.mask(torch.empty(1)).all())  # the metal trace is unmeasured


@pytest.mark.parametrize("suite, plot", [("samplers", None), ("nfe", "nfe.png"), ("tables", "measurements.png")])
def test_cli_writes_report_results_and_plots(tiny_priors, dataset, tmp_path, monkeypatch, suite, plot):
    out = tmp_path / suite
    argv = ["bench", suite, "--ct", str(dataset), "--mri", str(dataset), "--n", "2", "--ct-prior", tiny_priors["ct"],
            "--mri-prior", tiny_priors["mri"], "-o", str(out), "--quiet"]
    argv += {"samplers": ["--nfe", "7"], "nfe": ["--nfe-list", "3", "7", "--reference-nfe", "9"], "tables": ["--no-mar"]}[suite]
    if suite == "tables":  # keep the score runs tiny: the default sampler at its default steps is too slow here
        import recon.commands.bench as verb

        monkeypatch.setattr(verb, "TABLE_METHODS", {**verb.TABLE_METHODS, "ct-sparse-view": ("fbp", "score:dds:3"),
                                                    "mri": ("zero-filled", "score:dds:3")})
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["suite"] == suite and results["priors"] == {"ct": "tiny-ct-32", "mri": "tiny-mri-32"}
    assert results["slices"] == {"ct": 2, "mri": 2} and results["rows"]
    assert "| task |" in (out / "report.md").read_text()
    if plot:
        assert (out / plot).stat().st_size > 5000
    if suite == "nfe":  # the reference run and the target check against it
        assert {r["method"] for r in results["rows"]} >= {"score:pc:9", "score:dds:3"}
        assert {(r["task"], r["sampler"]) for r in results["target"]} == \
            {(t, s) for t in ("ct-sparse-view", "mri") for s in ("dds", "ddim", "pc")}
        assert "Target: within 0.3 dB" in (out / "report.md").read_text() and results["target_reference"] == "score:pc:9"


def test_cli_needs_a_dataset(tmp_path):
    assert main(["bench", "tables", "-o", str(tmp_path / "x")]) == 2
    assert main(["bench", "tables", "--ct", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x")]) == 2


def test_tables_leave_out_untrained_supervised_networks(tmp_path, monkeypatch, capsys):
    import recon.commands.bench as verb
    import recon.supervised.baseline as supervised

    monkeypatch.setattr(supervised, "SUPERVISED_DIR", tmp_path)
    assert [m.name for m in verb._table_methods("ct-sparse-view")] == ["fbp", "fista-tv", "sirt", "score"]
    assert "fbpconvnet left out" in capsys.readouterr().err
    (tmp_path / "fbpconvnet-ct-23.json").write_text("{}")
    assert "fbpconvnet" in [m.name for m in verb._table_methods("ct-sparse-view")]


def test_tables_score_budget_follows_nfe():
    import recon.commands.bench as verb
    from recon.samplers import DEFAULT_SAMPLER

    methods = verb._table_methods("ct-mar", 200)
    assert methods[-1] == Method(f"score:{DEFAULT_SAMPLER}:200", DEFAULT_SAMPLER, 200)
    assert verb._table_methods("ct-mar")[-1] == Method("score", None, None)


def test_target_check_finds_the_cheapest_run_within_the_target():
    def row(method, nfe, p, s):
        return {"task": "mri", "setting": 8, "label": "8x", "method": method, "psnr": [p - 0.1, p + 0.1],
                "ssim": [s, s], "seconds": 1.0, "nfe": nfe}

    rows = [row("zero-filled", 0, 17.0, 0.5), row("score:pc:2000", 1999, 24.0, 0.84),
            row("score:dds:20", 20, 23.0, 0.84), row("score:dds:50", 50, 23.71, 0.836),  # 0.29 dB, 0.004 below
            row("score:dds:100", 100, 25.0, 0.90), row("score:ddim:50", 50, 23.8, 0.834),  # SSIM 0.006 below
            row("score:pc:100", 100, 23.8, 0.85)]
    found = {r["sampler"]: r for r in target_check(rows, "score:pc:2000")}
    assert set(found) == {"dds", "ddim", "pc"}
    assert found["dds"]["cheapest"]["method"] == "score:dds:50" and found["dds"]["met_within"]
    assert found["ddim"]["cheapest"] is None and not found["ddim"]["met_within"]
    assert found["pc"]["cheapest"]["nfe"] == 100 and not found["pc"]["met_within"]
    assert found["dds"]["reference"] == pytest.approx({"psnr": 24.0, "ssim": 0.84})
    table = target_markdown(list(found.values()), "score:pc:2000")
    assert "| mri | dds | 24.00 / 0.840 | score:dds:50 (50 NFE) | 23.71 / 0.836 | yes |" in table
