"""Typed, frozen model configurations: the one place where architecture and tracker facts are declared.

A config mirrors pysot's ``experiments/<name>/config.yaml`` (BACKBONE / ADJUST / RPN / ANCHOR / TRACK), so a user's
yaml file maps onto it one to one; DaSiamRPN models are expressed in the same shape. Facts come from
STVIR/pysot (experiments/*/config.yaml, pysot/core/config.py) and foolwood/DaSiamRPN (code/net.py,
code/run_SiamRPN.py). Everything downstream reads these values from the ONNX metadata, not from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from .errors import ConfigError

FLAVOURS = ("pysot", "dasiamrpn")


def _freeze(obj: Any) -> Any:
    """Lists → tuples, dicts → sorted tuples of pairs, so configs stay hashable and immutable."""
    if isinstance(obj, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(v) for v in obj)
    return obj


def _thaw(obj: Any) -> Any:
    if isinstance(obj, tuple) and obj and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                              for p in obj):
        return {k: _thaw(v) for k, v in obj}
    if isinstance(obj, tuple):
        return [_thaw(v) for v in obj]
    return obj


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor grid (pysot ``ANCHOR`` / DaSiamRPN ``TrackerConfig``)."""

    stride: int = 8
    ratios: Tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: Tuple[float, ...] = (8.0,)

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)


@dataclass(frozen=True)
class TrackConfig:
    """Tracker hyper-parameters (pysot ``TRACK`` / DaSiamRPN ``net.cfg``).

    ``flavour`` selects the post-processing conventions: ``pysot`` (SiamRPNTracker) or ``dasiamrpn``
    (run_SiamRPN.py). ``adaptive_instance_size`` is DaSiamRPN's small-object search size (SiamRPNBIG: 287
    when target area / image area < ``adaptive_area_ratio``); None disables it.

    Tracking modes (:mod:`siamtrt.runtime.modes`; ``mode`` is the model's default, "longterm" for a pysot ``_lt``
    config):

    * long-term (pysot ``SiamRPNLTTracker``, ``experiments/siamrpn_r50_l234_dwxcorr_lt``): ``lost_instance_size``
      (pysot LOST_INSTANCE_SIZE 831; None = the export has no lost search size and long-term mode is refused),
      ``confidence_low`` / ``confidence_high`` (CONFIDENCE_LOW / _HIGH, pysot defaults 0.85 / 0.998; the _lt yaml
      sets 0.8), ``lost_window_influence`` (0.001 in pysot's lost state). ``lost_growth_step`` is DaSiamRPN's
      local-to-global growth where pysot is silent: 0 (default) jumps straight to the lost size as pysot does; k > 0
      grows the search by k crop pixels per lost frame until the crop covers the whole frame or reaches the lost size.
    * distractor-aware (DaSiamRPN, Zhu et al. ECCV 2018 §4.2, incremental form eq. 4): after each frame the
      NMS-surviving proposals (IoU ``distractor_nms_iou``) above ``distractor_threshold`` (h), other than the
      target, up to ``distractor_max``, become distractors; their template-branch kernels are accumulated with
      decay ``1 − distractor_lr`` (η) and the next search uses the kernel (K_z − α̂·D̄)/(1 − α̂) with
      α̂ = ``distractor_weight`` (see docs/runtime.md for the derivation and the feature choice).
    """

    penalty_k: float = 0.04
    window_influence: float = 0.44
    lr: float = 0.4
    exemplar_size: int = 127
    instance_size: int = 255
    base_size: int = 8
    context_amount: float = 0.5
    flavour: str = "pysot"
    adaptive_instance_size: Optional[int] = None
    adaptive_area_ratio: float = 0.004
    mode: str = "short"
    lost_instance_size: Optional[int] = None
    confidence_low: float = 0.85
    confidence_high: float = 0.998
    lost_window_influence: float = 0.001
    lost_growth_step: int = 0
    distractor_weight: float = 0.5
    distractor_lr: float = 0.1
    distractor_threshold: float = 0.5
    distractor_max: int = 3
    distractor_nms_iou: float = 0.3

    def __post_init__(self):
        check_track_constants(self)

    def score_size(self, stride: int, instance_size: Optional[int] = None) -> int:
        """Score-map side for an instance size (pysot: (I − E) // stride + 1 + BASE_SIZE)."""
        inst = self.instance_size if instance_size is None else instance_size
        return (inst - self.exemplar_size) // stride + 1 + self.base_size

    @property
    def local_instance_sizes(self) -> Tuple[int, ...]:
        """Search sizes of the short-term (local) search."""
        return (self.instance_size,) if self.adaptive_instance_size is None else (
            self.instance_size, self.adaptive_instance_size)

    @property
    def instance_sizes(self) -> Tuple[int, ...]:
        """Every search size the export must accept: the local ones, then the long-term lost size if any."""
        local = self.local_instance_sizes
        return local if self.lost_instance_size is None else local + (self.lost_instance_size,)


