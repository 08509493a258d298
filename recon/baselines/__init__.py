"""Classical reconstructions the score prior is compared against.

Every entry of :data:`CLASSICAL` (and of :data:`recon.methods.BASELINES`, which adds the supervised
networks) has the signature
``fn(measurement: operators.Measurement, y: torch.Tensor, **params) -> torch.Tensor``
and returns real (B, 1, N, N) images in model units (CT: (HU + 1000) / 4000;
MRI: magnitude scaled to about [0, 1]), batched, on the device of ``y``, and
deterministic. Parameters and their defaults are documented on each function.

=============  ======================================  ==========================
key            function                                task
=============  ======================================  ==========================
fbp            :func:`direct.fbp`                      CT (sparse-view FBP)
fista-tv       :func:`fista_tv.fista_tv`               CT (any A)
sirt           :func:`iterative.sirt`                  CT
cgls           :func:`iterative.cgls`                  CT or MRI
zero-filled    :func:`direct.zero_filled`              MRI
cs-tv          :func:`compressed_sensing.cs_tv`        MRI (any A)
cs-wavelet     :func:`compressed_sensing.cs_wavelet`   MRI (any A)
li             :func:`mar.li`                          CT metal artifact removal
nmar           :func:`mar.nmar`                        CT metal artifact removal
=============  ======================================  ==========================

The supervised networks (``fbpconvnet``, ``unet-mri``) live in :mod:`recon.supervised`, above this
package; :mod:`recon.methods` lists both.
"""
from __future__ import annotations

from typing import Callable

import torch

from recon.baselines.compressed_sensing import cs_tv, cs_wavelet
from recon.baselines.direct import fbp, zero_filled
from recon.baselines.fista_tv import fista_tv
from recon.baselines.iterative import cgls, sirt
from recon.baselines.mar import li, nmar

CLASSICAL: dict[str, Callable[..., torch.Tensor]] = {
    "fbp": fbp,
    "fista-tv": fista_tv,
    "sirt": sirt,
    "cgls": cgls,
    "zero-filled": zero_filled,
    "cs-tv": cs_tv,
    "cs-wavelet": cs_wavelet,
    "li": li,
    "nmar": nmar,
}

__all__ = ["CLASSICAL", "cgls", "cs_tv", "cs_wavelet", "fbp", "fista_tv", "li", "nmar", "sirt", "zero_filled"]
