"""One inference contract for every runtime (ONNX Runtime, TensorRT): the tracker only ever talks to this.

A backend runs the two branches of an exported model directory:

* ``run_template(z[N,3,E,E]) -> {name: array}`` — the per-target correlation kernels, named as the metadata key
  ``template_outputs`` lists them;
* ``run_search(x[N,3,S,S], kernels) -> (cls, loc)`` — raw head outputs in the reference channel layout.

Subclasses implement only three hooks (Polygraphy's runner shape): ``_activate()`` loads sessions/engines and
allocates buffers, ``_infer(branch, feed) -> dict`` runs one branch, ``_deactivate()`` frees everything, plus
``_input_metadata(branch)`` describing the inputs the loaded model really has. The base class owns the rest, once:
activation state and the context manager, feed name/shape/dtype checks (cached per shape signature, so a steady
per-frame call costs a dict lookup), splitting a batch for models exported with ``--batch 1``, and timing.

Loading is lazy (nothing heavy in ``__init__``): each branch source is a path, the model bytes, or a zero-argument
callable returning either; it is resolved in ``activate()``. Backends are chosen by name from the registry in
:mod:`siamtrt.runtime.backends`, whose entries import their module only when selected, so ``import siamtrt.runtime``
needs neither onnxruntime nor TensorRT.

**Kernel arrays and the change signal.** A backend may keep device copies of the kernel arrays handed to
``run_search``, keyed by array identity (``id(array)``, keeping a reference to the array it cached), so a steady
frame uploads no kernel. The caller may change an array *in place* only inside a :class:`KernelSet` and must then
call ``kernels.touch(name)``, which bumps that array's version; during ``run_search`` the backend reads the versions
with :meth:`Backend.kernel_version` and re-uploads exactly the arrays whose version differs from the copy it holds
(into the same device buffer: bindings and captured CUDA graphs stay valid). Arrays in a plain dict, and arrays
whose version is unchanged, must not have changed since the backend last saw them. A new array object (targets added,
removed or regrouped) is always a new upload. The tracker keeps its search kernels in persistent KernelSets: short
mode never changes them, distractor mode rewrites its merged classification kernels in place only on frames that
found new distractors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import BackendError, ModelDirError, folder_listing
from ..metadata import SEARCH_INPUT, SEARCH_OUTPUTS, TEMPLATE_INPUT, export_command
from ..modeldir import BRANCHES, SEARCH_ONNX, TEMPLATE_ONNX

Source = Union[str, Path, bytes, Callable[[], Union[str, Path, bytes]]]
#: the other half of every "backend not installed" fix: a deployment carries one engine, whichever it is
OR_AUTO = "or --backend auto (uses the backend installed here)"
# Per input: (numpy dtype, shape with None for a dynamic axis).
InputMetadata = Dict[str, Tuple[np.dtype, Tuple[Optional[int], ...]]]


class KernelSet(dict):
    """The kernels fed to ``run_search`` ({name: array}), with a version per array for in-place changes.

    Whoever writes new values into one of the arrays calls :meth:`touch` afterwards; backends that cache device
    copies compare :meth:`version` with the version they uploaded (see the module docstring).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.versions: Dict[str, int] = {}

    def touch(self, name: str) -> None:
        """Record that ``self[name]`` was changed in place."""
        self.versions[name] = self.versions.get(name, 0) + 1

    def version(self, name: str) -> int:
        """How many in-place changes ``self[name]`` has had (0 for an array never changed)."""
        return self.versions.get(name, 0)


def resolve_source(source: Source) -> Union[Path, bytes]:
    """A path, bytes or zero-argument callable → a Path or bytes (called in ``activate``, never in ``__init__``)."""
    if callable(source):
        source = source()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source)