#: tracking modes (siamtrt.runtime.modes)
MODES = ("short", "longterm", "distractor", "longterm+distractor")


def check_track_constants(t: "TrackConfig", where: str = "TRACK") -> None:
    """Refuse inconsistent long-term / distractor constants with a one-line ConfigError naming the fix."""
    def bad(what: str, fix: str) -> ConfigError:
        return ConfigError(f"{where}: {what}; fix: {fix}")

    if t.mode not in MODES:
        raise bad(f"unknown mode {t.mode!r}", f"use one of {', '.join(MODES)}")
    if not 0.0 < t.confidence_low <= t.confidence_high <= 1.0:
        raise bad(f"CONFIDENCE_LOW {t.confidence_low:g} / CONFIDENCE_HIGH {t.confidence_high:g} must satisfy "
                  f"0 < low <= high <= 1", "e.g. CONFIDENCE_LOW 0.8, CONFIDENCE_HIGH 0.998 (pysot _lt)")
    if t.lost_instance_size is not None:
        largest = max(t.instance_size, t.adaptive_instance_size or 0)
        if t.lost_instance_size <= largest:
            raise bad(f"LOST_INSTANCE_SIZE {t.lost_instance_size} must exceed INSTANCE_SIZE {largest}",
                      "use pysot's 831 (or drop it to track short-term)")
    if t.lost_growth_step < 0:
        raise bad(f"lost_growth_step {t.lost_growth_step} is negative", "use 0 (jump to the lost size) or a "
                  "positive step in crop pixels, e.g. 64")
    if "longterm" in t.mode and t.lost_instance_size is None:
        raise bad(f"mode {t.mode!r} needs LOST_INSTANCE_SIZE", "set LOST_INSTANCE_SIZE (pysot: 831)")
    if not 0.0 <= t.lost_window_influence <= 1.0 or not 0.0 <= t.distractor_weight < 1.0 \
            or not 0.0 < t.distractor_lr <= 1.0 or not 0.0 <= t.distractor_threshold <= 1.0 \
            or t.distractor_max < 0 or not 0.0 < t.distractor_nms_iou <= 1.0:
        raise bad("distractor / lost-window constants out of range (need 0 <= lost_window_influence <= 1, "
                  "0 <= distractor_weight < 1, 0 < distractor_lr <= 1, 0 <= distractor_threshold <= 1, "
                  "distractor_max >= 0, 0 < distractor_nms_iou <= 1)", "use the defaults of siamtrt.config.TrackConfig")


