"""DaSiamRPN networks (foolwood/DaSiamRPN code/net.py) with identical parameter names, so released
``SiamRPNBIG.model`` / ``SiamRPNVOT.model`` / ``SiamRPNOTB.model`` state_dicts load strictly.

Layout: ``featureExtract`` (AlexNet, same indices as pysot's AlexNetLegacy, widths × size), ``conv_r1`` /
``conv_cls1`` (template → up-channel kernels, 3x3 with bias), ``conv_r2`` / ``conv_cls2`` (search, 3x3),
``regress_adjust`` (1x1, 4A→4A). Template outputs are the raw conv outputs [N, 2A·F, 4, 4] / [N, 4A·F, 4, 4]; the
search branch views them as 2A (4A) kernels of F channels, as ``SiamRPN.temple`` does.
"""

from __future__ import annotations

from typing import List

import torch.nn as nn

from .pysot import alexnet_features
from .xcorr import xcorr_upchannel


class DaSiamRPN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        size = cfg.backbone_args.get("size", 1)
        anchor = cfg.rpn_args.get("anchor_num", 5)
        feature_out = cfg.rpn_args.get("feature_out", 256)
        self.featureExtract = alexnet_features(size)  # widths × size (2 for SiamRPNBIG)
        self.anchor = anchor
        self.feature_out = feature_out
        feat_in = self.featureExtract[-1].num_features
        self.conv_r1 = nn.Conv2d(feat_in, feature_out * 4 * anchor, 3)
        self.conv_r2 = nn.Conv2d(feat_in, feature_out, 3)
        self.conv_cls1 = nn.Conv2d(feat_in, feature_out * 2 * anchor, 3)
        self.conv_cls2 = nn.Conv2d(feat_in, feature_out, 3)
        self.regress_adjust = nn.Conv2d(4 * anchor, 4 * anchor, 1)
        self.dynamic_batch = True
        self._kernels = None

    @property
    def template_output_names(self) -> List[str]:
        return ["cls_kernel", "loc_kernel"]

    def template(self, z):
        z_f = self.featureExtract(z)
        return self.conv_cls1(z_f), self.conv_r1(z_f)

    def track(self, x, cls_kernel, loc_kernel):
        x_f = self.featureExtract(x)
        a = self.anchor
        cls = xcorr_upchannel(self.conv_cls2(x_f), cls_kernel, 2 * a, self.dynamic_batch)
        loc = self.regress_adjust(xcorr_upchannel(self.conv_r2(x_f), loc_kernel, 4 * a, self.dynamic_batch))
        return cls, loc

    # DaSiamRPN SiamRPN.temple / forward (kernels cached at temple time, as the original does).
    def reference_template(self, z):
        self._kernels = self.template(z)

    def reference_track(self, x):
        return self.track(x, *self._kernels)
