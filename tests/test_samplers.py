"""Sampler mechanics: registry, NFE, seeds, defaults, data-consistency forms, errors, devices."""
import pytest
import torch

import operators
from conftest import cuda_only
from operators.masks import BooleanMask
from priors.analytic import GaussianPrior, squared_exponential_basis
from recon.errors import InputError
from recon.samplers import SAMPLERS, reconstruct, resolve_options, sampler_defaults
from recon.samplers.consistency import DataConsistency, noisy_measurement, project, proximal_step

def solve(prior, m, y, sampler="dds", task=None, *, n_samples=1, seed=0, callback=None, progress=False, **options):
    """reconstruct() with the options resolved as the commands resolve them."""
    return reconstruct(prior, m, y, resolve_options(prior, sampler, task, **options), n_samples=n_samples, seed=seed,
                       progress=progress, callback=callback)


pytestmark = pytest.mark.usefixtures("one_thread")


SIZE = 16


class CountingPrior:
    """Wraps a prior and counts every image it scores."""

    def __init__(self, prior):
        self.prior, self.sde, self.meta, self.images, self.grad_enabled = prior, prior.sde, prior.meta, 0, False

    def score(self, x, sigma):
        self.images += x.shape[0]
        self.grad_enabled |= torch.is_grad_enabled()
        return self.prior.score(x, sigma)


@pytest.fixture(scope="module")
def prior():
    vecs, vals = squared_exponential_basis(SIZE, 2.5, 0.3, 0.02)
    return GaussianPrior(torch.full((SIZE * SIZE,), 0.2), vecs, vals,
                         defaults={"mri": {"snr": 0.3, "lam": 0.9, "langevin": {"snr": 0.2, "rho": 0.5}}})


def mri_problem(prior, batch=2, noise_std=0.0):
    m = operators.undersampled_mri(SIZE, 4, noise_std=noise_std)
    return m, m.measure(prior.sample(batch, torch.Generator().manual_seed(5)).float(),
                        torch.Generator().manual_seed(6))


def test_registry_holds_the_paper_samplers_and_the_fast_ones():
    assert set(SAMPLERS) == {"pc", "ald", "langevin", "score-sde", "dds", "ddim"}


@pytest.mark.parametrize("sampler,levels_factor", [("pc", 2), ("score-sde", 2), ("ald", 3), ("langevin", 3),
                                                   ("dds", 1), ("ddim", 1)])
def test_every_sampler_runs_and_counts_network_evaluations_the_same_way(prior, sampler, levels_factor):
    m, y = mri_problem(prior)
    counting = CountingPrior(prior)
    steps, k = 7, 3
    result = solve(counting, m, y, sampler, steps=steps, n_samples=k, progress=False)
    # corrector_steps defaults: 1 (pc, score-sde: plus one predictor call) and 3 (ald, langevin);
    # the fast samplers evaluate once per level and end on their own denoised estimate
    final_denoise = 1 if SAMPLERS[sampler].denoise_at_end else 0
    assert result.nfe == steps * levels_factor + final_denoise
    assert counting.images == result.nfe * k * y.shape[0]  # per image per sample
    assert result.params["nfe"] == result.nfe and result.params["sampler"] == sampler
    assert result.samples.shape == (k, 2, 1, SIZE, SIZE) and result.mean.shape == (2, 1, SIZE, SIZE)
    assert torch.isfinite(result.samples).all()
    assert torch.allclose(result.std, result.samples.std(0)) and torch.allclose(result.mean, result.samples.mean(0))
    assert not counting.grad_enabled  # score calls build no autograd graph


def test_corrector_steps_change_the_count(prior):
    m, y = mri_problem(prior, batch=1)
    assert solve(prior, m, y, "pc", steps=5, corrector_steps=3, progress=False).nfe == 5 * 4 + 1
    assert solve(prior, m, y, "ald", steps=5, corrector_steps=1, progress=False).nfe == 5 + 1


def test_same_seed_same_output_and_different_seed_different_output(prior):
    m, y = mri_problem(prior)
    for sampler in SAMPLERS:
        a = solve(prior, m, y, sampler, steps=6, seed=3, progress=False)
        b = solve(prior, m, y, sampler, steps=6, seed=3, progress=False)
        c = solve(prior, m, y, sampler, steps=6, seed=4, progress=False)
        assert torch.equal(a.mean, b.mean)
        assert not torch.allclose(a.mean, c.mean)
    assert a.std is None and a.samples.shape[0] == 1


