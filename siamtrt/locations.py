"""Where the commands put things by default, defined once (the README's folders; all ignored by git).

* :func:`default_model_dir` — the model directory ``siamtrt export`` / ``python export/to_onnx.py`` writes without
  ``--out``, and the one ``siamtrt bench`` / ``python benchmarks/fps.py`` (and the other benchmarks) reuse instead of
  exporting a second copy: ``models/<config>-random`` for seeded random weights (``-random-seed<N>`` for seeds
  other than 0, ``-matching`` added for template-matching heads), ``models/<config>-<sha256[:8]>`` for a checkpoint;
* :data:`MODELS_DIR`, :data:`RESULTS_DIR`, :data:`TRITON_REPO` — the folders themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .config import get_config

MODELS_DIR = Path("models")
RESULTS_DIR = Path("results")
TRITON_REPO = Path("triton_repo")


def default_model_dir(config: str, checkpoint: Optional[Union[str, Path]] = None, seed: int = 0,
                      random_heads: str = "realistic", root: Union[str, Path] = MODELS_DIR,
                      precision: str = "fp32") -> Path:
    """The default directory of an export of ``config`` with these weights.

    Args:
        config (str): built-in config name or pysot config.yaml.
        checkpoint (str | Path): trained weights (their sha256 names the folder). Defaults to None (random).
        seed (int): seed of random weights. Defaults to 0.
        random_heads (str): "realistic" or "matching" (random weights only). Defaults to "realistic".
        root (str | Path): the models folder. Defaults to :data:`MODELS_DIR`.
        precision (str): "fp32", or a derived variant's precision (suffix ``-fp16`` / ``-int8``). Defaults to "fp32".

    Raises:
        ConfigError: unknown config. OSError: unreadable checkpoint.
    """
    name = get_config(config).name
    if checkpoint is not None:
        from .metadata import file_sha256

        tag = "-" + file_sha256(checkpoint)[:8]
    else:
        tag = ("-random" if int(seed) == 0 else f"-random-seed{int(seed)}") + \
            ("" if random_heads == "realistic" else f"-{random_heads}")
    return Path(root) / f"{name}{tag}{'' if precision == 'fp32' else '-' + precision}"


def derived_model_dir(model_dir: Union[str, Path], precision: str) -> Path:
    """The default folder of a ``precision`` copy of ``model_dir`` (``<dir>-int8``, ``<dir>-fp16``: the suffix of
    :func:`default_model_dir`): where bench derives one, and what the "next:" and fix lines of the jobs name."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}-{precision}"


__all__ = ["MODELS_DIR", "RESULTS_DIR", "TRITON_REPO", "default_model_dir", "derived_model_dir"]
