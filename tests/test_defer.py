"""Deferring to the data (recon.samplers.defer): the anchored TV refinement and its held-out choice of the anchor weight mu."""
import dataclasses

import pytest
import torch

from priors.analytic import GaussianPrior, squared_exponential_basis
from recon.baselines.fista_tv import fista_tv, operator_norm_sq, tv_objective
from recon.samplers import defer, reconstruct, resolve_options
from recon.tasks import SparseViewCT, UndersampledMRI

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
LAM = 2e-5


def disk_phantom(size: int = SIZE, shift: float = 0.0) -> torch.Tensor:
    """(1, 1, size, size): a water disk with a bone insert (model units), the insert moved by ``shift`` px."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    body = (xx ** 2 + yy ** 2 < (0.4 * size) ** 2).float() * 0.25
    insert = ((xx - 0.15 * size - shift) ** 2 + yy ** 2 < (0.08 * size) ** 2).float() * 0.2
    return (body + insert).view(1, 1, size, size)


def sparse_problem(x: torch.Tensor, views: int = 12):
    problem = SparseViewCT(projections=views).problem(x, 0)
    return problem.measurement, problem.y, problem.holdout


def test_a_large_anchor_weight_returns_the_anchor_and_zero_minimises_the_tv_objective():
    x = disk_phantom()
    m, y, _ = sparse_problem(x)
    anchor = x + 0.02 * torch.randn_like(x)
    pinned = defer.anchored_tv(m, y, anchor, LAM, torch.tensor([1e6]), 20)
    assert float((pinned - anchor.clamp(min=0)).abs().max()) < 1e-4  # the prox is (v + g a)/(1 + g): a to 1/g
    free = defer.anchored_tv(m, y, anchor, LAM, torch.tensor([0.0]), 300)
    reference = fista_tv(m, y, lam=LAM, n_iter=300)
    lipschitz = operator_norm_sq(m, x)
    # mu = 0 is FISTA-TV's problem started elsewhere: the same objective value, to FISTA's O(1/k^2) accuracy
    f_free, f_ref = (float(tv_objective(m, y, image, LAM, lipschitz)) for image in (free, reference))
    assert abs(f_free - f_ref) <= 0.01 * f_ref


def test_each_image_of_a_batch_gets_its_own_anchor_weight():
    x = torch.cat([disk_phantom(), disk_phantom(shift=3.0)])
    m, y, _ = sparse_problem(x)
    anchor = x.flip(0)  # each image anchored at the other one
    mu = torch.tensor([0.0, 1e-2])
    batch = defer.anchored_tv(m, y, anchor, LAM, mu, 50)
    for i in range(2):
        single = defer.anchored_tv(m, y[i:i + 1], anchor[i:i + 1], LAM, mu[i:i + 1], 50)
        # float32 sums in another order over 50 iterations of a contraction: a few ulps of the image scale
        assert torch.allclose(batch[i:i + 1], single, atol=1e-5)


def test_the_held_out_lines_trust_a_right_anchor_and_overrule_a_wrong_one():
    x = disk_phantom()
    m, y, (axis, keep) = sparse_problem(x, views=24)
    full = m.P_inv(y)
    split = (*defer.holdout_split(m, full, axis, defer.HOLDOUT_EVERY, keep), full)
    _, record = defer.choose_anchor_weight(m, x, LAM, split)
    assert record["refine_mu"] == [max(defer.ANCHORS)]
    wrong_anchor = disk_phantom(shift=-8.0)  # the insert on the other side: the held-out views see it
    _, record = defer.choose_anchor_weight(m, wrong_anchor, LAM, split)
    assert record["refine_mu"][0] <= sorted(defer.ANCHORS)[1]  # mu = 0 or the next: (almost) plain TV


@pytest.fixture(scope="module")
def prior():
    vecs, vals = squared_exponential_basis(SIZE, 2.5, 0.3, 0.02)
    return GaussianPrior(torch.full((SIZE * SIZE,), 0.2), vecs, vals)


def test_reconstruct_with_refine_tv_runs_the_sampler_twice_and_records_the_choice(prior):
    x = disk_phantom()
    m, y, holdout = sparse_problem(x)
    options = resolve_options(prior, "dds", None, steps=4)
    plain = reconstruct(prior, m, y, options, progress=False)
    deferred = reconstruct(prior, m, y, resolve_options(prior, "dds", None, steps=4, refine_tv=LAM),
                           progress=False, holdout=holdout)
    assert deferred.nfe == 2 * plain.nfe
    assert deferred.params["refine_tv"] == LAM and deferred.params["refine_mu"][0] in defer.ANCHORS
    assert deferred.mean.shape == plain.mean.shape
    quick_choice = reconstruct(prior, m, y, resolve_options(prior, "dds", None, steps=4, refine_tv=LAM,
                                                            choice_steps=2), progress=False, holdout=holdout)
    assert quick_choice.nfe == plain.nfe + 2 and quick_choice.params["steps"] == 4
    # Noiseless data: alone the sampler projects onto them; before the refinement, which fits them, it does not.
    assert plain.params["final_projection"] is True and deferred.params["final_projection"] is False
    projecting = resolve_options(prior, "dds", None, steps=4, refine_tv=LAM, final_projection=True)
    asked = reconstruct(prior, m, y, projecting, progress=False, holdout=holdout)
    assert asked.params["final_projection"] is True
    with pytest.raises(ValueError, match="holdout"):
        reconstruct(prior, m, y, resolve_options(prior, "dds", None, steps=4, refine_tv=LAM), progress=False)


def test_with_every_measured_line_protected_the_data_decide(prior):
    """Nothing can be held out, so nothing vouches for the prior's image: mu = 0, FISTA-TV started at the
    sampler's result, and the record says why."""
    task = UndersampledMRI(accel=24)
    problem = task.problem(torch.rand(1, 1, SIZE, SIZE), 0)  # 24x on 32 columns: the centre alone
    options = resolve_options(prior, "dds", None, steps=3, refine_tv=1e-4)
    result = reconstruct(prior, problem.measurement, problem.y, options, progress=False, holdout=problem.holdout)
    assert result.params["refine"].startswith("mu = 0, nothing to hold out: too few measured lines")
    assert result.params["refine_mu"] == [0.0] and result.nfe == 3
    plain = reconstruct(prior, problem.measurement, problem.y,
                        dataclasses.replace(options, refine_tv=0.0, final_projection=False), progress=False)
    expected = defer.anchored_tv(problem.measurement, problem.y, plain.mean, 1e-4, torch.zeros(1),
                                 defer.FINAL_ITERATIONS)
    assert torch.allclose(result.mean, expected, atol=1e-5)


