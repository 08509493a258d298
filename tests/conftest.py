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


def cuda_only(fn):
    """Mark a test that needs a CUDA GPU; it is skipped cleanly without one."""
    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(pytest.mark.cuda(fn))
