"""Offline data: the procedural thorax CT phantom, MNI152 brain MR slices, the HDF5
slice-dataset builder and a lazy torch Dataset over it."""
from recon.data.build import build_dataset, read_manifest
from recon.data.dataset import SliceDataset
from recon.data.mri_slices import mri_slices
from recon.data.phantom_ct import thorax_phantom

__all__ = ["thorax_phantom", "mri_slices", "build_dataset", "read_manifest", "SliceDataset"]
