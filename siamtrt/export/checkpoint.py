"""Load a user's ``model.pth`` safely and strictly, or explain exactly why it does not fit.

Accepts what the public releases and training scripts write: a bare state_dict (pysot model zoo, DaSiamRPN
releases), or a dict holding it under ``state_dict`` (pysot ``restore_from`` snapshots); a ``module.`` prefix from
DataParallel is stripped. Always ``torch.load(weights_only=True)``: a checkpoint holding arbitrary Python objects is
refused, never unpickled. Never loads partially.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Dict, List, Tuple, Union

import torch
import torch.nn as nn

from ..config import CONFIGS, ModelConfig
from ..errors import CheckpointError, folder_listing
from ..metadata import file_sha256

log = logging.getLogger(__name__)


def _refused_objects(text: str, path: Path) -> bool:
    """Whether torch's safe unpickler refused content (a Python object / global) rather than unreadable bytes: it
    names a global it blocks, or the file is a whole pickle stream (PROTO opcode first, STOP last) it cannot read."""
    if "Weights only load failed" not in text:
        return False
    if "global" in text.lower():
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(-1, 2)
            tail = f.read(1)
    except OSError:
        return False
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and tail == b"."


def require_checkpoint(path: Union[str, Path]) -> Path:
    """``path`` as a Path, or the error every exporter gives for a checkpoint that is not there."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", evidence=folder_listing(path.parent),
                              fix="pass the path of your checkpoint (pysot model.pth, DaSiamRPN SiamRPN*.model)")
    return path


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read tensors from a checkpoint file (weights only), unwrapped and with ``module.`` stripped."""
    path = require_checkpoint(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        detail = " ".join(ln.strip().replace("Please file an issue with the following so that we can make "
                                             "`weights_only=True` compatible with your use case: ", "")
                          for ln in text.splitlines()[1:]
                          if ln.strip() and not ln.startswith(("Check the documentation", "Weights only")))
        if not _refused_objects(text, path):  # not refused content: the bytes are not a readable pickle
            raise CheckpointError(f"cannot read checkpoint {path} (truncated or corrupt?)",
                                  evidence=f"{(detail or text.splitlines()[0] if text else repr(e))[:300]} (file "
                                           f"size {path.stat().st_size} bytes)",
                                  fix="download the model again and check its size/hash") from None
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects other than tensors, which safe loading "
            "(torch.load(weights_only=True)) refuses — none of them was run",
            evidence=(detail or text.splitlines()[0])[:300],
            fix="siamtrt only reads weights. If you trust the file, re-save its state_dict: "
                "torch.save(torch.load(p, weights_only=False)['state_dict'], 'clean.pth')") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or corrupt?)",
                              evidence=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
                                       f" (file size {path.stat().st_size} bytes)",
                              fix="download the model again and check its size/hash") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict",
                              evidence=f"top-level object: {type(obj).__name__}"
                              + (f" with keys {list(obj)[:8]}" if isinstance(obj, dict) else ""),
                              fix="pass a file saved with torch.save(model.state_dict(), path)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _signature(model_or_sd) -> Dict[str, Tuple[int, ...]]:
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    return {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def config_signatures() -> Dict[str, Dict[str, Tuple[int, ...]]]:
    """state_dict key → shape for every built-in config, built on the meta device (no memory, fast)."""
    from .models import build_model

    out = {}
    with torch.device("meta"):
        for name, cfg in CONFIGS.items():
            out[name] = _signature(build_model(cfg))
    return out


def likely_configs(sd: Dict[str, torch.Tensor], top: int = 2) -> List[Tuple[str, float]]:
    """Built-in configs ranked by how many (key, shape) pairs they share with ``sd``."""
    sig = _signature(sd)
    scores = []
    for name, ref in config_signatures().items():
        common = sum(1 for k, s in sig.items() if ref.get(k) == s)
        scores.append((name, common / max(len(ref), len(sig), 1)))
    return sorted(scores, key=lambda t: -t[1])[:top]


def _short(keys: List[str], n: int = 12) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", … ({len(keys) - n} more)" if len(keys) > n else "") if keys else "none"


def load_checkpoint(model: nn.Module, path: Union[str, Path], cfg: ModelConfig = None) -> str:
    """Load ``path`` into ``model`` strictly; return the file's sha256.

    Raises:
        CheckpointError: unreadable/unsafe file, or keys/shapes that do not match the architecture (lists the
            missing and unexpected keys, and names a built-in config only where the checkpoint fits it exactly).
    """
    sd = read_state_dict(path)
    expected = _signature(model)
    got = _signature(sd)
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    wrong_shape = [f"{k}: checkpoint {got[k]} vs model {expected[k]}" for k in expected
                   if k in got and got[k] != expected[k]]
    if missing or unexpected or wrong_shape:
        arch = cfg.name if cfg is not None else type(model).__name__
        guess = likely_configs(sd)
        hint = ", ".join(f"{n} ({s:.0%} of keys match)" for n, s in guess)
        if guess and guess[0][1] == 1.0:  # every key and shape: the checkpoint loads into it
            fix = f"pass the matching --config (likely '{guess[0][0]}') or the config.yaml the model was trained with"
        else:  # a partial overlap (the _lt r50 shares 81% with the r50s) or a foreign network: naming one is a guess
            hint += " — it matches none of the built-in configs (none has all its keys and shapes)"
            fix = ("pass the config.yaml the model was trained with (pysot: experiments/<name>/config.yaml beside "
                   "the model.pth), and check that the file is a pysot / DaSiamRPN tracker checkpoint")
        raise CheckpointError(
            f"checkpoint {path} does not match the architecture '{arch}'",
            evidence=(f"missing keys ({len(missing)}): {_short(missing)}\n"
                      f"unexpected keys ({len(unexpected)}): {_short(unexpected)}\n"
                      f"shape mismatches ({len(wrong_shape)}): {_short(wrong_shape, 6)}\n"
                      f"closest built-in configs: {hint}"),
            fix=fix)
    # BatchNorm's num_batches_tracked is absent from pre-0.4.1 checkpoints; fill it so strict loading passes.
    full = dict(sd)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in full:
            full[k] = torch.zeros_like(v)
    full = {k: v for k, v in full.items() if k in model.state_dict()}
    model.load_state_dict(full, strict=True)
    return file_sha256(path)
