"""Writing a model directory (an export, or a derived fp16 / int8 copy) so that it is never seen half-written.

A derived directory holds ``template.onnx`` and ``search.onnx`` with the same I/O names and float32 I/O as the
source, the source metadata copied, ``precision`` changed, and one extra key describing how it was made
(``quantization``). Nothing else is copied (engines are per-precision and must be rebuilt from the new ONNX).

Every writer of a model directory — ``export/to_onnx.py``, ``quantize.py --precision fp16`` and ``--precision int8``
— writes inside :func:`staged_model_dir`: the files go to a temporary folder beside ``out`` that is renamed into
place only when the block completes, so an error or Ctrl-C leaves ``out`` as it was. Files are named by
:mod:`siamtrt.modeldir`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from ..errors import InputError, ModelDirError
from ..metadata import set_onnx_metadata
from ..modeldir import BRANCHES, ENGINE_FILES, ONNX_FILES, TRT_CACHE_FILES, ModelDir, sidecar_path
from ..outputs import check_writable, staged_dir

LOG = logging.getLogger(__name__)

#: what belongs to the ONNX files a directory held before: replaced ONNX files make them stale
_STALE = tuple(ENGINE_FILES[b] for b in BRANCHES) + tuple(sidecar_path(ENGINE_FILES[b]).name for b in BRANCHES) \
    + tuple(TRT_CACHE_FILES[b] for b in BRANCHES)


def check_model_out_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None) -> Path:
    """Refuse, before any work, an output directory a model directory cannot be written to.

    Accepted: a new or empty folder, or an existing model directory (it is updated once the new one is complete;
    its engines and calibration caches, made from the ONNX files being replaced, are dropped).

    Raises:
        InputError: ``out`` is ``source``, a file, not writable, or a non-empty folder that is not a model directory.
    """
    out = Path(out)
    if source is not None and out.resolve() == Path(source).resolve():
        raise InputError(f"the output directory {out} is the source directory",
                         fix="pass a new --out, e.g. models/NAME_int8")
    check_writable([], dirs=[out])
    if out.is_dir() and any(out.iterdir()) and not any((out / f).is_file() for f in ONNX_FILES.values()):
        raise InputError(f"output directory {out} holds other files and no model",
                         evidence=f"holds {sorted(p.name for p in out.iterdir())[:8]}",
                         fix="choose a new or empty output directory")
    return out


@contextlib.contextmanager
def staged_model_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None) -> Iterator[Path]:
    """Write a model directory into the yielded temporary folder; it becomes ``out`` when the block completes.

    Usage (the int8 and fp16 writers)::

        with staged_model_dir(out_dir, source=src.path) as stage:
            save_branch(model, stage, "template", meta)     # and any extra file (calibration caches) into stage
            save_branch(model, stage, "search", meta)
        # out_dir now holds the complete directory; on an exception or KeyboardInterrupt it is as it was

    Args:
        out (str | Path): the directory the caller promises (checked by :func:`check_model_out_dir`).
        source (str | Path): the directory it is made from, which must not be ``out``. Defaults to None.

    Raises:
        InputError: see :func:`check_model_out_dir`.
    """
    out = check_model_out_dir(out, source)
    with staged_dir(out, keep_existing=True) as stage:
        stale = [name for name in _STALE if (stage / name).exists()]
        for name in stale:
            (stage / name).unlink()
        if stale:
            LOG.info("model dir: %s made from the replaced ONNX files are dropped: %s", out, ", ".join(stale))
        yield stage


def derived_metadata(source: ModelDir, branch: str, precision: str, details: Dict[str, Any]) -> Dict[str, Any]:
    """Source metadata with ``precision`` changed and the ``quantization`` entry added."""
    meta = dict(source.branch_meta(branch))
    meta["precision"] = precision
    meta["quantization"] = dict(details)
    return meta


def save_branch(model, out_dir: Path, branch: str, meta: Dict[str, Any]) -> Path:
    """Write one derived branch (into a :func:`staged_model_dir` stage) after ``onnx.checker`` validated it."""
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


__all__ = ["check_model_out_dir", "derived_metadata", "save_branch", "staged_model_dir"]