@dataclass(frozen=True)
class ModelConfig:
    """One model: architecture (as pysot's yaml states it) plus anchors and tracker parameters."""

    name: str
    family: str  # "pysot" | "dasiamrpn"
    backbone: str
    backbone_kwargs: Tuple = ()
    adjust: Optional[str] = None
    adjust_kwargs: Tuple = ()
    rpn: str = "DepthwiseRPN"
    rpn_kwargs: Tuple = ()
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    description: str = ""

    @property
    def backbone_args(self) -> Dict[str, Any]:
        return _thaw(self.backbone_kwargs) or {}

    @property
    def adjust_args(self) -> Dict[str, Any]:
        return _thaw(self.adjust_kwargs) or {}

    @property
    def rpn_args(self) -> Dict[str, Any]:
        return _thaw(self.rpn_kwargs) or {}

    @property
    def score_size(self) -> int:
        return self.track.score_size(self.anchor.stride)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict (the form stored in ONNX metadata)."""
        d = dataclasses.asdict(self)
        for k in ("backbone_kwargs", "adjust_kwargs", "rpn_kwargs"):
            d[k] = _thaw(getattr(self, k)) or {}
        d["anchor"] = {"stride": self.anchor.stride, "ratios": list(self.anchor.ratios),
                       "scales": list(self.anchor.scales)}
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        try:
            anchor = AnchorConfig(stride=int(d["anchor"]["stride"]),
                                  ratios=tuple(float(r) for r in d["anchor"]["ratios"]),
                                  scales=tuple(float(s) for s in d["anchor"]["scales"]))
            track = _make(TrackConfig, d["track"], "track")
            kw = {k: _freeze(d.get(k) or {}) for k in ("backbone_kwargs", "adjust_kwargs", "rpn_kwargs")}
            return cls(name=d["name"], family=d["family"], backbone=d["backbone"], adjust=d.get("adjust"),
                       rpn=d["rpn"], anchor=anchor, track=track, description=d.get("description", ""), **kw)
        except KeyError as e:
            raise ConfigError(f"model config is missing the field {e}", evidence=json.dumps(d)[:400],
                              fix="re-export the model with `siamtrt export`") from None


def _make(cls, values: Dict[str, Any], where: str):
    """Build a frozen dataclass, rejecting unknown keys (no silent defaults for typos)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {where} keys: {unknown}", evidence=f"valid keys: {sorted(names)}",
                          fix="remove or rename them")
    return cls(**values)


# ---------------------------------------------------------------------------------------------------------------
# Built-in registry. Values: pysot @ d04028f experiments/*/config.yaml; DaSiamRPN code/net.py cfg dicts.
# ---------------------------------------------------------------------------------------------------------------

_DWXCORR_ANCHOR = AnchorConfig()


def _pysot(name, backbone, bkw, adjust, akw, rpn, rkw, pk, wi, lr, inst=255, base=8, desc=""):
    return ModelConfig(name=name, family="pysot", backbone=backbone, backbone_kwargs=_freeze(bkw), adjust=adjust,
                       adjust_kwargs=_freeze(akw), rpn=rpn, rpn_kwargs=_freeze(rkw), anchor=_DWXCORR_ANCHOR,
                       track=TrackConfig(penalty_k=pk, window_influence=wi, lr=lr, instance_size=inst, base_size=base),
                       description=desc)


def _dasiam(name, size, feature_out, lr, wi, pk, adaptive, desc):
    return ModelConfig(
        name=name, family="dasiamrpn", backbone="dasiamrpn_alexnet", backbone_kwargs=_freeze({"size": size}),
        rpn="DaSiamRPNHead", rpn_kwargs=_freeze({"anchor_num": 5, "feature_out": feature_out}),
        anchor=_DWXCORR_ANCHOR,
        track=TrackConfig(penalty_k=pk, window_influence=wi, lr=lr, instance_size=271, base_size=0,
                          flavour="dasiamrpn", adaptive_instance_size=287 if adaptive else None),
        description=desc)


_R50 = dict(backbone="resnet50", bkw={"used_layers": [2, 3, 4]}, adjust="AdjustAllLayer",
            akw={"in_channels": [512, 1024, 2048], "out_channels": [256, 256, 256]},
            rpn="MultiRPN", rkw={"anchor_num": 5, "in_channels": [256, 256, 256], "weighted": True})

