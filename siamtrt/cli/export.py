"""Export a pysot / DaSiamRPN tracker checkpoint into template.onnx + search.onnx (a siamtrt model directory).

Example:
    python export/to_onnx.py --config siamrpn_r50_l234_dwxcorr --checkpoint model.pth --out models/r50
    python export/to_onnx.py --config experiments/siamrpn_r50_l234_dwxcorr/config.yaml --checkpoint model.pth
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


from siamtrt.config import CONFIGS, DEFAULT_CONFIG  # no torch needed for --help
from siamtrt.errors import SiamtrtError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"built-in name ({', '.join(sorted(CONFIGS))}) or a pysot config.yaml (default: {DEFAULT_CONFIG})")
    p.add_argument("--checkpoint", help="trained model.pth; without it, seeded random (untrained) weights")
    p.add_argument("--out", help="output directory (default: models/<config>)")
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
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show third-party output (torch / onnxscript / onnxslim warnings and progress lines)")
    p.add_argument("--lost-instance-size", type=int, metavar="N",
                   help="also export the long-term (lost-state) search size, pysot 831: needed by --mode longterm "
                        "(default: the config's; a pysot _lt config.yaml sets 831)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        from siamtrt.export.onnx import export_model
        from siamtrt.modeldir import ModelDir

        name = Path(args.config).parent.name if args.config.endswith((".yaml", ".yml")) else args.config
        res = export_model(args.config, Path(args.out or Path("models") / name), checkpoint=args.checkpoint,
                           lost_instance_size=args.lost_instance_size, seed=args.seed, opset=args.opset,
                           batch=args.batch, xcorr=args.xcorr, simplify=not args.no_simplify, progress=True,
                           random_heads=args.random_heads, fit_on=args.fit_on, verbose=args.verbose)
        md = ModelDir.open(res.out_dir)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e}\n  fix: pip install torch==2.13.0 && pip install -e '.[export]'", file=sys.stderr)
        return 2
    print(res.table())
    print(f"weights: {md.weights_line}")
    if md.untrained_warning:
        print(md.untrained_warning)
    print(f"wrote {res.template_path} and {res.search_path} in {res.seconds:.1f} s")
    print(f"next: python runtime/track.py --model {res.out_dir} --video VIDEO --bbox x,y,w,h   |   "
          f"python benchmarks/fps.py --model {res.out_dir}")
    return 0
