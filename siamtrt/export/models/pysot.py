"""pysot SiamRPN++ networks with module names identical to STVIR/pysot, so a model-zoo ``model.pth`` loads strictly.

Layouts (attribute names, Sequential indices, paddings, dilations) follow pysot @ d04028f: models/backbone/
resnet_atrous.py, mobile_v2.py, alexnet.py; models/neck/neck.py; models/head/rpn.py. Written from those facts (see
shared/docs/pysot-reference.md §1), not copied.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .xcorr import xcorr_depthwise

# --------------------------------------------------------------------------------------------- backbones


ALEXNET_WIDTHS = (3, 96, 256, 384, 384, 256)


def alexnet_features(width_mult: float = 1.0) -> nn.Sequential:
    """The SiamRPN AlexNet trunk shared by pysot ``alexnetlegacy`` and DaSiamRPN ``featureExtract``: no padding,
    BN after every conv, no final ReLU; Sequential indices 0..15 are what the checkpoints' keys name."""
    c = [3 if x == 3 else int(x * width_mult) for x in ALEXNET_WIDTHS]
    return nn.Sequential(
        nn.Conv2d(c[0], c[1], kernel_size=11, stride=2), nn.BatchNorm2d(c[1]),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(c[1], c[2], kernel_size=5), nn.BatchNorm2d(c[2]),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], kernel_size=3), nn.BatchNorm2d(c[3]), nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], kernel_size=3), nn.BatchNorm2d(c[4]), nn.ReLU(inplace=True),
        nn.Conv2d(c[4], c[5], kernel_size=3), nn.BatchNorm2d(c[5]),
    )


class AlexNetLegacy(nn.Module):
    """pysot ``alexnetlegacy``: one Sequential ``features``."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        self.features = alexnet_features(width_mult)
        self.feature_size = self.features[-1].num_features

    def forward(self, x):
        return self.features(x)


class Bottleneck(nn.Module):
    """ResNet bottleneck with pysot's atrous padding rule (padding = 2 − stride, or the dilation)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        padding = 2 - stride
        if downsample is not None and dilation > 1:
            dilation = dilation // 2
            padding = dilation
        if dilation > 1:
            padding = dilation
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=padding, bias=False,
                               dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNetAtrous(nn.Module):
    """pysot ``resnet50``: conv1 padding 0, layer3/4 dilated (stride 8 overall), 3x3 downsample convs."""

    def __init__(self, layers: Sequence[int], used_layers: Sequence[int]):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.used_layers = list(used_layers)
        self.layer3 = self._make_layer(256, layers[2], stride=1, dilation=2) if 3 in used_layers else nn.Identity()
        self.layer4 = self._make_layer(512, layers[3], stride=1, dilation=4) if 4 in used_layers else nn.Identity()

    def _make_layer(self, planes, blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            if stride == 1 and dilation == 1:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * 4))
            else:
                dd, padding = (dilation // 2, dilation // 2) if dilation > 1 else (1, 0)
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * 4, kernel_size=3, stride=stride, bias=False, padding=padding,
                              dilation=dd),
                    nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, dilation=dilation)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x_ = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x_)
        p1 = self.layer1(x)
        p2 = self.layer2(p1)
        p3 = self.layer3(p2)
        p4 = self.layer4(p3)
        out = [x_, p1, p2, p3, p4]
        out = [out[i] for i in self.used_layers]
        return out[0] if len(out) == 1 else out


