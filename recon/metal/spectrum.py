"""X-ray spectrum and mass attenuation tables for the metal artifact simulation.

Values are tabulated by hand (compact, a few significant digits):

* Mass attenuation coefficients mu/rho (cm^2/g, total with coherent
  scattering) from the NIST X-ray mass attenuation coefficient tables
  (Hubbell & Seltzer, NIST Standard Reference Database 126, as computed by
  XCOM) at their standard energies 10-150 keV: liquid water, cortical bone
  (ICRU-44), titanium (Z = 22) and iron (Z = 26, standing in for stainless
  steel). Between table energies they are interpolated log-log; every
  K-edge of these materials lies below 10 keV, so the curves are smooth here.
* Densities (g/cm^3): water 1.0, cortical bone 1.92 (ICRU-44), titanium
  4.5 and steel 7.8 (the values of Yu et al. 2020's simulation code).
* The 120 kVp spectrum: relative photon counts of a tungsten-anode tube (7
  degree target, tube-window filtration only) from the XCIST/CatSim
  spectrum file ``tungsten_tar7.0_120_filt.dat`` (GE Research), summed into
  5 keV bins centred on 15, 20, ..., 120 keV and normalised to 1; mean
  energy 59.4 keV. Energy-integrating weighting is not applied (photon
  counting, as in Yu et al.'s simulation).
"""
from __future__ import annotations

import numpy as np

# NIST table energies (keV).
TABLE_KEV = np.array([10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0])

# mu/rho in cm^2/g at TABLE_KEV.
MASS_ATTENUATION = {
    "water": np.array([5.329, 1.673, 0.8096, 0.3756, 0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505]),
    "bone": np.array([28.51, 9.032, 4.001, 1.331, 0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480]),
    "titanium": np.array([110.7, 35.87, 15.85, 4.972, 2.214, 1.213, 0.7661, 0.4052, 0.2721, 0.1649]),
    "steel": np.array([170.6, 57.08, 25.68, 8.176, 3.629, 1.958, 1.205, 0.5952, 0.3717, 0.1964]),
}

DENSITY = {"water": 1.0, "bone": 1.92, "titanium": 4.5, "steel": 7.8}

METALS = ("titanium", "steel")

# 120 kVp spectrum: bin centres (keV) and the fraction of photons in each 5 keV bin.
SPECTRUM_KEV = np.arange(15.0, 121.0, 5.0)
SPECTRUM_120KVP = np.array([
    0.00001, 0.00096, 0.00874, 0.03159, 0.06270, 0.08759, 0.10132, 0.10524, 0.10251, 0.13062, 0.09150,
    0.06112, 0.04253, 0.03883, 0.03433, 0.02936, 0.02419, 0.01900, 0.01392, 0.00904, 0.00439, 0.00054,
])

# Reference energy of the monochromatic ground truth (as in Yu et al. 2020).
REFERENCE_KEV = 70.0


def mass_attenuation(material: str, kev: np.ndarray | float) -> np.ndarray:
    """mu/rho (cm^2/g) of ``material`` at energies ``kev`` (10-150 keV), log-log interpolated."""
    if material not in MASS_ATTENUATION:
        raise ValueError(f"unknown material {material!r}; choose one of {', '.join(MASS_ATTENUATION)}")
    kev = np.asarray(kev, dtype=np.float64)
    if np.any(kev < TABLE_KEV[0]) or np.any(kev > TABLE_KEV[-1]):
        raise ValueError(f"energies must lie in [{TABLE_KEV[0]}, {TABLE_KEV[-1]}] keV")
    return np.exp(np.interp(np.log(kev), np.log(TABLE_KEV), np.log(MASS_ATTENUATION[material])))


def linear_attenuation(material: str, kev: np.ndarray | float) -> np.ndarray:
    """mu (1/cm) of ``material`` at its tabulated density."""
    return mass_attenuation(material, kev) * DENSITY[material]


def spectrum() -> tuple[np.ndarray, np.ndarray]:
    """(energies in keV, photon fractions summing to 1) of the 120 kVp spectrum."""
    weights = SPECTRUM_120KVP / SPECTRUM_120KVP.sum()
    return SPECTRUM_KEV.copy(), weights
