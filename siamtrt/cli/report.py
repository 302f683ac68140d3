"""Accuracy-retention report of reduced-precision model directories against their FP32 source.

    python calibration/report.py --ref models/siamrpn_mobilev2_l234_dwxcorr \\
        --cand models/siamrpn_mobilev2_l234_dwxcorr_int8 --cand models/siamrpn_mobilev2_l234_dwxcorr_fp16 \\
        --video ../shared/data/bag.avi --bbox 316,140,112,115

On real crops along the FP32 trajectory: cosine / SQNR / max error of cls and loc (and of the template kernels),
argmax agreement of the score map, per-frame IoU between the FP32 and candidate trajectories over the whole video
(mean and minimum), and ONNX Runtime CPU speed of every variant side by side (search branch alone and end to end,
ratio to FP32, same thread count). Prints a table; writes report.json and report.png to --out.
"""

import argparse

from .common import add_verbose, parse_args, positive_int, run_command, setup_logging


def build_parser(prog=None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--ref", required=True, help="fp32 model directory")
    ap.add_argument("--cand", required=True, action="append", help="fp16/int8 directory derived from --ref; repeatable")
    ap.add_argument("--video", required=True, help="video file, image folder or OTB sequence folder")
    ap.add_argument("--bbox", metavar="x,y,w,h", help="initial box in frame 0")
    ap.add_argument("--boxes", metavar="FILE", help="per-frame boxes for the crops (default: FP32 trajectory)")
    ap.add_argument("--out", help="folder for report.json / report.png (default results/calibration/<cand>)")
    ap.add_argument("--samples", type=positive_int, default=64,
                    help="search crops for the per-output metrics (default 64)")
    ap.add_argument("--threads", type=positive_int,
                    help="ONNX Runtime threads for every variant (default: physical cores)")
    ap.add_argument("--max-frames", type=positive_int, help="track at most this many frames")
    ap.add_argument("--speed-rounds", type=positive_int, default=10, help="interleaved timing rounds (default 10)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose(ap)
    return ap


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: run(args), name="report")


def run(args: argparse.Namespace) -> int:
    from siamtrt.calibration.report import accuracy_report
    from siamtrt.runtime.run import parse_bbox

    bbox = parse_bbox(args.bbox) if args.bbox else None
    rep = accuracy_report(args.ref, args.cand, args.video, bbox, boxes=args.boxes, out=args.out,
                          samples=args.samples, threads=args.threads, speed_rounds=args.speed_rounds,
                          max_frames=args.max_frames, progress=not args.no_progress)
    print(rep)
    for line in fidelity_lines(rep.data):
        print(line)
    return 0


def fidelity_lines(data) -> list:
    """The float set and fidelity each INT8 candidate's quantizer chose (its metadata), one line per branch."""
    out = []
    for c in data["candidates"]:
        fid = (c.get("quantization") or {}).get("fidelity")
        if not fid:
            continue
        pair, held = fid["pair"], fid.get("held_out")
        how = "worst template" if fid.get("measure") else "pooled"   # metadata before the worst-template measure
        out.append(f"{c['name']}: quantizer's float set for min cosine {fid['min_cosine']:.3f} "
                   f"({'met' if fid['met'] else 'NOT met'} on {fid['subset_crops']} calibration crops, {how}: "
                   f"pair cls {pair['cls']:.4f} loc {pair['loc']:.4f})"
                   + (f"; held-out {fid['held_out_crops']} crops: cls {held['cls']:.4f} loc {held['loc']:.4f}"
                      f"{'' if fid.get('held_out_met') is not False else ' (below the target)'}" if held else ""))
        for branch, b in fid["branches"].items():
            out.append(f"  {branch:8s} {b['float_nodes']:3d} nodes float ({b['float_mac_share'] * 100:.1f} % of conv "
                       f"MACs), prefix {b['prefix']}/{b['candidates']} convs" + (f"; {b['note']}" if b["note"] else ""))
            if len(b.get("steps") or []) > 1:   # what forced the prefix, and what each length costs in MACs
                out.append(f"  {'':8s} steps (float prefix convs: fidelity, prefix MAC share): "
                           + ", ".join(f"{st['prefix']}: {st['fidelity']:.4f}, {st['mac_share'] * 100:.1f} %"
                                       for st in b["steps"]))
    return out