class InvertedResidual(nn.Module):
    """MobileNetV2 block; the expansion conv exists even for t = 1 (pysot's layout)."""

    def __init__(self, inp, oup, stride, expand_ratio, dilation=1):
        super().__init__()
        self.use_res_connect = stride == 1 and inp == oup
        padding = dilation if dilation > 1 else 2 - stride
        hid = inp * expand_ratio
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hid, 1, 1, 0, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, padding, dilation=dilation, groups=hid, bias=False),
            nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """pysot ``mobilenetv2``: layer0..layer7, strides (1,2,2,1,1,1,1), dilations (1,1,1,2,2,4,4)."""

    setting = [  # t, c, n, s, d
        [1, 16, 1, 1, 1], [6, 24, 2, 2, 1], [6, 32, 3, 2, 1], [6, 64, 4, 1, 2],
        [6, 96, 3, 1, 2], [6, 160, 3, 1, 4], [6, 320, 1, 1, 4],
    ]

    def __init__(self, width_mult: float = 1.0, used_layers: Sequence[int] = (3, 5, 7)):
        super().__init__()
        input_channel = int(32 * width_mult)
        self.used_layers = list(used_layers)
        self.layer0 = nn.Sequential(nn.Conv2d(3, input_channel, 3, 2, 0, bias=False), nn.BatchNorm2d(input_channel),
                                    nn.ReLU6(inplace=True))
        last_dilation = 1
        for idx, (t, c, n, s, d) in enumerate(self.setting, start=1):
            output_channel = int(c * width_mult)
            blocks = []
            for i in range(n):
                if i == 0:
                    dd = d if d == last_dilation else max(d // 2, 1)
                    blocks.append(InvertedResidual(input_channel, output_channel, s, t, dd))
                else:
                    blocks.append(InvertedResidual(input_channel, output_channel, 1, t, d))
                input_channel = output_channel
            last_dilation = d
            self.add_module(f"layer{idx}", nn.Sequential(*blocks))

    def forward(self, x):
        outputs = []
        for idx in range(8):
            x = getattr(self, f"layer{idx}")(x)
            outputs.append(x)
        return [outputs[i] for i in self.used_layers]


BACKBONES = {
    "alexnetlegacy": lambda width_mult=1.0: AlexNetLegacy(width_mult),
    "resnet50": lambda used_layers=(2, 3, 4): ResNetAtrous([3, 4, 6, 3], used_layers),
    "mobilenetv2": lambda width_mult=1.0, used_layers=(3, 5, 7): MobileNetV2(width_mult, used_layers),
}

# --------------------------------------------------------------------------------------------- neck


class AdjustLayer(nn.Module):
    """1x1 conv + BN; template features narrower than 20 are centre-cropped to ``center_size`` (15 → 7)."""

    def __init__(self, in_channels, out_channels, center_size=7):
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                                        nn.BatchNorm2d(out_channels))
        self.center_size = center_size

    def forward(self, x):
        x = self.downsample(x)
        if x.size(3) < 20:  # a shape test, fixed per branch at export time
            left = (x.size(3) - self.center_size) // 2
            x = x[:, :, left:left + self.center_size, left:left + self.center_size]
        return x


class AdjustAllLayer(nn.Module):
    """One AdjustLayer per level, named ``downsample`` (one level) or ``downsample2..4``."""

    def __init__(self, in_channels, out_channels, center_size=7):
        super().__init__()
        self.num = len(out_channels)
        if self.num == 1:
            self.downsample = AdjustLayer(in_channels[0], out_channels[0], center_size)
        else:
            for i in range(self.num):
                self.add_module(f"downsample{i + 2}", AdjustLayer(in_channels[i], out_channels[i], center_size))

    def forward(self, features):
        if self.num == 1:
            return self.downsample(features)
        return [getattr(self, f"downsample{i + 2}")(features[i]) for i in range(self.num)]


NECKS = {
    "AdjustAllLayer": lambda in_channels, out_channels, center_size=7: AdjustAllLayer(in_channels, out_channels,
                                                                                         center_size),
    "AdjustLayer": lambda in_channels, out_channels, center_size=7: AdjustLayer(in_channels, out_channels, center_size),
}

# --------------------------------------------------------------------------------------------- RPN heads


def _conv_bn_relu(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthwiseXCorr(nn.Module):
    """conv_kernel (template) / conv_search → depthwise correlation → head (1x1, BN, ReLU, 1x1 with bias)."""

    def __init__(self, in_channels, hidden, out_channels, kernel_size=3):
        super().__init__()
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.head = nn.Sequential(nn.Conv2d(hidden, hidden, kernel_size=1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, kernel_size=1))

    def kernel(self, z_f):
        return self.conv_kernel(z_f)

    def correlate(self, x_f, kernel, dynamic_batch=False):
        return self.head(xcorr_depthwise(self.conv_search(x_f), kernel, dynamic_batch))

    def forward(self, z_f, x_f):  # pysot's per-frame computation (kernel recomputed)
        return self.correlate(x_f, self.kernel(z_f))


class DepthwiseRPN(nn.Module):
    def __init__(self, anchor_num=5, in_channels=256, out_channels=256):
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, out_channels, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, out_channels, 4 * anchor_num)

    def forward(self, z_f, x_f):
        return self.cls(z_f, x_f), self.loc(z_f, x_f)