CONFIGS: Dict[str, ModelConfig] = {
    c.name: c for c in (
        _pysot("siamrpn_r50_l234_dwxcorr", **_R50, pk=0.05, wi=0.42, lr=0.38,
               desc="SiamRPN++ ResNet-50 (VOT)"),
        _pysot("siamrpn_r50_l234_dwxcorr_otb", **{**_R50, "rkw": {**_R50["rkw"], "weighted": False}}, pk=0.24,
               wi=0.50, lr=0.25, desc="SiamRPN++ ResNet-50 (OTB; mean fusion)"),
        _pysot("siamrpn_mobilev2_l234_dwxcorr", "mobilenetv2", {"used_layers": [3, 5, 7], "width_mult": 1.4},
               "AdjustAllLayer", {"in_channels": [44, 134, 448], "out_channels": [256, 256, 256]},
               "MultiRPN", {"anchor_num": 5, "in_channels": [256, 256, 256], "weighted": False},
               pk=0.04, wi=0.40, lr=0.50, desc="SiamRPN++ MobileNetV2"),
        _pysot("siamrpn_alex_dwxcorr", "alexnetlegacy", {"width_mult": 1.0}, None, {},
               "DepthwiseRPN", {"anchor_num": 5, "in_channels": 256, "out_channels": 256},
               pk=0.16, wi=0.40, lr=0.30, inst=287, base=0, desc="SiamRPN++ AlexNet (VOT)"),
        _pysot("siamrpn_alex_dwxcorr_otb", "alexnetlegacy", {"width_mult": 1.0}, None, {},
               "DepthwiseRPN", {"anchor_num": 5, "in_channels": 256, "out_channels": 256},
               pk=0.16, wi=0.40, lr=0.30, inst=287, base=0, desc="SiamRPN++ AlexNet (OTB weights, same config)"),
        _dasiam("SiamRPNBIG", 2, 512, lr=0.295, wi=0.42, pk=0.055, adaptive=True,
                desc="DaSiamRPN SiamRPNBIG (AlexNet x2, up-channel)"),
        _dasiam("SiamRPNvot", 1, 256, lr=0.45, wi=0.44, pk=0.04, adaptive=False, desc="DaSiamRPN SiamRPNvot"),
        _dasiam("SiamRPNotb", 1, 256, lr=0.30, wi=0.40, pk=0.22, adaptive=False, desc="DaSiamRPN SiamRPNotb"),
    )
}

DEFAULT_CONFIG = "siamrpn_mobilev2_l234_dwxcorr"

# pysot yaml BACKBONE.TYPE / ADJUST.TYPE / RPN.TYPE values this project implements.
SUPPORTED_TYPES = {
    "backbone": ("resnet50", "mobilenetv2", "alexnetlegacy", "dasiamrpn_alexnet"),
    "adjust": ("AdjustAllLayer", "AdjustLayer"),
    "rpn": ("DepthwiseRPN", "MultiRPN", "DaSiamRPNHead"),
}


def _unknown_name(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(CONFIGS), n=1)
    return ConfigError(f"unknown model config '{name}'",
                       evidence="built-in configs: " + ", ".join(sorted(CONFIGS)),
                       fix=(f"did you mean '{close[0]}'? " if close else "")
                       + "pass a built-in name or the path of a pysot experiments/<name>/config.yaml")


#: pysot/core/config.py's keys per section (its yacs loader refuses any other); TRAIN / DATASET are training-only
PYSOT_KEYS = {
    "META_ARC": (), "CUDA": (), "TRAIN": None, "DATASET": None,
    "BACKBONE": ("TYPE", "KWARGS", "PRETRAINED", "TRAIN_LAYERS", "LAYERS_LR", "TRAIN_EPOCH"),
    "ADJUST": ("ADJUST", "KWARGS", "TYPE"), "RPN": ("TYPE", "KWARGS"), "MASK": ("MASK", "TYPE", "KWARGS"),
    "REFINE": ("REFINE", "TYPE"), "ANCHOR": ("STRIDE", "RATIOS", "SCALES", "ANCHOR_NUM"),
    "TRACK": ("TYPE", "PENALTY_K", "WINDOW_INFLUENCE", "LR", "EXEMPLAR_SIZE", "INSTANCE_SIZE", "BASE_SIZE",
              "CONTEXT_AMOUNT", "LOST_INSTANCE_SIZE", "CONFIDENCE_LOW", "CONFIDENCE_HIGH", "MASK_THERSHOLD",
              "MASK_OUTPUT_SIZE"),
}
#: first-release keys that pysot's own _lt yaml still carries beside KWARGS (ignored: KWARGS says the same)
_LEGACY_KEYS = {"BACKBONE": ("LAYERS", "CHANNELS"), "ADJUST": ("ADJUST_CHANNEL",), "RPN": ("WEIGHTED",)}
_PYSOT_TREE = "https://github.com/STVIR/pysot/tree/master/experiments"
#: pysot tracker classes siamtrt reproduces (TRACK.TYPE)
TRACKER_TYPES = ("SiamRPNTracker", "SiamRPNLTTracker")
_SUPPORTED = (f"siamtrt exports pysot SiamRPN++ (TRACK.TYPE {' or '.join(TRACKER_TYPES)}, MASK.MASK false) "
              "with backbone {backbone}, neck {adjust}, head {rpn}").format(
                  **{k: "/".join(v) for k, v in SUPPORTED_TYPES.items()})