def test_defaults_come_from_the_prior_then_the_published_values(prior):
    m, y = mri_problem(prior, batch=1)
    params = solve(prior, m, y, "pc", steps=2, task="mri", progress=False).params
    assert (params["snr"], params["lam"]) == (0.3, 0.9)
    params = solve(prior, m, y, "langevin", steps=2, task="mri", progress=False).params
    assert (params["snr"], params["rho"]) == (0.2, 0.5)
    unrefined = {"refine_tv": 0.0, "choice_steps": None}
    assert sampler_defaults(prior, "pc", "ct-sparse-view") == {"snr": 0.246, "lam": 0.841, **unrefined}
    assert sampler_defaults(prior, "score-sde", "mri") == {"snr": 0.608, "rho": 1.231, **unrefined}
    params = solve(prior, m, y, "pc", steps=2, task="mri", snr=0.1, lam=0.5, progress=False).params
    assert (params["snr"], params["lam"], params["form"]) == (0.1, 0.5, "projection")
    assert {"sampler", "steps", "corrector_steps", "snr", "lam", "form", "seed", "n_samples", "sigma_max",
            "sigma_min", "prior", "final_projection", "device", "nfe"} <= set(params)


def test_noisy_data_skips_the_final_projection(prior):
    m, y = mri_problem(prior, noise_std=0.05)
    result = solve(prior, m, y, "pc", steps=5, lam=0.8, progress=False)
    assert result.params["final_projection"] is False


def test_callback_sees_every_level(prior):
    m, y = mri_problem(prior, batch=1)
    seen = []
    solve(prior, m, y, "pc", steps=4, progress=False, callback=lambda i, n, x: seen.append((i, n, x.shape)))
    assert [s[:2] for s in seen] == [(i, 4) for i in range(4)]


def test_per_image_masks_run_samples_one_at_a_time(prior):
    # A metal-trace-like mask differs per image, so K samples cannot share one batch.
    full = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) > 0.5
    m = operators.Measurement(operators.Fourier(), BooleanMask(full))
    y = m.measure(prior.sample(2, torch.Generator().manual_seed(1)).float())
    result = solve(prior, m, y, "pc", steps=5, lam=1.0, n_samples=3, progress=False)
    assert result.samples.shape == (3, 2, 1, SIZE, SIZE)
    for sample_k in result.samples:
        assert float((m.A(sample_k) - y).norm() / y.norm()) < 1e-3


def test_forms_agree_for_fourier_and_differ_for_fbp():
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    truth = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    for m, same in ((operators.undersampled_mri(SIZE, 4), True), (operators.sparse_view_ct(SIZE, 5), False)):
        y = m.A(truth)
        y_t = noisy_measurement(m, y, 0.3, x, torch.Generator().manual_seed(2))
        projection = proximal_step(m, x, y_t, 0.7, "projection")
        residual = proximal_step(m, x, y_t, 0.7, "residual")
        assert torch.allclose(projection, residual, atol=1e-5) == same
        assert torch.allclose(proximal_step(m, x, y_t, 0.0, "residual"), x)
    m = operators.undersampled_mri(SIZE, 4)
    assert DataConsistency(m, m.A(truth), 0.0)(x, 1.0) is x
    y_t = noisy_measurement(m, m.A(truth), 0.3, x, torch.Generator().manual_seed(2))
    # lam = 1 with T^-1 = Re F^-1 puts k-space exactly on y_t where a column's conjugate partner
    # (index (W - k) mod W of the centred FFT) is measured too; on unpaired columns only halfway.
    columns = m.mask(y_t)[0, 0, 0]
    paired = columns & columns[(SIZE - torch.arange(SIZE)) % SIZE]
    assert 0 < int(paired.sum()) < int(columns.sum())
    fitted = m.A(proximal_step(m, x, y_t, 1.0, "residual"))
    assert torch.allclose(fitted[..., paired], y_t[..., paired], atol=1e-5)
    assert not torch.allclose(fitted, y_t, atol=1e-3)


def test_ct_runs_the_projection_form_with_the_hann_window_whatever_the_measurement_window(prior):
    truth = prior.sample(1, torch.Generator().manual_seed(0)).float()
    for window in ("ram-lak", "shepp-logan", "hann"):
        m = operators.sparse_view_ct(SIZE, 4, window=window)
        params = solve(prior, m, m.A(truth), "pc", steps=2, progress=False).params
        assert (params["form"], params["fbp_window"]) == ("projection", "hann")
        assert m.transform.window == window  # the caller's measurement is left as it was
    m = operators.sparse_view_ct(SIZE, 4)
    assert solve(prior, m, m.A(truth), "pc", steps=2, form="residual", progress=False).params["fbp_window"] \
        == "ram-lak"
    with pytest.raises(InputError, match="hann"):
        solve(prior, m, m.A(truth), "pc", steps=2, form="projection", progress=False)


def test_project_solves_the_constraint_and_stays_close():
    size = 32
    m = operators.sparse_view_ct(size, 8)
    truth = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    y = m.A(truth)
    x = truth + 0.05 * torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(1))
    projected, info = project(m, x, y, tol=1e-6)
    assert info["relative_residual"] < 1e-4
    assert float((projected - truth).norm()) <= float((x - truth).norm())  # a projection onto a set holding truth
    assert projected.dtype == torch.float32


