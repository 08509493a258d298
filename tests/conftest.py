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
