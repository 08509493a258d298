"""Metal artifact simulation, spectrum tables and metal segmentation."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from operators import metal_trace
from recon.metal import IMPLANT_KINDS, segment_metal, simulate_metal
from recon.metal.simulate import water_bhc_coefficients
from recon.metal.spectrum import linear_attenuation, mass_attenuation, spectrum
from recon.units import hu_to_model, model_to_hu


def body(size: int = 64) -> np.ndarray:
    """A thorax-like HU slice: soft-tissue ellipse, two lungs, a vertebra."""
    r, c = np.mgrid[0:size, 0:size]
    y, x = (r - size / 2 + 0.5) / (size / 2), (c - size / 2 + 0.5) / (size / 2)
    hu = np.full((size, size), -1000.0)
    hu[(x / 0.85) ** 2 + (y / 0.6) ** 2 <= 1] = 40.0
    for sx in (-0.4, 0.4):
        hu[((x - sx) / 0.25) ** 2 + ((y + 0.05) / 0.35) ** 2 <= 1] = -820.0
    hu[(x / 0.1) ** 2 + ((y - 0.4) / 0.1) ** 2 <= 1] = 900.0
    return hu


def test_spectrum_and_attenuation_tables():
    energies, weights = spectrum()
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    assert energies.max() == 120.0
    assert 55 < (energies * weights).sum() < 65  # mean energy of a 120 kVp tungsten beam
    assert mass_attenuation("water", 60.0) == pytest.approx(0.2059)  # a NIST table entry
    assert linear_attenuation("water", 70.0) == pytest.approx(0.193, abs=0.002)
    for material in ("water", "bone", "titanium", "steel"):
        mu = mass_attenuation(material, energies)
        assert (np.diff(mu) < 0).all()  # no edges in 15-120 keV
    assert linear_attenuation("steel", 70.0) > linear_attenuation("titanium", 70.0) > linear_attenuation("bone", 70.0)
    with pytest.raises(ValueError):
        mass_attenuation("gold", 70.0)


def test_water_bhc_maps_polychromatic_to_monochromatic():
    energies, weights = spectrum()
    coeffs = water_bhc_coefficients(energies, weights, max_cm=50.0)
    effective = []
    for t in (1.0, 10.0, 30.0):
        p_poly = -np.log(weights @ np.exp(-linear_attenuation("water", energies) * t))
        p_mono = linear_attenuation("water", 70.0) * t
        effective.append(p_poly / t)
        corrected = coeffs[0] * p_poly + coeffs[1] * p_poly ** 2 + coeffs[2] * p_poly ** 3
        assert corrected == pytest.approx(p_mono, abs=0.01)  # within 0.05 cm of water
    assert effective[0] > effective[1] > effective[2]  # beam hardening: thicker water looks less dense


def test_without_metal_the_sinogram_is_the_radon_transform_of_the_clean_image():
    hu = body()
    case = simulate_metal(hu, 0, metal_fraction=np.zeros_like(hu), noise=False)
    assert torch.allclose(case.clean, hu_to_model(torch.from_numpy(hu)).float()[None, None])
    ideal = case.radon.forward(case.clean)
    assert ((case.sinogram - ideal).norm() / ideal.norm()).item() < 0.01
    assert not case.metal_mask.any() and not case.trace.any()


def test_simulation_is_deterministic_per_seed():
    hu = body()
    a, b, c = simulate_metal(hu, 3), simulate_metal(hu, 3), simulate_metal(hu, 4)
    assert torch.equal(a.sinogram, b.sinogram) and torch.equal(a.metal_mask, b.metal_mask)
    assert a.implants == b.implants
    assert not torch.equal(a.sinogram, c.sinogram)
    from_tensor = simulate_metal(torch.from_numpy(hu), 3)
    assert torch.equal(from_tensor.sinogram, a.sinogram)


def test_case_measurement_leaves_out_the_trace():
    case = simulate_metal(body(), 0)
    m, y = case.measurement()
    assert case.trace.any() and (y[case.trace] == 0).all()
    assert torch.equal(y[~case.trace], case.sinogram[~case.trace])
    assert torch.equal(m.mask(y), ~case.trace)


@pytest.mark.parametrize("kind", IMPLANT_KINDS)
def test_implants_sit_inside_the_body_and_define_the_trace(kind):
    hu = body()
    case = simulate_metal(hu, 1, kinds=(kind,), n_implants=1)
    assert case.implants[0]["kind"] == kind and case.implants[0]["material"] in ("titanium", "steel")
    mask = case.metal_mask[0, 0].numpy()
    assert mask.any() and (hu[mask] > -500).all()
    assert torch.equal(case.trace, metal_trace(case.metal_mask, case.radon))
    assert case.sinogram.shape == case.trace.shape == (1, 1, 64, case.radon.geometry.n_detectors)
    assert case.corrupted_fbp.shape == case.clean.shape == (1, 1, 64, 64)


def test_metal_streaks_are_worse_near_the_metal():
    hu = body(96)
    near_err, far_err = [], []
    for seed in range(3):
        case = simulate_metal(hu, seed)
        mask = case.metal_mask[0, 0].numpy()
        distance = ndimage.distance_transform_edt(~mask)
        inside = hu > -500
        error = np.abs(case.corrupted_fbp[0, 0].numpy() - case.clean[0, 0].numpy())
        near_err.append(error[(distance > 0) & (distance <= 4) & inside].mean())
        far_err.append(error[(distance > 12) & inside].mean())
    assert np.mean(near_err) > 2 * np.mean(far_err)
    assert np.mean(far_err) > 0.001  # the streaks reach far too


def test_corrupted_fbp_shows_metal_that_segmentation_finds():
    hu = body(96)
    case = simulate_metal(hu, 2, materials=("steel",))
    found = segment_metal(model_to_hu(case.corrupted_fbp))
    truth = case.metal_mask
    assert found.dtype == torch.bool and found.shape == truth.shape
    assert (found & truth).sum() >= 0.9 * truth.sum()
    assert found.sum() <= 6 * truth.sum()


def test_segment_metal_threshold_and_dilation():
    image = np.zeros((9, 9))
    image[4, 4] = 3500.0
    image[0, 0] = 2900.0
    assert segment_metal(image, dilate=0).sum() == 1
    grown = segment_metal(image)
    assert isinstance(grown, np.ndarray) and grown.dtype == bool and grown.sum() == 9
    assert segment_metal(image, threshold_hu=2800, dilate=0).sum() == 2
    tensor = segment_metal(torch.from_numpy(image)[None, None], dilate=2)
    assert tensor.shape == (1, 1, 9, 9) and tensor.sum() == 25
    with pytest.raises(ValueError):
        segment_metal(image, dilate=-1)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        simulate_metal(np.zeros((8, 10)), 0)
    with pytest.raises(ValueError):
        simulate_metal(body(), 0, materials=("gold",))
    with pytest.raises(ValueError):
        simulate_metal(np.full((32, 32), -1000.0), 0)  # no body to put metal in
