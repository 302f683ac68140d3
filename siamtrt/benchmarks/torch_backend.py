"""The PyTorch reference backend: the baseline users would run without siamtrt (eager PyTorch, as pysot runs it).

It implements the runtime's :class:`~siamtrt.runtime.backend.Backend` contract, so the same :class:`Tracker` (crop,
post-processing) drives it and the speed ratio isolates the inference path. It lives in ``siamtrt.benchmarks``
because ``siamtrt.runtime`` never imports torch.

Modes:
- ``reference`` (default): pysot's ModelBuilder computation — ``template`` stores the neck features, and every frame
  ``track`` runs backbone + neck + the whole RPN head, recomputing the template-side ``conv_kernel`` convolutions and
  using pysot's static (batch-folded) depthwise correlation. The "kernels" this backend hands to the tracker are the
  stored features (one array per level, repeated under the names the metadata lists), so the tracker's per-target
  bookkeeping works unchanged. DaSiamRPN's reference already caches its kernels at ``temple`` time.
- ``split``: the deployable split (kernels computed once, as in the exported ONNX) in eager PyTorch.

Threads: ``torch.set_num_threads(threads)`` (pysot's tools set 1; the benchmarks use the same count for every
backend and print it). Inference runs under ``torch.inference_mode`` in eval mode.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import BackendError, CheckpointError
from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT
from ..modeldir import TEMPLATE_ONNX
from ..runtime.backend import Backend, InputMetadata
from ..runtime.cpu import cpu_threads

LOG = logging.getLogger(__name__)

MODES = ("reference", "split")
# ONNX vs PyTorch template outputs above this relative error mean the weights are not the exported ones.
WEIGHTS_MATCH_RTOL = 1e-3


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise BackendError("the torch reference backend needs PyTorch", evidence=repr(e),
                           fix="pip install torch (CPU build: --index-url https://download.pytorch.org/whl/cpu), "
                               "or benchmark without --backend torch") from None
    return torch


def _seeded_random_model(cfg, seed: int, weights_cache: Optional[Tuple[Path, str]] = None):
    """``realistic_random_model(cfg, seed)``, read from / written to ``weights_cache`` = (file, key) when given: the
    file holds the state dict and the key of the export it belongs to (a different key rebuilds it)."""
    import torch

    from ..export.random_init import realistic_random_model

    if weights_cache is not None:
        path, key = weights_cache
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key and saved.get("seed") == seed:
                from ..export.models import build_model

                model = build_model(cfg)
                model.load_state_dict(saved["state_dict"])
                return model.eval()
        except (OSError, RuntimeError, KeyError, AttributeError, ValueError) as e:
            LOG.debug("torch: no usable reference weights in %s (%s)", path, e)
    torch.manual_seed(seed)
    model = realistic_random_model(cfg, seed=seed).eval()
    if weights_cache is not None:
        save_reference_weights(weights_cache[0], weights_cache[1], seed, model)
    return model


def save_reference_weights(path: Path, key: str, seed: int, model: Any) -> None:
    """Cache a seeded random model's state dict for the export with cache key ``key`` (a failure only warns: the
    reference then rebuilds its weights next time)."""
    import torch

    try:
        torch.save({"key": key, "seed": int(seed), "state_dict": model.state_dict()}, path)
    except OSError as e:
        LOG.warning("torch: could not cache the reference weights in %s (%s)", path, e)


def build_reference_model(meta: Dict[str, Any], checkpoint: Optional[Union[str, Path]] = None,
                          random_fallback: bool = False, weights_cache: Optional[Tuple[Path, str]] = None):
    """The PyTorch model behind a model directory: its config from the metadata, weights from ``checkpoint`` or
    re-created from the recorded random seed.

    Args:
        meta (dict): the directory's metadata (config, checkpoint_sha256).
        checkpoint (str | Path): the trained weights. Defaults to None.
        random_fallback (bool): for a trained directory without ``checkpoint``, use seeded random weights of the
            same architecture (the speed is the same; the boxes are not). Defaults to False.
        weights_cache (tuple): (file, key) where seeded random weights are cached for the export with that key
            (the benchmarks' cached exports; see :func:`_seeded_random_model`). Defaults to None (rebuild).

    Returns:
        tuple: (model in eval mode, weights description: "checkpoint <sha8>", "random-seed-<n>" or
        "random-seed-0 (timing only: not the exported weights)").

    Raises:
        CheckpointError: a trained directory without ``checkpoint`` (and no fallback), or a checkpoint whose sha256
            differs from the one recorded at export.
    """
    _import_torch()

    from ..config import ModelConfig
    from ..export.models import build_model

    cfg = ModelConfig.from_dict(meta["config"])
    sha = str(meta.get("checkpoint_sha256", ""))
    if checkpoint is not None:
        from ..export.checkpoint import load_checkpoint

        model = build_model(cfg)
        got = load_checkpoint(model, checkpoint, cfg)
        if not sha.startswith("random-seed-") and got != sha:
            raise CheckpointError(f"checkpoint {checkpoint} is not the one this model directory was exported from",
                                  evidence=f"sha256 {got[:16]}… vs metadata {sha[:16]}…",
                                  fix="pass the checkpoint given to export/to_onnx.py")
        return model.eval(), f"checkpoint {got[:8]}"
    m = re.fullmatch(r"random-seed-(\d+)", sha)
    if not m and random_fallback:
        from ..export.random_init import realistic_random_model

        return realistic_random_model(cfg, seed=0).eval(), "random-seed-0 (timing only: not the exported weights)"
    if not m:
        raise CheckpointError("the torch reference needs the trained checkpoint of this model directory",
                              evidence=f"metadata checkpoint_sha256 = {sha[:16]}… (trained weights)",
                              fix="pass --checkpoint model.pth (the file given to export/to_onnx.py)")
    return _seeded_random_model(cfg, int(m.group(1)), weights_cache), f"random-seed-{m.group(1)}"


class TorchBackend(Backend):
    """Eager PyTorch backend (see the module docstring).

    Args:
        model: a PyTorch model from ``siamtrt.export.models`` (``template``/``track``/``reference_*`` methods).
        meta (dict): the model directory's metadata (names the kernels).
        threads (int): ``torch.set_num_threads``. Defaults to the number of physical cores.
        mode (str): "reference" or "split". Defaults to "reference".
    """

    name = "torch"
    short = "torch"
    file_names = ()
    option_names = ("threads", "mode")

    def __init__(self, model: Any, meta: Dict[str, Any], **options: Any):
        super().__init__(lambda: b"", lambda: b"", meta, **options)
        mode = options.get("mode", "reference")
        if mode not in MODES:
            raise BackendError(f"unknown torch backend mode {mode!r}", evidence=f"valid: {MODES}")
        self.mode = mode
        self.model = model
        self.threads = 0
        self._levels = 0
        self.weights = "given model"

    @classmethod
    def from_model_dir(cls, model_dir: Union[str, Path], meta: Dict[str, Any], checkpoint=None,
                       random_fallback: bool = False, weights_cache: Optional[Tuple[Path, str]] = None,
                       **options: Any) -> "TorchBackend":
        """Rebuild the PyTorch model of ``model_dir`` (see :func:`build_reference_model`)."""
        model, weights = build_reference_model(meta, checkpoint, random_fallback, weights_cache)
        be = cls(model, meta, **options)
        be.weights = weights
        return be

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        import importlib.util

        return None if importlib.util.find_spec("torch") is not None else "torch is not installed"

    # ------------------------------------------------------------------------------------------------ hooks
    def _activate(self) -> None:
        torch = _import_torch()
        self.threads = cpu_threads(self.options.get("threads"))
        torch.set_num_threads(self.threads)
        self.model.eval()
        # pysot's correlation is the batch-folded grouped conv; the split mode keeps whatever the model was built with
        if self.mode == "reference":
            self.model.dynamic_batch = False
        names = self.template_output_names
        self._levels = max(1, len(names) // 2)
        LOG.info("torch: %s threads=%d mode=%s", torch.__version__, self.threads, self.mode)

    def _deactivate(self) -> None:
        pass

    def _input_metadata(self, branch: str) -> InputMetadata:
        f32 = np.dtype(np.float32)
        if branch == "template":
            return {TEMPLATE_INPUT: (f32, (None, 3, None, None))}
        meta = {SEARCH_INPUT: (f32, (None, 3, None, None))}
        meta.update({n: (f32, (None, None, None, None)) for n in self.template_output_names})
        return meta

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import torch

        names = self.template_output_names
        with torch.inference_mode():
            if branch == "template":
                z = torch.from_numpy(feed[TEMPLATE_INPUT])
                if self.mode == "split" or self.meta.get("family") == "dasiamrpn":
                    return {n: np.ascontiguousarray(t.numpy()) for n, t in zip(names, self.model.template(z))}
                self.model.reference_template(z)
                zf = self.model.zf
                levels: List[Any] = list(zf) if isinstance(zf, (list, tuple)) else [zf]
                # name pairs (cls_kernel_L, loc_kernel_L) share level L's stored features
                arrays = [np.ascontiguousarray(f.numpy()) for f in levels]  # the neck's centre crop is a view
                return {n: arrays[i // 2] for i, n in enumerate(names)}
            x = torch.from_numpy(feed[SEARCH_INPUT])
            if self.mode == "split" or self.meta.get("family") == "dasiamrpn":
                cls, loc = self.model.track(x, *(torch.from_numpy(feed[n]) for n in names))
            else:
                zf = [torch.from_numpy(feed[names[2 * i]]) for i in range(self._levels)]
                self.model.zf = zf if getattr(self.model, "levels", None) else zf[0]
                cls, loc = self.model.reference_track(x)
            return {"cls": cls.numpy(), "loc": loc.numpy()}


def check_weights_match(backend: TorchBackend, model_dir: Union[str, Path], crop: np.ndarray) -> Tuple[bool, float]:
    """Compare the torch template outputs with ``template.onnx`` on one crop (split mode, ONNX Runtime CPU).

    Returns:
        tuple: (match within WEIGHTS_MATCH_RTOL, relative error).
    """
    import onnxruntime as ort

    torch = _import_torch()
    sess = ort.InferenceSession(str(Path(model_dir) / TEMPLATE_ONNX), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {TEMPLATE_INPUT: crop})))
    with torch.inference_mode():
        got = backend.model.template(torch.from_numpy(crop))
    worst = 0.0
    for name, t in zip(backend.template_output_names, got):
        r = ref[name].astype(np.float64)
        worst = max(worst, float(np.abs(t.numpy() - r).max() / max(np.abs(r).max(), 1e-12)))
    return worst <= WEIGHTS_MATCH_RTOL, worst
