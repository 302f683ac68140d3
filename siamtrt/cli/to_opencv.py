"""Write the three ONNX files OpenCV's cv2.TrackerDaSiamRPN loads, from a DaSiamRPN vot/otb checkpoint.

Examples:
    python export/to_opencv.py --config SiamRPNvot --checkpoint SiamRPNVOT.model --out models/vot-opencv
    python export/to_opencv.py --model models/vot --checkpoint SiamRPNVOT.model --out models/vot-opencv \\
        --compare ../shared/data/bag.avi --bbox 316,140,112,115 --json opencv.json --plot opencv.png

The folder then holds dasiamrpn_model.onnx, dasiamrpn_kernel_cls1.onnx and dasiamrpn_kernel_r1.onnx, the names
TrackerDaSiamRPN_Params uses by default. Every export is checked in ONNX Runtime against PyTorch (and the --model
directory) and in the installed OpenCV's dnn the way its tracker drives it. --compare tracks a video with OpenCV's
tracker and with the siamtrt runtime given OpenCV's constants and prints how far the boxes are apart.
OpenCV's tracker runs only DaSiamRPN's 256-channel AlexNet: SiamRPNBIG and pysot models are refused (docs/opencv.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamtrt.cli.common import positive_int, run_command, setup_logging
from siamtrt.errors import ExportError
from siamtrt.locations import MODELS_DIR


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    src = p.add_argument_group("weights (a checkpoint, or a siamtrt export of it)")
    src.add_argument("--config", help="SiamRPNvot or SiamRPNotb (default: --model's, else SiamRPNvot)")
    src.add_argument("--checkpoint", help="DaSiamRPN state_dict (SiamRPNVOT.model / SiamRPNOTB.model); without it, "
                                          "seeded random (untrained) weights")
    src.add_argument("--model", help="siamtrt model directory (fp32, conv) exported from --checkpoint: names the "
                                     "config, and the written files are checked against it")
    src.add_argument("--seed", type=int, default=0, help="seed of random weights and of the check inputs (0)")
    p.add_argument("--out", help="folder for the three files (default: models/<config>-opencv)")
    p.add_argument("--force", action="store_true",
                   help="replace an OpenCV export siamtrt wrote in --out (a folder of other files is refused)")
    p.add_argument("--no-opencv-check", action="store_true", help="skip running the files in OpenCV's dnn")
    cmp = p.add_argument_group("comparison with OpenCV's tracker (optional)")
    cmp.add_argument("--compare", metavar="VIDEO", help="track this video with cv2.TrackerDaSiamRPN and with the "
                                                        "siamtrt runtime given OpenCV's constants")
    cmp.add_argument("--bbox", metavar="x,y,w,h", help="initial box in whole pixels (OpenCV takes a cv::Rect)")
    cmp.add_argument("--ablations", action="store_true",
                     help="also run the runtime with each OpenCV convention put back to DaSiamRPN's")
    cmp.add_argument("--max-frames", type=positive_int, help="compare only the first N frames")
    cmp.add_argument("--json", help="write the per-frame boxes and figures here")
    cmp.add_argument("--plot", help="write per-frame IoU / centre error here (PNG)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="show torch / onnxscript output")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_command(lambda: _run(args), name="to_opencv")


def _run(args: argparse.Namespace) -> int:
    from siamtrt.errors import InputError
    from siamtrt.outputs import check_writable

    if (args.compare is None) != (args.bbox is None):
        raise InputError("--compare and --bbox go together", fix="e.g. --compare ../shared/data/bag.avi "
                                                                 "--bbox 316,140,112,115")
    if args.compare is None and (args.json or args.plot or args.ablations):
        raise InputError("--json / --plot / --ablations belong to --compare", fix="add --compare VIDEO --bbox x,y,w,h")
    check_writable([args.json, args.plot], what=["--json", "--plot"])
    if args.compare is not None and not Path(args.compare).exists():  # before the export, not after it
        raise InputError(f"--compare {args.compare} does not exist", fix="pass a video file or an image folder")
    name = args.config or (Path(args.model).name if args.model else "SiamRPNvot")
    out = Path(args.out or MODELS_DIR / f"{name}-opencv")
    try:
        from siamtrt.export.opencv import export_opencv
    except ImportError as e:
        raise ExportError(f"the OpenCV export needs torch: {e}",
                          fix="pip install torch==2.13.0 && pip install -e '.[export]'") from None
    res = export_opencv(out, config=args.config, checkpoint=args.checkpoint, model_dir=args.model, seed=args.seed,
                        overwrite=args.force, check_opencv=not args.no_opencv_check,
                        progress=not args.no_progress, verbose=args.verbose)
    print(res.summary())
    if res.weights != "checkpoint":
        print("WARNING: SEEDED RANDOM WEIGHTS (untrained): the files load and run, but track nothing. Pass "
              "--checkpoint SiamRPNVOT.model for a real tracker.", file=sys.stderr)
    if args.compare is not None:
        from siamtrt.export.opencv_compare import compare_with_opencv
        from siamtrt.runtime.run import parse_bbox

        cmp = compare_with_opencv(out, args.compare, parse_bbox(args.bbox), model_dir=args.model,
                                  with_ablations=args.ablations, max_frames=args.max_frames,
                                  progress=not args.no_progress)
        print(cmp.summary())
        for path, write in ((args.json, cmp.save_json), (args.plot, cmp.plot)):
            if path:
                print(f"wrote {write(path)}")
    print(f"next: cv2.TrackerDaSiamRPN_Params() with model / kernel_cls1 / kernel_r1 = the files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