class Backend:
    """Base class of all inference backends (see the module docstring for the contract).

    Args:
        template (Source): template-branch model (path, bytes or zero-argument callable).
        search (Source): search-branch model.
        meta (dict): the model directory's metadata (search branch); ``template_outputs`` names the kernels.
        **options: backend-specific options (e.g. ``threads`` for ONNX Runtime); unknown ones raise BackendError.
    """

    #: registry name, used in messages and instance names ("ort-search").
    name: str = "base"
    short: str = "base"
    #: files this backend loads from a model directory: (template, search).
    file_names: Tuple[str, str] = (TEMPLATE_ONNX, SEARCH_ONNX)
    #: option names accepted by ``__init__`` (subclasses extend).
    option_names: Tuple[str, ...] = ()

    def __init__(self, template: Source, search: Source, meta: Dict[str, Any], **options: Any):
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            raise BackendError(f"backend '{self.name}' does not accept the options {unknown}",
                               evidence=f"accepted: {list(self.option_names) or 'none'}",
                               fix="remove them or choose the backend they belong to")
        self.sources: Dict[str, Source] = {"template": template, "search": search}
        self.meta = meta
        self.options = options
        self.is_active = False
        self.last_inference_time: Optional[float] = None  # seconds of the last infer() (backend call only)
        self._checked: Dict[str, set] = {b: set() for b in BRANCHES}
        self._input_meta: Dict[str, InputMetadata] = {}
        self._kernel_versions: Dict[str, int] = {}

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_model_dir(cls, model_dir: Union[str, Path], meta: Dict[str, Any], **options: Any) -> "Backend":
        """Backend over ``model_dir``'s files named by :attr:`file_names` (checked to exist, loaded lazily).

        Raises:
            ModelDirError: a file this backend needs is missing.
        """
        model_dir = Path(model_dir)
        paths = [model_dir / f for f in cls.file_names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ModelDirError(f"model directory {model_dir} lacks {missing} needed by the '{cls.name}' backend",
                                evidence=folder_listing(model_dir),
                                fix=cls.missing_files_fix(model_dir))
        return cls(paths[0], paths[1], meta, **options)

    @classmethod
    def missing_files_fix(cls, model_dir: Path) -> str:
        return f"export the model: {export_command(model_dir)}"

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        """Why this backend cannot run here (missing library, no device, missing files), or None when it can.

        Used by ``backend="auto"``; must be cheap and must not raise.
        """
        return None

    # -------------------------------------------------------------------------------------------- activation
    def activate(self) -> "Backend":
        """Load models and allocate buffers (idempotent)."""
        if not self.is_active:
            self._activate()
            self._input_meta = {b: self._input_metadata(b) for b in BRANCHES}
            self._check_io_names()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        """Free sessions/engines/buffers (idempotent); ``activate()`` may be called again afterwards."""
        if self.is_active:
            self.is_active = False
            self._checked = {b: set() for b in BRANCHES}
            self._deactivate()

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __del__(self):
        try:
            self.deactivate()
        except Exception:  # interpreter shutdown: modules may be gone already
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.short} active={self.is_active}>"

    def instance_name(self, branch: str) -> str:
        """Self-describing name of one branch's runner, e.g. ``ort-search``."""
        return f"{self.short}-{branch}"

    # ------------------------------------------------------------------------------------------------ names
    @property
    def template_output_names(self) -> List[str]:
        return list(self.meta["template_outputs"])

    def input_metadata(self, branch: str) -> InputMetadata:
        """Inputs of one branch as the loaded model declares them (activates the backend)."""
        self.activate()
        return self._input_meta[branch]

    def _expected_inputs(self, branch: str) -> List[str]:
        return [TEMPLATE_INPUT] if branch == "template" else [SEARCH_INPUT] + self.template_output_names

    def _check_io_names(self) -> None:
        for branch in BRANCHES:
            have, want = set(self._input_meta[branch]), set(self._expected_inputs(branch))
            if have != want:
                raise ModelDirError(f"{self.instance_name(branch)}: model inputs do not match the metadata",
                                    evidence=f"model inputs {sorted(have)}, metadata expects {sorted(want)}",
                                    fix="re-export the model directory with siamtrt export "
                                        "(the ONNX file and its metadata disagree)")

    # ------------------------------------------------------------------------------------------------- running
    def infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run one branch on a feed dict; checks the feed once per shape signature.

        Raises:
            BackendError: inactive backend, wrong input names, shapes or dtypes.
        """
        if not self.is_active:
            raise BackendError(f"{self.instance_name(branch)} is not active",
                               fix="use `with backend:` or call backend.activate() first")
        sig = tuple((k, v.shape, v.dtype.str) for k, v in feed.items())
        if sig not in self._checked[branch]:
            self._check_feed(branch, feed)
            self._checked[branch].add(sig)
        n = next(iter(feed.values())).shape[0]
        t0 = time.perf_counter()
        if n > 1 and self._fixed_batch(branch):
            # Model exported with --batch 1: one call per target (outputs copied: backends may reuse buffers).
            parts = [{k: np.array(v) for k, v in self._infer(branch, {k: v[i:i + 1] for k, v in feed.items()}).items()}
                     for i in range(n)]
            out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            out = self._infer(branch, feed)
        self.last_inference_time = time.perf_counter() - t0
        return out

    def run_template(self, z: np.ndarray) -> Dict[str, np.ndarray]:
        """Template crops [N,3,E,E] float32 → {kernel name: [N,…] array}, fresh arrays the caller may keep."""
        out = self.infer("template", {TEMPLATE_INPUT: z})
        return {k: out[k] for k in self.template_output_names}

    def run_search(self, x: np.ndarray, kernels: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """Search crops [N,3,S,S] + kernels → (cls [N,2A,H,W], loc [N,4A,H,W]).

        The returned arrays may be backend-owned buffers, valid until the next ``run_search`` call. ``kernels`` may be
        a plain dict (arrays never changed in place) or a :class:`KernelSet` whose versions count in-place changes.
        """
        feed = {SEARCH_INPUT: x}
        feed.update(kernels)
        self._kernel_versions = kernels.versions if isinstance(kernels, KernelSet) else {}
        out = self.infer("search", feed)
        return out[SEARCH_OUTPUTS[0]], out[SEARCH_OUTPUTS[1]]

    def kernel_version(self, name: str) -> int:
        """Version of kernel ``name`` in the ``run_search`` call being served (0 unless a KernelSet touched it)."""
        return self._kernel_versions.get(name, 0)

    def _fixed_batch(self, branch: str) -> bool:
        shape = self._input_meta[branch][self._expected_inputs(branch)[0]][1]
        return bool(shape) and shape[0] == 1

    def _check_feed(self, branch: str, feed: Dict[str, np.ndarray]) -> None:
        meta = self._input_meta[branch]
        name = self.instance_name(branch)
        if set(feed) != set(meta):
            raise BackendError(f"{name}: wrong input names",
                               evidence=f"got {sorted(feed)}, the model takes {sorted(meta)}",
                               fix="pass exactly the template outputs listed in the metadata")
        batch = {v.shape[0] if v.ndim else None for v in feed.values()}
        if len(batch) != 1:
            raise BackendError(f"{name}: inputs disagree on the batch size",
                               evidence=", ".join(f"{k}{tuple(v.shape)}" for k, v in feed.items()))
        for key, arr in feed.items():
            dtype, shape = meta[key]
            if arr.dtype != dtype:
                raise BackendError(f"{name}: input '{key}' has dtype {arr.dtype}, the model takes {np.dtype(dtype)}",
                                   fix=f"convert with arr.astype(np.{np.dtype(dtype).name})")
            ok = len(shape) == arr.ndim and all(
                d is None or d == a or (i == 0 and d == 1) for i, (d, a) in enumerate(zip(shape, arr.shape)))
            if not ok:
                raise BackendError(f"{name}: input '{key}' has shape {tuple(arr.shape)}, the model takes "
                                   f"{tuple('?' if d is None else d for d in shape)}",
                                   fix="crop to the sizes in the model metadata (exemplar_size / instance_size)")
            if not arr.flags.c_contiguous:
                raise BackendError(f"{name}: input '{key}' is not C-contiguous", fix="use np.ascontiguousarray")

    # ----------------------------------------------------------------------------------------- subclass hooks
    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _input_metadata(self, branch: str) -> InputMetadata:
        raise NotImplementedError

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError


__all__ = ["OR_AUTO", "Backend", "InputMetadata", "KernelSet", "Source", "resolve_source"]
