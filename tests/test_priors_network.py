"""The NCSN++ network and its configuration presets."""
import json

import pytest
import torch

from priors.config import PRESETS, NetworkConfig, RunConfig, load_config
from priors.errors import PriorError
from priors.ncsnpp import AttnBlock, NCSNpp


def _randomise(net: torch.nn.Module) -> None:
    """Give the zero-initialised layers weights so the output is not identically 0."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def test_shapes_attention_and_output_divided_by_sigma():
    cfg = NetworkConfig(image_size=32, nf=8, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,))
    net = NCSNpp(cfg).eval()
    assert sum(isinstance(m, AttnBlock) for m in net.modules()) == 1 + 1 + 2  # down, middle, up at 8 px
    x, sigma = torch.rand(3, 1, 32, 32), torch.tensor([0.01, 1.0, 50.0])
    with torch.no_grad():
        assert torch.count_nonzero(net(x, sigma)) == 0  # zero-initialised head, as in NCSN++
        _randomise(net)
        captured = {}
        hook = net.head.register_forward_hook(lambda m, i, o: captured.update(h=o))
        out = net(x, sigma)
        hook.remove()
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out, captured["h"] / sigma.view(-1, 1, 1, 1))
    # The noise level conditions the network beyond the 1/sigma factor.
    with torch.no_grad():
        a = net(x[:1], sigma[1:2]) * sigma[1]
        b = net(x[:1], sigma[2:3]) * sigma[2]
    assert (a - b).abs().max() > 1e-4


def test_batch_items_are_independent():
    net = NCSNpp(PRESETS["tiny"].network).eval()
    _randomise(net)
    x, sigma = torch.rand(4, 1, 32, 32), torch.tensor([0.1, 0.5, 1.0, 5.0])
    with torch.no_grad():
        full = net(x, sigma)
        one = net(x[2:3], sigma[2:3])
    torch.testing.assert_close(full[2:3], one, atol=1e-5, rtol=1e-4)


def test_presets_build_and_shipped_size_fits():
    for name, cfg in PRESETS.items():
        assert isinstance(cfg, RunConfig)
    n = sum(p.numel() for p in NCSNpp(PRESETS["base"].network).parameters())
    assert 4 * n < 25 * 2 ** 20  # float32 weights of the shipped size stay under 25 MB


def test_load_config_json_overrides_and_refusals(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "network": {"nf": 16}, "train": {"lr": 1e-3}}))
    cfg = load_config(str(path))
    assert cfg.network.nf == 16 and cfg.network.ch_mult == PRESETS["tiny"].network.ch_mult
    assert cfg.train.lr == 1e-3
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path.write_text(json.dumps({"network": {"width": 3}}))
    with pytest.raises(PriorError, match="width"):
        load_config(str(path))
    with pytest.raises(PriorError, match="preset"):
        load_config("no-such-preset")
    with pytest.raises(PriorError, match="divisible"):
        NetworkConfig(image_size=30, ch_mult=(1, 2, 2))
