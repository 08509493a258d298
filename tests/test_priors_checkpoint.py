"""Safe prior files: round trip, and refusal of pickles, tampered and mismatched files."""
import json

import pytest
import torch

import priors
from priors.checkpoint import read_prior, save_prior
from priors.config import PRESETS, network_to_dict
from priors.learned import LearnedPrior
from priors.errors import PriorError
from priors.ncsnpp import NCSNpp


def _meta() -> dict:
    return {"id": "toy-32", "modality": "ct", "size": 32, "intensity": "ct", "defaults": {},
            "network": network_to_dict(PRESETS["tiny"].network), "sde": {"sigma_min": 0.01, "sigma_max": 9.0}}


@pytest.fixture
def saved(tmp_path):
    net = NCSNpp(PRESETS["tiny"].network)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn(p.shape))
    prefix = tmp_path / "toy-32"
    save_prior(prefix, net.state_dict(), _meta())
    return net.eval(), prefix


def test_round_trip_scores_match(saved, tmp_path):
    net, prefix = saved
    prior = priors.load(str(prefix) + ".json")
    assert isinstance(prior, LearnedPrior) and prior.sde.sigma_max == 9.0 and prior.meta["id"] == "toy-32"
    x, sigma = torch.rand(2, 1, 32, 32, dtype=torch.float64), torch.tensor([0.1, 2.0])
    with torch.no_grad():
        expected = net(x.float(), sigma)
    got = prior.score(x, sigma)
    assert got.dtype == torch.float64 and not got.requires_grad
    torch.testing.assert_close(got.float(), expected)
    # float16 storage loads back as float32 weights close to the originals.
    save_prior(tmp_path / "half", net.state_dict(), _meta(), dtype=torch.float16)
    weights, meta = read_prior(tmp_path / "half.safetensors")
    assert meta["weights"]["dtype"] == "float16" and weights["stem.weight"].dtype == torch.float32
    torch.testing.assert_close(weights["stem.weight"], net.stem.weight, atol=1e-3, rtol=1e-3)
    assert torch.equal(weights["fourier.W"], net.fourier.W)  # vectors stay float32


def test_pickle_only_checkpoint_is_refused(tmp_path):
    net = NCSNpp(PRESETS["tiny"].network)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    with pytest.raises(PriorError, match="pickle"):
        priors.load(tmp_path / "model.pt")
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": net.state_dict()}, run / "checkpoint.pth")
    with pytest.raises(PriorError, match="pickle"):
        priors.load(run)
    # A pickle renamed to .safetensors is recognised by its header.
    (tmp_path / "sneaky.safetensors").write_bytes((tmp_path / "model.pt").read_bytes())
    (tmp_path / "sneaky.json").write_text(json.dumps({**_meta(), "format": "scoreprior-recon.prior",
                                                        "weights": {"file": "sneaky.safetensors", "sha256": "0"}}))
    with pytest.raises(PriorError, match="pickle"):
        priors.load(tmp_path / "sneaky")


def test_hash_mismatch_is_refused(saved):
    _, prefix = saved
    weights = prefix.with_name(prefix.name + ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(PriorError, match="sha256"):
        priors.load(prefix)


def test_mismatched_architecture_is_refused(saved):
    _, prefix = saved
    jpath = prefix.with_name(prefix.name + ".json")
    meta = json.loads(jpath.read_text())
    meta["network"]["nf"] = 16
    jpath.write_text(json.dumps(meta))
    with pytest.raises(PriorError, match="do not match the architecture"):
        priors.load(jpath)
    meta["network"]["nf"] = 8
    meta["network"]["depth"] = 3
    jpath.write_text(json.dumps(meta))
    with pytest.raises(PriorError, match="depth"):
        priors.load(jpath)


def test_unknown_name_is_an_input_error():
    with pytest.raises(PriorError, match="not a bundled prior"):
        priors.load("no-such-prior-128")


def test_safetensors_whose_header_length_starts_with_the_pickle_opcode_is_accepted(tmp_path):
    from priors.checkpoint import refuse_pickle

    header = b"{" + b" " * (0xD80 - 2) + b"}"  # header length 3456 = 0x0D80: first byte 0x80
    path = tmp_path / "weights.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    refuse_pickle(path)  # no error
    import pickle

    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(PriorError, match="pickle"):
        refuse_pickle(path)


@pytest.mark.parametrize("field, value, message", [
    ("nf", 4096, "nf must be an integer"), ("num_res_blocks", 100000, "num_res_blocks must be an integer"),
    ("nf", "16", "nf must be an integer"), ("ch_mult", [1, "2"], "ch_mult must be a list"),
    ("dropout", True, "dropout must be a number"), ("image_size", 2.5, "image_size must be an integer")])
def test_tampered_network_fields_are_refused_before_any_network_is_built(saved, monkeypatch, field, value, message):
    # Issue 18: "nf": 4096 or "num_res_blocks": 100000 built an 8.8-9.5 GB network before the
    # comparison with the weights. Now the ranges refuse them, and no module is built at all.
    _, prefix = saved
    jpath = prefix.with_name(prefix.name + ".json")
    meta = json.loads(jpath.read_text())
    meta["network"][field] = value
    jpath.write_text(json.dumps(meta))
    monkeypatch.setattr("priors.learned.NCSNpp", lambda *a: pytest.fail("a network was built"))
    with pytest.raises(PriorError, match=message):
        priors.load(jpath)


def test_shapes_are_compared_on_the_meta_device_before_the_network_is_allocated(saved, monkeypatch):
    _, prefix = saved
    jpath = prefix.with_name(prefix.name + ".json")
    meta = json.loads(jpath.read_text())
    meta["network"]["nf"] = 512  # in range, but not these weights: refused from shapes alone
    jpath.write_text(json.dumps(meta))
    built = []
    real = NCSNpp

    def spy(config):
        built.append(torch.empty(0).device.type)  # the default device the module is built on
        return real(config)

    monkeypatch.setattr("priors.learned.NCSNpp", spy)
    with pytest.raises(PriorError, match="do not match the architecture"):
        priors.load(jpath)
    assert built == ["meta"]


@pytest.mark.parametrize("entry, value, message", [
    ("weights", None, "'weights' must be an object"), ("network", [1, 2], "network config: expected an object"),
    ("weights", {"file": 3, "sha256": "x"}, "'weights' must be an object"),
    ("sde", None, "sde.sigma_max"), ("sde", {"sigma_max": "128"}, "sde.sigma_max"),
    ("sde", {"sigma_max": 0.001}, "sde.sigma_max")])
def test_malformed_metadata_entries_are_one_line_errors(saved, entry, value, message):
    _, prefix = saved
    jpath = prefix.with_name(prefix.name + ".json")
    meta = json.loads(jpath.read_text())
    meta[entry] = value
    jpath.write_text(json.dumps(meta))
    with pytest.raises(PriorError, match=message):
        priors.load(jpath)
