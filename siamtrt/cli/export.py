"""Export a pysot / DaSiamRPN tracker checkpoint into template.onnx + search.onnx (a siamtrt model directory).

Example:
    siamtrt export --config siamrpn_r50_l234_dwxcorr --checkpoint model.pth --out models/r50
    python export/to_onnx.py --config experiments/siamrpn_r50_l234_dwxcorr/config.yaml --checkpoint model.pth
    siamtrt export --config SiamRPNvot --checkpoint SiamRPNVOT.model --target opencv   # cv2.TrackerDaSiamRPN files

Without --out the directory is models/<config>-random (seeded random weights) or models/<config>-<sha8> (a
checkpoint): the one `siamtrt bench` / benchmarks/fps.py reuses instead of exporting a second copy.

An --out that already holds a model directory is replaced once the new export is complete when both have the same
architecture and weights (checkpoint sha256, or random seed and heads); one exported from other weights (say a
trained checkpoint, where --checkpoint was forgotten, or another architecture's random stand-in) is refused
before any work unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from siamtrt.config import CONFIGS, DEFAULT_CONFIG  # no torch needed for --help

from .common import join_negative_values, parse_args as _parse, run_command, setup_logging

TARGETS = ("onnx", "opencv")
#: the export options the benchmarks' cached exports use (an export with these into the default directory is
#: stamped so that siamtrt bench reuses it)
DEFAULTS = {"opset": 18, "batch": "dynamic", "xcorr": "conv", "no_simplify": False, "lost_instance_size": None,
            "fit_on": None}


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--target", choices=TARGETS, default="onnx",
                   help="onnx: a siamtrt model directory (default); opencv: the files cv2.TrackerDaSiamRPN reads "
                        "(DaSiamRPN checkpoints; the other options are the OpenCV exporter's: --target opencv --help)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"built-in name ({', '.join(sorted(CONFIGS))}) or a pysot config.yaml "
                        f"(default: {DEFAULT_CONFIG})")
    p.add_argument("--checkpoint", help="trained model.pth; without it, seeded random (untrained) weights")
    p.add_argument("--out", help="output directory (default: models/<config>-random, or models/<config>-<sha8> "
                                 "with --checkpoint)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--batch", choices=["dynamic", "1"], default="dynamic",
                   help="dynamic batch for multi-target tracking, or a static batch of 1 (default dynamic)")
    p.add_argument("--xcorr", choices=["conv", "plugin"], default="conv",
                   help="correlation as a standard grouped Conv (default) or the siamtrt TensorRT plugin node")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and parity inputs")
    p.add_argument("--random-heads", choices=["realistic", "matching"], default="realistic",
                   help="without --checkpoint: random heads (default), or template-matching heads that follow the "
                        "target (pysot models; a stand-in for trained weights in accuracy-retention reports)")
    p.add_argument("--fit-on", metavar="SEQUENCE",
                   help="without --checkpoint: an OTB-layout sequence folder (img/ + groundtruth_rect.txt, e.g. "
                        "../shared/data/bag) whose frames and boxes the random weights are fitted on (BatchNorm "
                        "statistics; the matching heads' cls scale and loc regression). Default: synthetic texture")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--force", action="store_true",
                   help="replace an --out model directory exported from other weights (another checkpoint, or a "
                        "checkpoint's where this export has random ones); without it that is refused. Re-exporting "
                        "the same weights replaces the directory either way")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show third-party output (torch / onnxscript / onnxslim warnings and progress lines)")
    p.add_argument("--lost-instance-size", type=int, metavar="N",
                   help="also export the long-term (lost-state) search size, pysot 831: needed by --mode longterm "
                        "(default: the config's; a pysot _lt config.yaml sets 831)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return _parse(build_parser(), argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = join_negative_values(sys.argv[1:] if argv is None else list(argv))
    if _target(argv) == "opencv":
        return _to_opencv(argv)
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_command(lambda: export(args), name="export")


def _target(argv: List[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--target" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--target="):
            return a.split("=", 1)[1]
    return "onnx"


def _to_opencv(argv: List[str]) -> int:
    """``--target opencv``: the OpenCV exporter's own command (siamtrt.cli.to_opencv), imported only when asked."""
    rest = [a for i, a in enumerate(argv) if not (a == "--target" or a.startswith("--target=")
                                                   or (i > 0 and argv[i - 1] == "--target"))]
    try:
        from . import to_opencv  # type: ignore[attr-defined]
    except ImportError as e:
        missing = repr(e)[:200]

        def refuse() -> int:
            from siamtrt.errors import InputError

            raise InputError("--target opencv is not available in this installation", evidence=missing,
                             fix="update siamtrt (its OpenCV exporter is siamtrt/cli/to_opencv.py), or use "
                                 "--target onnx")

        return run_command(refuse, name="export")
    return to_opencv.main(rest)