_USE_SIAMRPN = (f"use a siamrpn_* config.yaml from {_PYSOT_TREE} (e.g. siamrpn_r50_l234_dwxcorr) or a built-in "
                "name: " + ", ".join(sorted(CONFIGS)))


def _check_pysot_keys(path: Path, raw: Dict[str, Any]) -> None:
    """Refuse keys pysot does not know (a typo'd TRACK key would silently fall back to pysot's default) and
    pysot's first-release format (dotted TYPE paths, no KWARGS), whose architecture keys mean something else."""
    sec_dicts = {k: v for k, v in raw.items() if isinstance(v, dict)}
    first = [f"{k}.TYPE {v['TYPE']}" for k, v in sec_dicts.items() if "." in str(v.get("TYPE", ""))] + [
        f"{k}.{key}" for k, keys in _LEGACY_KEYS.items() for key in keys if key in sec_dicts.get(k, {})
        and "KWARGS" not in sec_dicts[k]]
    if first:
        raise ConfigError(f"{path} is a first-release pysot config (dotted TYPE paths; LAYERS / CHANNELS / "
                          "ADJUST_CHANNEL / WEIGHTED where today's files have KWARGS)",
                          evidence="first-release entries: " + ", ".join(first),
                          fix=f"use the file of the same name from {_PYSOT_TREE}/<name>/config.yaml (the model zoo's "
                              "checkpoints match it)")
    sections = [("", list(raw), list(PYSOT_KEYS))] + [
        (sec + ".", list(sec_dicts[sec]), list(keys) + list(_LEGACY_KEYS.get(sec, ())))
        for sec, keys in PYSOT_KEYS.items() if keys and sec in sec_dicts]
    for prefix, keys, known in sections:
        for key in (k for k in keys if k not in known):
            close = [k for k in known if k.lower() == str(key).lower()] or \
                difflib.get_close_matches(str(key), known, n=1)  # `track:` is TRACK, not a key to remove
            raise ConfigError(f"{path}: unknown key {prefix}{key}",
                              evidence=f"pysot's keys{' in ' + prefix[:-1] if prefix else ''}: " + ", ".join(known),
                              fix=(f"did you mean {close[0]}? " if close else "remove it; ")
                              + "pysot itself refuses keys it does not know (pysot/core/config.py)")


