"""Write a Triton Inference Server model repository from a siamtrt model directory.

Example:
    siamtrt triton --model models/siamrpn_alex_dwxcorr-random --out triton_repo     # = python export/to_triton.py
    siamtrt triton --model models/r50 --out triton_repo --backend tensorrt   # after siamtrt build
    siamtrt serve --model-repository triton_repo                             # or tritonserver --model-repository
    siamtrt client --url 127.0.0.1:8001 --video bag.avi --bbox 316,140,112,115

Triton backends: python (Python backend running ONNX Runtime; any tritonserver, including the CPU one in the
nvidia-pytriton wheel), onnxruntime (platform onnxruntime_onnx), tensorrt (platform tensorrt_plan on the engines:
full TensorRT engines of the server's TensorRT version, checked against their sidecars without a GPU).
The stateful tracker model (sequence batcher, one sequence per target) is always written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..serving.repository import TRITON_BACKENDS  # light: onnx is imported only when a repository is written
from .common import add_verbose, parse_args as _parse, positive_int, run_command, setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    return _parse(build_parser(), argv)


def build_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", required=True, type=Path, help="siamtrt model directory (template.onnx, search.onnx)")
    p.add_argument("--out", required=True, type=Path, help="model repository to write")
    p.add_argument("--backend", choices=TRITON_BACKENDS, default="python", help="branch model backend (default python)")
    p.add_argument("--engine", type=Path, default=None,
                   help="folder with template.engine / search.engine for --backend tensorrt (default: --model)")
    p.add_argument("--prefix", default="siamtrt", help="model name prefix: letters, digits, _ - . (default siamtrt)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="max_batch_size of the branches = streams batched per call (default 8)")
    p.add_argument("--queue-delay-us", type=int, default=2000,
                   help="dynamic / sequence batcher queue delay in microseconds (default 2000)")
    p.add_argument("--instances", type=int, default=1, help="instances of each branch model (default 1)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="ONNX Runtime threads per branch instance (default 1)")
    p.add_argument("--idle-seconds", type=float, default=60.0,
                   help="release a sequence idle this long (default 60)")
    p.add_argument("--tensorrt-version", metavar="X.Y.Z",
                   help="--backend tensorrt: the server's TensorRT version (its Triton release notes list it); "
                        "engines of another version are refused (default: not checked, the summary names the version "
                        "the engines need)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing repository siamtrt wrote (a folder of other files is refused)")
    add_verbose(p)
    return p


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_command(lambda: triton(args), name="triton")


def triton(args: argparse.Namespace) -> int:
    from siamtrt.serving.repository import ServingError, write_repository

    given = [o for o, v in (("--engine", args.engine), ("--tensorrt-version", args.tensorrt_version)) if v is not None]
    if given and args.backend != "tensorrt":  # silently ignored before: the user believed engines were served
        raise ServingError(f"{' and '.join(given)} apply to --backend tensorrt only",
                           evidence=f"--backend {args.backend} serves the model directory's ONNX files",
                           fix="drop them, or pass --backend tensorrt to serve engines")

    report = write_repository(args.model, args.out, backend=args.backend, engine_dir=args.engine,
                              prefix=args.prefix, max_batch=args.max_batch, queue_delay_us=args.queue_delay_us,
                              instances=args.instances, threads=args.threads, idle_seconds=args.idle_seconds,
                              overwrite=args.overwrite, tensorrt_version=args.tensorrt_version)
    print(report.summary())
    return 0
