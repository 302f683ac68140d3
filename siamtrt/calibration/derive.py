"""Writing a derived model directory (fp16 / int8) that keeps its source's metadata.

A derived directory holds ``template.onnx`` and ``search.onnx`` with the same I/O names and float32 I/O as the
source, the source metadata copied, ``precision`` changed, and one extra key describing how it was made
(``quantization``). Nothing else is copied (engines are per-precision and must be rebuilt from the new ONNX).
Files are named by :mod:`siamtrt.modeldir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..errors import ModelDirError
from ..metadata import set_onnx_metadata
from ..modeldir import ONNX_FILES, ModelDir


def derived_metadata(source: ModelDir, branch: str, precision: str, details: Dict[str, Any]) -> Dict[str, Any]:
    """Source metadata with ``precision`` changed and the ``quantization`` entry added."""
    meta = dict(source.branch_meta(branch))
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
    dst = out_dir / ONNX_FILES[branch]
    onnx.save(model, str(dst))
    return dst


__all__ = ["derived_metadata", "save_branch"]
