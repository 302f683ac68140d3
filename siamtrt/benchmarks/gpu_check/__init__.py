"""The GPU check: one prepared run for a borrowed GPU machine (``scripts/gpu_check.sh``), one JSON out.

Sections, each in its own process and time box (docs/tensorrt.md "GPU check" documents the JSON):

* ``cuda_layer`` (:mod:`.cuda_layer`): siamtrt.gpu.cuda buffers, streams and CUDA graphs against host copies;
* ``kernel`` (:mod:`.kernel_check`): the DepthwiseXCorr CUDA kernel, built with nvcc for the GPU, against
  ``siamtrt.plugin.dwxcorr_reference`` on every architecture's correlation shapes (:mod:`.cases`);
* ``torch_timing`` (:mod:`.torch_timing`): eager PyTorch FP16/FP32 search-branch times per architecture.

Without a CUDA device the run writes the JSON with every section skipped and exits 3; ``--device cpu`` is a dry
run of everything that can run on a CPU. Importing this package imports neither torch nor cuda-python.
"""

from .run import EXIT_FAIL, EXIT_INCOMPLETE, EXIT_NO_CUDA, EXIT_PASS, EXIT_USAGE, SCHEMA, SECTIONS, main, \
    validate_report

__all__ = ["EXIT_FAIL", "EXIT_INCOMPLETE", "EXIT_NO_CUDA", "EXIT_PASS", "EXIT_USAGE", "SCHEMA", "SECTIONS", "main",
           "validate_report"]