def test_the_mri_task_protects_its_fully_sampled_centre():
    problem = UndersampledMRI(accel=4).problem(torch.rand(1, 1, 64, 64), 0)
    axis, keep = problem.holdout
    full = problem.measurement.P_inv(problem.y)
    _, held = defer.holdout_split(problem.measurement, full, axis, defer.HOLDOUT_EVERY, keep)
    columns = torch.nonzero(held.expand(full.shape).any(dim=-2).flatten()).flatten()
    assert axis == -1 and keep > 0 and len(columns) > 0
    assert all(abs(int(c) - 32) > keep // 2 for c in columns)


def test_a_negative_refine_tv_is_refused_by_name():
    from recon.errors import InputError

    with pytest.raises(InputError, match="--refine-tv: must be >= 0"):
        resolve_options(None, "dds", None, refine_tv=-1.0)
    with pytest.raises(InputError, match="--choice-steps: must be an integer >= 1"):
        resolve_options(None, "dds", None, choice_steps=0)


@pytest.mark.parametrize("kind", ["sparse views", "metal traces"])
def test_the_batched_grid_chooses_as_one_refinement_per_weight_would(kind):
    x = torch.cat([disk_phantom(), disk_phantom(shift=3.0)])
    if kind == "sparse views":
        m, y, (axis, keep) = sparse_problem(x, views=24)
    else:  # one metal trace per image: the stacked measurement repeats the masks
        from operators import metal_trace_ct

        metal = torch.zeros_like(x, dtype=torch.bool)
        metal[0, 0, 10:12, 10:12], metal[1, 0, 20:22, 14:16] = True, True
        m, axis, keep = metal_trace_ct(metal), -2, 0
        y = m.A(x)
    full = m.P_inv(y)
    fit, held = defer.holdout_split(m, full, axis, defer.HOLDOUT_EVERY, keep)
    anchor = torch.cat([x[:1], disk_phantom(shift=-8.0)])  # one right anchor, one wrong
    _, record = defer.choose_anchor_weight(m, anchor, LAM, (fit, held, full))
    one_by_one = []
    for i in range(2):
        part = (lambda t: t[i:i + 1] if t.shape[0] > 1 else t)
        single = type(m)(m.transform, type(m.sampling)(part(m.sampling.mask)) if kind != "sparse views" else m.sampling)
        fit_i, held_i = defer.holdout_split(single, full[i:i + 1], axis, defer.HOLDOUT_EVERY, keep)
        one_by_one.append(defer.choose_anchor_weight(single, anchor[i:i + 1], LAM, (fit_i, held_i, full[i:i + 1]))[1])
    assert record["refine_mu"] == [r["refine_mu"][0] for r in one_by_one]
    assert record["refine_mu"][0] > record["refine_mu"][1]