def test_bad_options_are_input_errors(prior):
    m, y = mri_problem(prior, batch=1)
    for kwargs in ({"sampler": "ddpm"}, {"lam": 1.5}, {"sampler": "dds", "eta": 1.5},
                   {"sampler": "dds", "cg_steps": -1}, {"sampler": "dds", "gamma": -1.0}, {"steps": 0}, {"n_samples": 0}, {"form": "other"},
                   {"snr": -1.0}, {"step_norm": "pixel"}):
        with pytest.raises(InputError):
            solve(prior, m, y, **{"steps": 2, "progress": False, **kwargs})
    with pytest.raises(InputError, match="dds does not use snr"):
        solve(prior, m, y, "dds", steps=2, snr=0.2, progress=False)


def test_a_measurement_on_a_coarser_grid_than_the_prior_is_sampled_on_the_prior_grid(prior):
    """An 8² measurement with the 16² prior: the prior samples on its grid through A R (R the 2x2 average) and
    the result is on the measurement's grid."""
    smaller = operators.undersampled_mri(8, 4)
    result = solve(prior, smaller, smaller.A(torch.full((1, 1, 8, 8), 0.5)), steps=2, progress=False)
    assert result.mean.shape[-2:] == (8, 8) and torch.isfinite(result.mean).all()
    assert (result.params["prior_grid"], result.params["output_grid"]) == (16, 8)


class SigmaRecorder(CountingPrior):
    """Also records the noise level of every score call."""

    def __init__(self, prior):
        super().__init__(prior)
        self.sigmas = []

    def score(self, x, sigma):
        self.sigmas.append(float(sigma[0]))
        return super().score(x, sigma)


@pytest.mark.parametrize("sampler", ["dds", "ddim"])
def test_warm_start_begins_at_start_sigma_and_fits_the_data(prior, sampler):
    m, y = mri_problem(prior)
    recorder = SigmaRecorder(prior)
    result = solve(recorder, m, y, sampler, steps=6, start_sigma=0.5, progress=False)
    assert recorder.sigmas[0] == pytest.approx(0.5) and recorder.sigmas[-1] == pytest.approx(prior.sde.sigma_min, rel=1e-3)
    assert len(recorder.sigmas) == 6 and result.params["start_sigma"] == 0.5
    assert float((m.A(result.mean) - y).norm() / y.norm()) < 1e-3
    cold = SigmaRecorder(prior)
    solve(cold, m, y, sampler, steps=6, progress=False)
    assert cold.sigmas[0] == pytest.approx(prior.sde.sigma_max)
    for bad in (prior.sde.sigma_max * 2, 0.0):
        with pytest.raises(InputError, match="--start-sigma"):
            solve(prior, m, y, sampler, steps=2, start_sigma=bad, progress=False)
    with pytest.raises(InputError, match="pc does not use start_sigma"):
        solve(prior, m, y, "pc", steps=2, start_sigma=0.5, progress=False)


class FirstInputRecorder(CountingPrior):
    """Also keeps the images of the first score call."""

    def __init__(self, prior):
        super().__init__(prior)
        self.first = None

    def score(self, x, sigma):
        self.first = x.clone() if self.first is None else self.first
        return super().score(x, sigma)


def test_warm_start_adds_its_noise_to_the_chosen_first_reconstruction(prior):
    from recon.samplers.decomposed import warm_start_image

    m, y = mri_problem(prior)
    images = {name: warm_start_image(name, m, y) for name in ("cgls", "cs-tv")}
    assert float((images["cgls"] - images["cs-tv"]).pow(2).mean().sqrt()) > 0.05  # the noise below tells them apart
    for name, image in images.items():
        recorder = FirstInputRecorder(prior)
        result = solve(recorder, m, y, "dds", steps=3, start_sigma=0.02, start_from=name, progress=False)
        noise = (recorder.first - image) / 0.02
        assert abs(float(noise.std()) - 1) < 0.1 and abs(float(noise.mean())) < 0.1
        assert result.params["start_from"] == name
    assert solve(prior, m, y, "dds", steps=2, progress=False).params["start_from"] == "cgls"
    for options, message in (({"start_sigma": 0.5, "start_from": "nope"}, "--start-from: must be one of"),
                             ({"start_from": "cs-tv"}, "needs --start-sigma")):
        with pytest.raises(InputError, match=message):
            solve(prior, m, y, "dds", steps=2, progress=False, **options)
    with pytest.raises(InputError, match="--start-from li: li and nmar fill a metal trace"):
        solve(prior, m, y, "dds", steps=2, start_sigma=0.5, start_from="li", progress=False)
    with pytest.raises(InputError, match="pc does not use start_from"):
        solve(prior, m, y, "pc", steps=2, start_from="cgls", progress=False)


@cuda_only
def test_runs_on_the_measurement_device(prior):
    m, y = mri_problem(prior)
    a = solve(prior, m, y.cuda(), "pc", steps=5, seed=1, progress=False)
    b = solve(prior, m, y.cuda(), "pc", steps=5, seed=1, progress=False)
    assert a.mean.device.type == "cuda" and torch.equal(a.mean, b.mean)
    assert float((m.A(a.mean) - y.cuda()).norm() / y.norm()) < 1e-3