def export(args: argparse.Namespace) -> int:
    from siamtrt.calibration.derive import check_replaced_weights
    from siamtrt.config import get_config
    from siamtrt.errors import InputError
    from siamtrt.locations import default_model_dir
    from siamtrt.metadata import export_weights
    from siamtrt.outputs import check_writable

    cfg = get_config(args.config)  # cheap checks first: torch takes seconds to import
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise InputError(f"checkpoint {args.checkpoint} does not exist",
                         fix="pass the model.pth / SiamRPN*.model file, or omit --checkpoint for random weights")
    if args.fit_on is not None:
        _check_fit_on(Path(args.fit_on))
    check_writable([], dirs=[args.out])
    default_out = default_model_dir(args.config, args.checkpoint, seed=args.seed, random_heads=args.random_heads)
    changed = [f"--{k.replace('_', '-')}" for k, v in DEFAULTS.items() if getattr(args, k) != v]
    if args.out is None and changed:
        raise InputError(f"{', '.join(changed)} change the export: give it its own --out DIR",
                         evidence=f"the default folder {default_out} holds the default-options export of these "
                                  "weights, which siamtrt bench reuses (and replaces when it differs)",
                         fix=f"siamtrt export --config {args.config} ... --out models/NAME")
    out = Path(args.out) if args.out else default_out
    benchmark_form = out == default_out and not changed
    if args.out is None and benchmark_form and _already_exported(out, args):
        print(f"{out} already holds this export (same config, weights and export code; made by an earlier "
              f"siamtrt export or siamtrt bench): reused. Pass --out DIR to export again elsewhere.")
        return 0
    # before torch is imported: never lose a directory of other weights (a forgotten --checkpoint) without --force
    check_replaced_weights(out, export_weights(args.checkpoint, args.seed, args.random_heads, cfg.name),
                           force=args.force)
    try:
        from siamtrt.export.onnx import export_model
    except ImportError as e:
        raise InputError(f"exporting needs torch and the export extras ({e})",
                         fix="pip install torch==2.13.0 && pip install -e '.[export]'") from None
    from siamtrt.modeldir import ModelDir, track_command

    res = export_model(args.config, out, checkpoint=args.checkpoint, lost_instance_size=args.lost_instance_size,
                       seed=args.seed, opset=args.opset, batch=args.batch, xcorr=args.xcorr,
                       simplify=not args.no_simplify, progress=True, random_heads=args.random_heads,
                       fit_on=args.fit_on, verbose=args.verbose, force=args.force)
    md = ModelDir.open(res.out_dir)
    if benchmark_form:
        _stamp_for_benchmarks(out, args)
    print(res.table())
    print(f"weights: {md.weights_line}")
    if md.untrained_warning:
        print(md.untrained_warning)
    print(f"wrote {res.template_path} and {res.search_path} in {res.seconds:.1f} s")
    print(f"next: {track_command(res.out_dir)}   |   siamtrt bench --model {res.out_dir}   |   "
          f"siamtrt inspect {res.out_dir}")
    return 0


def _check_fit_on(folder: Path) -> None:
    """--fit-on must be a readable OTB-layout sequence folder: checked before torch loads (a missing folder failed
    with a FileNotFoundError traceback after the model was built)."""
    from siamtrt.errors import InputError, folder_listing
    from siamtrt.runtime.sequences import load_folder_sequence

    example = "pass an OTB-layout sequence folder (img/ + groundtruth_rect.txt), e.g. ../shared/data/bag, or omit " \
              "--fit-on (synthetic texture)"
    if not folder.exists():
        raise InputError(f"--fit-on {folder} does not exist", evidence=folder_listing(folder.parent), fix=example)
    if not folder.is_dir():
        raise InputError(f"--fit-on {folder} is a file, not a sequence folder", fix=example)
    try:
        load_folder_sequence(folder)  # frames listed and ground truth read; no image is decoded
    except InputError as e:
        raise InputError(f"--fit-on {folder} is not a sequence folder: {e.what}", evidence=e.evidence,
                         fix=e.fix or example) from None


def _already_exported(out: Path, args: argparse.Namespace) -> bool:
    from siamtrt.benchmarks.variants import cache_key, stamp_matches

    return stamp_matches(out, cache_key(args.config, args.checkpoint, args.seed, args.random_heads))


def _stamp_for_benchmarks(out: Path, args: argparse.Namespace) -> None:
    """Mark a default-options export in the default directory as the benchmarks' cached export of these weights."""
    from siamtrt.benchmarks.variants import cache_key, write_cache_stamp

    write_cache_stamp(out, cache_key(args.config, args.checkpoint, args.seed, args.random_heads))
