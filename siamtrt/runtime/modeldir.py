"""Read and cross-check a model directory's metadata: the runtime trusts it instead of flags, so it refuses
directories whose two branches disagree or that this version cannot interpret.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from .. import __version__
from ..config import FLAVOURS, AnchorConfig, TrackConfig
from ..errors import ModelDirError
from ..metadata import SEARCH_ONNX, TEMPLATE_ONNX, read_onnx_metadata

# Keys both branches must agree on.
SHARED_KEYS = ("arch", "family", "exemplar_size", "instance_size", "score_size", "anchor", "track",
               "template_outputs", "xcorr", "batch", "checkpoint_sha256")
REEXPORT = "re-export the directory: python export/to_onnx.py --config NAME --checkpoint model.pth --out DIR"


@dataclass(frozen=True)
class ModelInfo:
    """What the tracker needs from a model directory.

    Attributes:
        path (Path): the directory. meta (dict): search-branch metadata (the full key set).
        track (TrackConfig): tracker hyper-parameters. anchor (AnchorConfig): anchor grid.
    """

    path: Path
    meta: Dict[str, Any]
    track: TrackConfig
    anchor: AnchorConfig

    @property
    def flavour(self) -> str:
        return self.track.flavour


def read_model_dir(model_dir: Union[str, Path]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(template metadata, search metadata) from the two ONNX files.

    Raises:
        ModelDirError: directory or file missing, unreadable, or without siamtrt metadata.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory {model_dir} does not exist" if not model_dir.exists()
                            else f"{model_dir} is a file, not a model directory",
                            fix="pass the folder written by python export/to_onnx.py (it holds template.onnx, "
                                "search.onnx)")
    missing = [f for f in (TEMPLATE_ONNX, SEARCH_ONNX) if not (model_dir / f).is_file()]
    if missing:
        raise ModelDirError(f"model directory {model_dir} lacks {missing}",
                            evidence=f"present: {sorted(p.name for p in model_dir.iterdir())}", fix=REEXPORT)
    return read_onnx_metadata(model_dir / TEMPLATE_ONNX), read_onnx_metadata(model_dir / SEARCH_ONNX)


def _typed(cls, values: Any, where: str, path: Path):
    if not isinstance(values, dict):
        raise ModelDirError(f"{path}: metadata '{where}' is not a mapping", evidence=repr(values)[:200], fix=REEXPORT)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ModelDirError(f"{path}: metadata '{where}' has keys this siamtrt {__version__} does not know: {unknown}",
                            evidence="written by a newer siamtrt?", fix="upgrade siamtrt or " + REEXPORT)
    try:
        return cls(**values)
    except TypeError as e:
        raise ModelDirError(f"{path}: metadata '{where}' is malformed", evidence=str(e), fix=REEXPORT) from None


def check_model_dir(model_dir: Union[str, Path], tmeta: Dict[str, Any], smeta: Dict[str, Any]) -> ModelInfo:
    """Cross-check the two branches' metadata and turn it into typed parameters.

    Raises:
        ModelDirError: swapped branches, branches from different exports, unknown family/flavour, a major version
        mismatch, or a score size inconsistent with the sizes and stride.
    """
    path = Path(model_dir)
    for meta, want in ((tmeta, "template"), (smeta, "search")):
        if meta.get("branch") != want:
            raise ModelDirError(f"{path}: {want}.onnx carries branch = {meta.get('branch')!r} metadata",
                                evidence="the template and search files are swapped or mislabelled", fix=REEXPORT)
    diff = [k for k in SHARED_KEYS if tmeta.get(k) != smeta.get(k)]
    if diff:
        raise ModelDirError(f"{path}: template.onnx and search.onnx come from different exports",
                            evidence="; ".join(f"{k}: {tmeta.get(k)!r} vs {smeta.get(k)!r}" for k in diff)[:600],
                            fix=REEXPORT)
    major = str(smeta.get("version", "")).split(".")[0]
    if major != __version__.split(".")[0]:
        raise ModelDirError(f"{path} was exported by siamtrt {smeta.get('version')}, incompatible with "
                            f"{__version__}", evidence="major versions differ", fix=REEXPORT)
    if smeta.get("family") not in ("pysot", "dasiamrpn"):
        raise ModelDirError(f"{path}: unknown model family {smeta.get('family')!r}",
                            evidence="known: pysot, dasiamrpn", fix=REEXPORT)
    track = _typed(TrackConfig, smeta["track"], "track", path)
    a = smeta["anchor"]
    try:
        anchor = AnchorConfig(stride=int(a["stride"]), ratios=tuple(float(r) for r in a["ratios"]),
                              scales=tuple(float(s) for s in a["scales"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelDirError(f"{path}: metadata 'anchor' is malformed", evidence=repr(e), fix=REEXPORT) from None
    if track.flavour not in FLAVOURS:
        raise ModelDirError(f"{path}: unknown tracker flavour {track.flavour!r}", evidence=f"known: {FLAVOURS}",
                            fix=REEXPORT)
    expect = track.score_size(anchor.stride)
    if int(smeta["score_size"]) != expect or int(smeta["exemplar_size"]) != track.exemplar_size \
            or int(smeta["instance_size"]) != track.instance_size:
        raise ModelDirError(f"{path}: metadata sizes are inconsistent",
                            evidence=f"score_size {smeta['score_size']} (expected {expect} from instance "
                                     f"{track.instance_size}, exemplar {track.exemplar_size}, stride {anchor.stride}, "
                                     f"base {track.base_size}); exemplar_size {smeta['exemplar_size']}, "
                                     f"instance_size {smeta['instance_size']}", fix=REEXPORT)
    if not smeta.get("template_outputs"):
        raise ModelDirError(f"{path}: metadata lists no template_outputs", fix=REEXPORT)
    return ModelInfo(path=path, meta=smeta, track=track, anchor=anchor)


def load_model_info(model_dir: Union[str, Path]) -> ModelInfo:
    """Read and check a model directory in one call."""
    tmeta, smeta = read_model_dir(model_dir)
    return check_model_dir(model_dir, tmeta, smeta)
