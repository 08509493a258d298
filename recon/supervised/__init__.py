"""Supervised post-processing baselines (FBPConvNet-style U-Nets) for the generalisation test.

* :mod:`recon.supervised.unet`: the residual U-Net;
* :mod:`recon.supervised.tasks`: measurements and direct reconstructions feeding it;
* :mod:`recon.supervised.train`: training with checkpoint/resume
  (``python -m recon.supervised.train``; imported on demand, not here, so that
  running it as a module is clean);
* :mod:`recon.supervised.storage`: the safetensors + JSON files;
* :mod:`recon.supervised.baseline`: the trained networks as baselines.
"""
from recon.supervised.baseline import (PostProcessor, fbpconvnet, load_postprocessing, postprocess,
                                       unet_mri)
from recon.supervised.storage import read_postprocessing, save_postprocessing
from recon.supervised.unet import ResidualUNet, UNetConfig

__all__ = ["PostProcessor", "ResidualUNet", "UNetConfig", "fbpconvnet", "load_postprocessing", "postprocess",
           "read_postprocessing", "save_postprocessing", "unet_mri"]