def config_from_pysot_yaml(path: Union[str, Path]) -> ModelConfig:
    """Read a pysot ``experiments/<name>/config.yaml`` into a ModelConfig (pysot defaults for absent keys).

    The config is named after its folder (``<name>``; a file not called config.yaml after its stem): pysot copies
    META_ARC between experiments (its _lt, 8gpu and 16gpu files all say siamrpn_r50_l234_dwxcorr).
    """
    import yaml  # export-side dependency only

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config file {path}", evidence=str(e),
                          fix="pass a readable pysot config.yaml or a built-in name") from None
    if not isinstance(raw, dict) or "BACKBONE" not in raw:
        raise ConfigError(f"{path} is not a pysot config (no BACKBONE section)",
                          evidence=f"top-level keys: {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}",
                          fix="use a file from pysot's experiments/ folder")
    _check_pysot_keys(path, raw)
    if (raw.get("MASK") or {}).get("MASK"):
        raise ConfigError(f"{path} describes a SiamMask model (MASK.MASK: true), which siamtrt does not export",
                          evidence=_SUPPORTED, fix=_USE_SIAMRPN)
    bb = raw["BACKBONE"]
    adj = raw.get("ADJUST") or {}
    rpn = raw.get("RPN") or {}
    trk = raw.get("TRACK") or {}
    anc = raw.get("ANCHOR") or {}
    ttype = trk.get("TYPE", "SiamRPNTracker")
    if ttype not in TRACKER_TYPES:
        raise ConfigError(f"{path}: TRACK.TYPE {ttype!r} is not supported", evidence=_SUPPORTED, fix=_USE_SIAMRPN)
    adjust = adj.get("TYPE", "AdjustAllLayer") if adj.get("ADJUST", True) else None
    for kind, value in (("backbone", bb.get("TYPE")), ("adjust", adjust), ("rpn", rpn.get("TYPE", "MultiRPN"))):
        if value is not None and value not in SUPPORTED_TYPES[kind]:
            raise ConfigError(f"{path}: {kind} type {value!r} is not supported", evidence=_SUPPORTED,
                              fix=_USE_SIAMRPN)
    # Defaults below are pysot/core/config.py's.
    lt = {}
    if ttype == "SiamRPNLTTracker":  # pysot/core/config.py defaults for the keys the yaml leaves out
        lt = dict(mode="longterm", lost_instance_size=int(trk.get("LOST_INSTANCE_SIZE", 831)),
                  confidence_low=float(trk.get("CONFIDENCE_LOW", 0.85)),
                  confidence_high=float(trk.get("CONFIDENCE_HIGH", 0.998)))
    track = _yaml_track(path, trk, lt)
    anchor = AnchorConfig(stride=int(anc.get("STRIDE", 8)),
                          ratios=tuple(float(r) for r in anc.get("RATIOS", [0.33, 0.5, 1, 2, 3])),
                          scales=tuple(float(s) for s in anc.get("SCALES", [8])))
    n = len(anchor.ratios) * len(anchor.scales)  # the head's outputs per position (pysot: ratios × scales)
    given = {k: v for k, v in (("ANCHOR.ANCHOR_NUM", anc.get("ANCHOR_NUM")),
                               ("RPN.KWARGS.anchor_num", (rpn.get("KWARGS") or {}).get("anchor_num"))) if v is not None}
    if any(int(v) != n for v in given.values()):
        raise ConfigError(f"{path}: the anchor count does not match ANCHOR.RATIOS × SCALES",
                          evidence=f"{len(anchor.ratios)} ratios × {len(anchor.scales)} scales = {n}; "
                                   + ", ".join(f"{k} {v}" for k, v in given.items()),
                          fix=f"set {' and '.join(given)} to {n}, or the ratios / scales the model was trained with")
    name = path.absolute().parent.name if path.name == "config.yaml" else path.stem  # a link keeps its folder
    return ModelConfig(name=name, family="pysot", backbone=bb["TYPE"], backbone_kwargs=_freeze(bb.get("KWARGS") or {}),
                       adjust=adjust, adjust_kwargs=_freeze(adj.get("KWARGS") or {}) if adjust else (),
                       rpn=rpn.get("TYPE", "MultiRPN"), rpn_kwargs=_freeze(rpn.get("KWARGS") or {}),
                       anchor=anchor, track=track, description=f"from {path}")


def _yaml_track(path: Path, trk: Dict[str, Any], lt: Dict[str, Any]) -> TrackConfig:
    """TrackConfig from a pysot TRACK section (pysot defaults); inconsistent constants → one-line ConfigError."""
    try:
        return TrackConfig(penalty_k=float(trk.get("PENALTY_K", 0.04)),
                           window_influence=float(trk.get("WINDOW_INFLUENCE", 0.44)), lr=float(trk.get("LR", 0.4)),
                           exemplar_size=int(trk.get("EXEMPLAR_SIZE", 127)),
                           instance_size=int(trk.get("INSTANCE_SIZE", 255)), base_size=int(trk.get("BASE_SIZE", 8)),
                           context_amount=float(trk.get("CONTEXT_AMOUNT", 0.5)), **lt)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e.what}") from None


def with_longterm(cfg: "ModelConfig", lost_instance_size: int = 831, **constants: Any) -> "ModelConfig":
    """``cfg`` with a long-term lost search size (what ``export/to_onnx.py --lost-instance-size`` exports)."""
    track = dataclasses.replace(cfg.track, lost_instance_size=int(lost_instance_size), **constants)
    return dataclasses.replace(cfg, track=track)


def get_config(name_or_path: Union[str, Path]) -> ModelConfig:
    """Resolve a built-in config name or a pysot yaml path.

    Raises:
        ConfigError: unknown name (with the closest valid name) or unreadable/unsupported yaml.
    """
    s = str(name_or_path)
    if s in CONFIGS:
        return CONFIGS[s]
    if s.endswith((".yaml", ".yml")) or Path(s).is_file():
        return config_from_pysot_yaml(s)
    raise _unknown_name(s)