class MultiRPN(nn.Module):
    """Three DepthwiseRPN levels fused by softmax(cls_weight)/softmax(loc_weight) (weighted) or a plain mean."""

    def __init__(self, anchor_num, in_channels, weighted=False):
        super().__init__()
        self.weighted = weighted
        for i, c in enumerate(in_channels):
            self.add_module(f"rpn{i + 2}", DepthwiseRPN(anchor_num, c, c))
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(len(in_channels)))
            self.loc_weight = nn.Parameter(torch.ones(len(in_channels)))

    def fuse(self, cls: List[torch.Tensor], loc: List[torch.Tensor]):
        if self.weighted:
            cw, lw = F.softmax(self.cls_weight, 0), F.softmax(self.loc_weight, 0)
            c = sum(cls[i] * cw[i] for i in range(len(cls)))
            l_ = sum(loc[i] * lw[i] for i in range(len(loc)))
            return c, l_
        return sum(cls) / len(cls), sum(loc) / len(loc)

    def forward(self, z_fs, x_fs):
        cls, loc = [], []
        for idx, (z_f, x_f) in enumerate(zip(z_fs, x_fs), start=2):
            c, l_ = getattr(self, f"rpn{idx}")(z_f, x_f)
            cls.append(c)
            loc.append(l_)
        return self.fuse(cls, loc)


# --------------------------------------------------------------------------------------------- the model


class PysotSiamRPN(nn.Module):
    """pysot ModelBuilder (backbone / neck / rpn_head) split into the two deployable branches.

    ``template(z)`` runs everything that depends only on the exemplar, once per target: backbone, neck and every
    ``conv_kernel`` (pysot recomputes those each frame; caching them is exact). ``track(x, *kernels)`` runs the
    search branch. ``reference_template`` / ``reference_track`` compute exactly as pysot's ModelBuilder does.
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = BACKBONES[cfg.backbone](**cfg.backbone_args)
        if cfg.adjust:
            self.neck = NECKS[cfg.adjust](**cfg.adjust_args)
        if cfg.rpn == "MultiRPN":
            self.rpn_head = MultiRPN(**cfg.rpn_args)
            self.levels = list(range(2, 2 + len(cfg.rpn_args["in_channels"])))
        else:
            self.rpn_head = DepthwiseRPN(**cfg.rpn_args)
            self.levels = []
        self.dynamic_batch = True
        self.zf = None

    @property
    def template_output_names(self) -> List[str]:
        if not self.levels:
            return ["cls_kernel", "loc_kernel"]
        return [f"{t}_kernel_{lvl}" for lvl in self.levels for t in ("cls", "loc")]

    def _features(self, img):
        f = self.backbone(img)
        return self.neck(f) if self.cfg.adjust else f

    def _rpns(self):
        return [getattr(self.rpn_head, f"rpn{lvl}") for lvl in self.levels] if self.levels else [self.rpn_head]

    def template(self, z):
        zf = self._features(z)
        zfs = zf if self.levels else [zf]
        out = []
        for rpn, f in zip(self._rpns(), zfs):
            out += [rpn.cls.kernel(f), rpn.loc.kernel(f)]
        return tuple(out)

    def track(self, x, *kernels):
        xf = self._features(x)
        xfs = xf if self.levels else [xf]
        cls, loc = [], []
        for i, (rpn, f) in enumerate(zip(self._rpns(), xfs)):
            cls.append(rpn.cls.correlate(f, kernels[2 * i], self.dynamic_batch))
            loc.append(rpn.loc.correlate(f, kernels[2 * i + 1], self.dynamic_batch))
        if self.levels:
            return self.rpn_head.fuse(cls, loc)
        return cls[0], loc[0]

    # pysot ModelBuilder.template / .track, verbatim in behaviour (features stored, kernels recomputed per frame).
    def reference_template(self, z):
        self.zf = self._features(z)

    def reference_track(self, x):
        return self.rpn_head(self.zf, self._features(x))
