"""Metal in CT: simulation of metal artifacts for evaluation and metal segmentation."""
from recon.metal.segment import segment_metal
from recon.metal.simulate import IMPLANT_KINDS, MetalCase, insert_implants, simulate_metal

__all__ = ["IMPLANT_KINDS", "MetalCase", "insert_implants", "segment_metal", "simulate_metal"]
