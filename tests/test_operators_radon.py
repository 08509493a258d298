"""Radon transform: backends agree, adjoints are exact, FBP inverts, errors are clear."""
import math

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from conftest import cuda_only
from operators import ParallelBeamGeometry, Radon, sparse_view_ct
from operators.fbp import WINDOWS

BACKENDS = ("matrix", "astra", "torch")


def phantom(n: int, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(resize(shepp_logan_phantom(), (n, n), anti_aliasing=True), dtype=dtype)[None, None]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_geometry_defaults_cover_the_diagonal():
    g = ParallelBeamGeometry(128)
    assert g.n_angles == 128
    assert g.n_detectors >= math.ceil(math.sqrt(2) * 128)
    assert (g.n_detectors - 128) % 2 == 0
    assert np.allclose(g.angles()[1], math.pi / 128) and g.angles()[-1] < math.pi


@pytest.mark.parametrize("backend", ["astra", "torch"])
def test_backends_agree_with_the_matrix(backend):
    x = torch.rand(2, 1, 48, 48)
    y = torch.rand(2, 1, 48, ParallelBeamGeometry(48).n_detectors)
    ref, other = Radon(48, backend="matrix"), Radon(48, backend=backend)
    assert rel(other.forward(x), ref.forward(x)) < 1e-4
    assert rel(other.adjoint(y), ref.adjoint(y)) < 1e-4


@pytest.mark.parametrize("backend", ["matrix", "torch"])
def test_adjoint_identity_float64(backend):
    radon = Radon(32, n_angles=20, backend=backend)
    x = torch.rand(3, 1, 32, 32, dtype=torch.float64)
    y = torch.rand(3, 1, 20, radon.geometry.n_detectors, dtype=torch.float64)
    lhs = (radon.forward(x) * y).sum()
    rhs = (x * radon.adjoint(y)).sum()
    assert abs(float(lhs - rhs)) / abs(float(lhs)) < 1e-5


def test_astra_adjoint_identity():
    # astra computes in float32, so its adjoint holds to float32 precision
    radon = Radon(32, backend="astra")
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    y = torch.rand(1, 1, 32, radon.geometry.n_detectors, dtype=torch.float64)
    lhs, rhs = (radon.forward(x) * y).sum(), (x * radon.adjoint(y)).sum()
    assert abs(float(lhs - rhs)) / abs(float(lhs)) < 1e-5


def test_matrix_backend_gradient_uses_the_transpose():
    radon = Radon(24, backend="matrix")
    x = torch.rand(2, 1, 24, 24, requires_grad=True)
    w = torch.rand(2, 1, *radon.geometry.sino_shape)
    (radon.forward(x) * w).sum().backward()
    assert torch.allclose(x.grad, radon.adjoint(w), atol=1e-5)


def test_matrix_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RECON_CACHE", str(tmp_path))
    Radon(20, backend="matrix").forward(torch.rand(1, 1, 20, 20))
    files = list((tmp_path / "radon").glob("*.npz"))
    assert len(files) == 1
    again = Radon(20, backend="matrix")
    again.forward(torch.rand(1, 1, 20, 20))
    assert list((tmp_path / "radon").glob("*.npz")) == files


def test_auto_backend_uses_the_matrix_up_to_clinical_sizes_and_astra_beyond():
    assert Radon(64).backend == "matrix" and Radon(512).backend == "matrix"  # 512^2 full views fits the budget
    assert Radon(2048).backend == "astra"


@pytest.mark.parametrize("rows_budget", [0, 2**30], ids=["stacked", "own-rows"])
@pytest.mark.parametrize("size, n_angles", [(48, 0), (31, 0), (30, 0), (32, 20), (33, 17)])
def test_views_made_from_the_representatives_match_astra_for_any_view_set(size, n_angles, rows_budget, monkeypatch):
    monkeypatch.setattr("operators.sparse_matrix.ROWS_BUDGET_BYTES", rows_budget)
    # The matrix stores only the representative views (a quarter of an even scan, half of an odd one,
    # operators.symmetry); every other view is a representative of a permuted image. Both ways of
    # applying it (own rows for few views or small images, the stacked product for many) agree with astra's own
    # projector to float32 round-off: astra places each ray in float32, so a kernel weight may move by
    # ~N * 6e-8 ~ 2e-6 (and its mirrored view by as much the other way), a few 1e-5 of an entry after
    # the sums; a wrong view or permutation would be off by O(1) of the maximum.
    matrix, astra = Radon(size, n_angles, backend="matrix"), Radon(size, n_angles, backend="astra")
    m = matrix.geometry.n_angles
    x = torch.rand(2, 1, size, size)
    for views in (None, torch.tensor([0, 1, m // 2, m - 1]), torch.arange(m // 2 + 3), torch.tensor([m - 2, 3])):
        y = astra.forward(x, views)
        assert float((matrix.forward(x, views) - y).abs().max()) <= 1e-4 * float(y.abs().max())
        back = astra.adjoint(y, views)
        assert float((matrix.adjoint(y, views) - back).abs().max()) <= 1e-4 * float(back.abs().max())


def test_representative_views_and_their_orbits():
    from operators.symmetry import pixel_permutations, representative_views, view_orbits

    assert representative_views(512).tolist() == list(range(129))
    assert representative_views(17).tolist() == list(range(9))
    orbits = view_orbits(512, np.array([0, 128, 129, 256, 300, 384, 385, 511]))
    assert orbits.representative.tolist() == [0, 128, 127, 0, 44, 128, 127, 1]
    assert orbits.permutation.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    image = np.arange(16).reshape(4, 4)
    identity, transpose, rotate, flip = (image.ravel()[p].reshape(4, 4) for p in pixel_permutations(4))
    assert (identity == image).all() and (transpose == image[::-1, ::-1].T).all()
    assert (rotate == np.rot90(image, -1)).all() and (flip == image[:, ::-1]).all()
    with pytest.raises(ValueError, match="view indices"):
        view_orbits(8, np.array([8]))


def test_stacked_product_gradient_uses_the_transpose(monkeypatch):
    monkeypatch.setattr("operators.sparse_matrix.ROWS_BUDGET_BYTES", 0)  # all views: the stacked product
    radon = Radon(24, backend="matrix")
    x = torch.rand(2, 1, 24, 24, requires_grad=True)
    w = torch.rand(2, 1, *radon.geometry.sino_shape)
    (radon.forward(x) * w).sum().backward()
    assert torch.allclose(x.grad, radon.adjoint(w), atol=1e-5)


def _astra_fbp(sino: np.ndarray, geometry: ParallelBeamGeometry) -> np.ndarray:
    import astra

    vol = astra.create_vol_geom(geometry.size, geometry.size)
    proj = astra.create_proj_geom("parallel", 1.0, geometry.n_detectors, geometry.angles())
    pid = astra.create_projector("linear", proj, vol)
    sid = astra.data2d.create("-sino", proj, sino)
    rid = astra.data2d.create("-vol", vol)
    cfg = astra.astra_dict("FBP")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    aid = astra.algorithm.create(cfg)
    astra.algorithm.run(aid)
    out = astra.data2d.get(rid)
    astra.algorithm.delete(aid)
    astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    return out


def test_fbp_at_least_as_accurate_as_astra():
    radon = Radon(96)
    x = phantom(96)
    sino = radon.forward(x)
    ours = rel(radon.inverse(sino), x)
    theirs = rel(torch.from_numpy(_astra_fbp(sino[0, 0].numpy(), radon.geometry))[None, None], x)
    assert ours <= theirs * (1 + 1e-3)
    assert ours < 0.2


def test_fbp_inverts_smooth_images_closely():
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    blob = torch.exp(-((xx - 30.0) ** 2 + (yy - 34.0) ** 2) / 150.0) * (((xx - 32) ** 2 + (yy - 32) ** 2) < 28**2)
    x = blob[None, None].float()
    radon = Radon(n)
    assert rel(radon.inverse(radon.forward(x)), x) < 0.03


@pytest.mark.parametrize("window", WINDOWS)
def test_fbp_windows_keep_the_mean(window):
    radon = Radon(64, window=window)
    x = phantom(64)
    rec = radon.inverse(radon.forward(x))
    assert abs(float(rec.mean() - x.mean())) < 0.02 * float(x.mean())


def test_bad_shapes_and_options_are_refused():
    radon = Radon(32)
    with pytest.raises(ValueError, match="32x32"):
        radon.forward(torch.rand(1, 1, 32, 30))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        radon.forward(torch.rand(32, 32))
    with pytest.raises(ValueError, match="sinograms"):
        radon.adjoint(torch.rand(1, 1, 10, 10))
    with pytest.raises(ValueError, match="backend"):
        Radon(32, backend="gpu-magic")
    with pytest.raises(ValueError, match="window"):
        Radon(32, window="blackman")
    with pytest.raises(ValueError, match="only 32"):
        sparse_view_ct(32, 40)


@cuda_only
@pytest.mark.parametrize("backend", ["matrix", "torch"])
def test_runs_on_cuda(backend):
    x = torch.rand(2, 1, 32, 32)
    cpu = Radon(32, backend=backend)
    gpu = Radon(32, backend=backend)
    out = gpu.forward(x.cuda())
    assert out.is_cuda
    assert rel(out.cpu(), cpu.forward(x)) < 1e-4
    assert rel(gpu.inverse(out).cpu(), cpu.inverse(cpu.forward(x))) < 1e-4
