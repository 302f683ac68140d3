"""Cross-correlations whose kernels arrive at run time, in two exportable forms.

``static`` batch: pysot's own formulation (pysot/core/xcorr.py ``xcorr_depthwise`` / ``xcorr_fast``): fold the batch
into channels and run one grouped ``Conv`` with ``group = N·C`` (depthwise) or ``group = N`` (up-channel). ONNX's
``group`` is an attribute, so this form fixes N at export time — the form TensorRT's parser (≥ 8.5) takes.

``dynamic`` batch: the same Conv with a *batch-independent* group count. Channels are ordered (c, n) and the weight is
block-diagonal over the batch (zeros where sample n would see sample m ≠ n), so ``group = C`` (depthwise) or 1
(up-channel) stays constant while N varies. For N = 1 it is the identical computation; for N targets the correlation
does N× the multiply-adds (it is ~0.5 % of a frame's work), the backbone and heads none extra. The products with the
zero blocks are exact zeros, so results equal the static form bit for bit up to summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _block_diag_eye(n: int, like: torch.Tensor) -> torch.Tensor:
    idx = torch.arange(n, device=like.device)
    return (idx[:, None] == idx[None, :]).to(like.dtype)


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor, dynamic_batch: bool = False) -> torch.Tensor:
    """Per-channel correlation: out[n,c,i,j] = Σ_uv x[n,c,i+u,j+v]·kernel[n,c,u,v] (no flip)."""
    if not dynamic_batch:
        batch, channel = kernel.size(0), kernel.size(1)
        xr = x.reshape(1, batch * channel, x.size(2), x.size(3))
        kr = kernel.reshape(batch * channel, 1, kernel.size(2), kernel.size(3))
        out = F.conv2d(xr, kr, groups=batch * channel)
        return out.reshape(batch, channel, out.size(2), out.size(3))
    n, c, kh, kw = kernel.shape
    # input channels ordered (c, n): group c holds the N samples of channel c
    xr = x.transpose(0, 1).reshape(1, c * n, x.size(2), x.size(3))
    eye = _block_diag_eye(n, kernel)
    # weight[c, n_out, n_in, u, v] = kernel[n_out, c, u, v] · [n_out == n_in]
    w = kernel.transpose(0, 1).unsqueeze(2) * eye[None, :, :, None, None]
    out = F.conv2d(xr, w.reshape(c * n, n, kh, kw), groups=c)
    return out.reshape(c, n, out.size(2), out.size(3)).transpose(0, 1)


def xcorr_upchannel(x: torch.Tensor, kernel: torch.Tensor, out_channels: int,
                    dynamic_batch: bool = False) -> torch.Tensor:
    """DaSiamRPN's correlation: kernel [N, K·F, h, w] holds K full kernels over the F feature channels of x.

    out[n,k,i,j] = Σ_f,u,v x[n,f,i+u,j+v]·kernel[n,k,f,u,v]  (DaSiamRPN net.py ``F.conv2d(x_f, kernel)``, batched).
    """
    n, f = x.size(0), x.size(1)
    kh, kw = kernel.size(2), kernel.size(3)
    if not dynamic_batch:
        xr = x.reshape(1, n * f, x.size(2), x.size(3))
        kr = kernel.reshape(n * out_channels, f, kh, kw)
        out = F.conv2d(xr, kr, groups=n)
        return out.reshape(n, out_channels, out.size(2), out.size(3))
    xr = x.reshape(1, n * f, x.size(2), x.size(3))  # channels ordered (n, f)
    eye = _block_diag_eye(n, kernel)
    k5 = kernel.reshape(n, out_channels, f, kh, kw)
    # weight[n_out, k, n_in, f, u, v] = k5[n_out, k, f, u, v] · [n_out == n_in]
    w = k5.unsqueeze(2) * eye[:, None, :, None, None, None]
    out = F.conv2d(xr, w.reshape(n * out_channels, n * f, kh, kw))
    return out.reshape(n, out_channels, out.size(2), out.size(3))
