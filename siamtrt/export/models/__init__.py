"""PyTorch re-implementations of the supported trackers, with the public checkpoints' exact state_dict layout."""

from __future__ import annotations

import torch.nn as nn

from ...config import ModelConfig, get_config
from .dasiamrpn import DaSiamRPN
from .pysot import PysotSiamRPN

FAMILIES = {"pysot": PysotSiamRPN, "dasiamrpn": DaSiamRPN}


def build_model(cfg) -> nn.Module:
    """Build the network for a config (name, yaml path or ModelConfig), in eval mode, random weights.

    The module exposes ``template(z) -> tuple`` (kernels named by ``template_output_names``),
    ``track(x, *kernels) -> (cls, loc)``, and ``reference_template`` / ``reference_track`` (the reference's own
    per-frame computation). ``model.dynamic_batch`` selects the correlation form (see models/xcorr.py).
    """
    if not isinstance(cfg, ModelConfig):
        cfg = get_config(cfg)
    return FAMILIES[cfg.family](cfg).eval()


__all__ = ["build_model", "PysotSiamRPN", "DaSiamRPN"]
