"""Reading a source model directory and writing a derived one (fp16 / int8) that keeps its metadata.

A derived directory holds ``template.onnx`` and ``search.onnx`` with the same I/O names and float32 I/O as the
source, the source metadata copied, ``precision`` changed, and one extra key describing how it was made
(``quantization``). Nothing else is copied (engines are per-precision and must be rebuilt from the new ONNX).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import ModelDirError
from ..metadata import SEARCH_ONNX, TEMPLATE_ONNX, file_sha256, set_onnx_metadata

LOG = logging.getLogger(__name__)

BRANCH_FILES = {"template": TEMPLATE_ONNX, "search": SEARCH_ONNX}


@dataclass
class ModelDir:
    """An exported model directory and the metadata of both branches."""

    path: Path
    meta: Dict[str, Dict[str, Any]]  # branch → metadata

    @property
    def search_meta(self) -> Dict[str, Any]:
        return self.meta["search"]

    @property
    def precision(self) -> str:
        return str(self.search_meta.get("precision", "fp32"))

    def onnx(self, branch: str) -> Path:
        return self.path / BRANCH_FILES[branch]

    def sha256(self, branch: str) -> str:
        return file_sha256(self.onnx(branch))

    @property
    def exemplar_size(self) -> int:
        return int(self.search_meta["exemplar_size"])

    @property
    def instance_size(self) -> int:
        return int(self.search_meta["instance_size"])

    @property
    def alt_instance_size(self) -> Optional[int]:
        """The adaptive model's small-target search size (SiamRPNBIG: 287), else None."""
        v = (self.search_meta.get("track") or {}).get("adaptive_instance_size")
        return None if v is None else int(v)

    @property
    def template_outputs(self):
        return list(self.search_meta["template_outputs"])

    @property
    def dynamic_batch(self) -> bool:
        return str(self.search_meta.get("batch", "dynamic")) != "1"


def open_model_dir(path: Union[str, Path], *, require_fp32: bool = False) -> ModelDir:
    """Read and cross-check both branches' metadata of an exported directory (via :mod:`siamtrt.runtime.modeldir`).

    Raises:
        ModelDirError: missing directory/files, foreign ONNX, branches from different exports, a plugin-xcorr
            directory (ONNX Runtime cannot run it), or (``require_fp32``) a directory that is already reduced
            precision.
    """
    from ..runtime.modeldir import check_model_dir, read_model_dir

    path = Path(path)
    tmeta, smeta = read_model_dir(path)   # the runtime's reader and cross-checks: one definition of "valid"
    check_model_dir(path, tmeta, smeta)
    md = ModelDir(path=path, meta={"template": tmeta, "search": smeta})
    if md.search_meta.get("xcorr") == "plugin":
        raise ModelDirError(f"{path} uses the DepthwiseXCorr TensorRT plugin node, which ONNX Runtime cannot run "
                            "(calibration runs the model in ONNX Runtime)",
                            evidence="metadata xcorr = 'plugin'",
                            fix="export a plugin-free directory (--xcorr conv), quantize that, then build engines")
    if require_fp32 and md.precision != "fp32":
        raise ModelDirError(f"{path} is already a {md.precision} directory",
                            evidence=f"metadata precision = {md.precision!r}",
                            fix="quantize the original fp32 export instead (the one written by export/to_onnx.py)")
    return md


def derived_metadata(source: ModelDir, branch: str, precision: str, details: Dict[str, Any]) -> Dict[str, Any]:
    """Source metadata with ``precision`` changed and the ``quantization`` entry added."""
    meta = dict(source.meta[branch])
    meta["precision"] = precision
    meta["quantization"] = dict(details)
    return meta


def save_branch(model, out_dir: Path, branch: str, meta: Dict[str, Any]) -> Path:
    """Write one derived branch after ``onnx.checker`` validated it."""
    import onnx

    set_onnx_metadata(model, meta)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelDirError(f"the {meta.get('precision')} {branch} model fails onnx.checker",
                            evidence=str(e).splitlines()[0][:400],
                            fix="report this with the command line; try another --target/--method") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / BRANCH_FILES[branch]
    onnx.save(model, str(dst))
    return dst


__all__ = ["BRANCH_FILES", "ModelDir", "derived_metadata", "open_model_dir", "save_branch"]
