"""Shared test set-up: a private cache for system matrices, fixed seeds."""
import os
import tempfile

import pytest
import torch

# System matrices are cached per geometry; keep the tests' cache out of the user's home.
os.environ.setdefault("RECON_CACHE", os.path.join(tempfile.gettempdir(), "recon-test-cache"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread: small tensors are faster so, much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cuda_only(fn):
    """Mark a test that needs a CUDA GPU; it is skipped cleanly without one."""
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(pytest.mark.cuda(fn))


def save_tiny_prior(prefix, modality: str, size: int = 32, defaults: dict | None = None, dataset: dict | None = None):
    """Write an untrained ``tiny`` prior for ``modality`` at ``prefix`` (.json + .safetensors).

    Its weights are random (seeded): enough to exercise every path of the
    reconstruction commands quickly, not to reconstruct well. ``dataset``: the
    metadata's ``dataset`` record (its ``manifest``), when the test needs one.
    """
    import dataclasses

    from priors.checkpoint import save_prior
    from priors.config import PRESETS, network_to_dict
    from priors.ncsnpp import NCSNpp

    network = dataclasses.replace(PRESETS["tiny"].network, image_size=size)
    torch.manual_seed(0)
    net = NCSNpp(network)
    with torch.no_grad():  # the output layer starts at zero; a zero score has no Langevin step size
        for parameter in net.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape))
    meta = {"id": f"tiny-{modality}-{size}", "modality": modality, "size": size, "intensity": modality,
            "defaults": defaults or {}, "network": network_to_dict(network),
            "sde": {"sigma_min": 0.01, "sigma_max": 5.0}, **({"dataset": dataset} if dataset else {})}
    save_prior(prefix, net.state_dict(), meta)
    return prefix


@pytest.fixture(scope="session")
def tiny_priors(tmp_path_factory):
    """{"ct": path, "mri": path} of untrained 32x32 tiny priors (strings for ``--prior``)."""
    folder = tmp_path_factory.mktemp("priors")
    return {m: str(save_tiny_prior(folder / f"tiny-{m}-32", m)) + ".json" for m in ("ct", "mri")}
