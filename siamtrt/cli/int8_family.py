"""INT8 fidelity and speed on a family of stand-in checkpoints (issue 13), fixed recipe vs per-model fallback.

    python benchmarks/int8_family.py --arch alex --arch mobilev2 --out results/int8_family
    python benchmarks/int8_family.py --arch r50 --members 1 --out results/int8_family_r50

Members (STAND-IN RANDOM WEIGHTS, no trained checkpoint): seeds of the realistic random init, heads scaled 0.5× /
1× / 2×, BatchNorm statistics from bag.avi frames or synthetic texture frames, each saved as a pysot-layout
model.pth and exported through export/to_onnx.py's path. Calibration: 48 crops along the FP32 trajectory on the
first 96 frames of bag.avi; held-out: the bag OTB sequence's ground-truth crops at frames >= 96 with their own
template. Variants: the start set (stem, correlations, tail float; --min-cosine 0), the former fixed recipe
(float prefix 5 % search / 25 % template, --min-cosine 0) and the default fallback (--min-cosine 0.98), ONNX
Runtime Q/DQ target; the fallback also for --target tensorrt (fidelity only: ONNX Runtime gains no speed from it).
Speed: search branch vs FP32, interleaved rounds side by side in one run, at 2 threads and 1 thread. Writes
family.json and family.png.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from siamtrt.benchmarks.data import DEFAULT_BOX, DEFAULT_SEQUENCE_NAME, DEFAULT_VIDEO_NAME
from siamtrt.cli.common import add_verbose, positive_int
from siamtrt.modeldir import SEARCH_ONNX, TEMPLATE_ONNX

ARCHS = {"alex": "siamrpn_alex_dwxcorr", "mobilev2": "siamrpn_mobilev2_l234_dwxcorr", "r50": "siamrpn_r50_l234_dwxcorr"}
MEMBERS = [(1, 1.0, "bag"), (2, 0.5, "synthetic"), (3, 2.0, "bag"), (4, 1.0, "synthetic")]
CALIB_FRAMES = 96
VARIANTS = {"start": {"min_cosine": 0}, "fixed": {"min_cosine": 0, "float_prefix": {"search": 0.05, "template": 0.25}},
            "fallback": {}}


def build_member(arch: str, seed: int, head: float, bn: str, root: Path, data: Path) -> Path:
    import torch

    from siamtrt.export.onnx import export_model
    from siamtrt.export.random_init import realistic_random_model, scale_rpn_heads, synthetic_frames, video_frames

    out = root / "fp32"
    if (out / SEARCH_ONNX).is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    frames = video_frames(data / DEFAULT_VIDEO_NAME, DEFAULT_BOX, 6) if bn == "bag" else synthetic_frames(6, seed=seed)
    model = realistic_random_model(ARCHS[arch], seed, frames)
    scale_rpn_heads(model, head)
    torch.save(model.state_dict(), root / "model.pth")
    export_model(ARCHS[arch], out, checkpoint=root / "model.pth")
    return out


def build_parser(prog=None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--arch", action="append", choices=sorted(ARCHS), help="repeatable (default alex, mobilev2)")
    ap.add_argument("--members", type=positive_int, default=len(MEMBERS),
                    help=f"members per arch (default {len(MEMBERS)})")
    ap.add_argument("--data", help="folder with bag.avi and bag/ (default: the benchmarks' data folder)")
    ap.add_argument("--work", default="results/int8_family/work", help="member directories (reused)")
    ap.add_argument("--out", default="results/int8_family")
    ap.add_argument("--rounds", type=positive_int, default=10, help="interleaved timing rounds (default 10)")
    ap.add_argument("--no-trt", action="store_true", help="skip the tensorrt Q/DQ target")
    add_verbose(ap)
    return ap


def check_data(data: Path) -> None:
    """Refuse, before any member is built, a data folder without the files every member reads (bag.avi: the
    calibration crops and the "bag" members' BN frames; bag/: the evaluation crops)."""
    from siamtrt.errors import InputError, folder_listing

    missing = [n for n in (DEFAULT_VIDEO_NAME, DEFAULT_SEQUENCE_NAME) if not (data / n).exists()]
    if missing:
        raise InputError(f"the data folder {data} lacks {' and '.join(missing)}", evidence=folder_listing(data),
                         fix=f"pass --data a folder holding {DEFAULT_VIDEO_NAME} and {DEFAULT_SEQUENCE_NAME}/ (the "
                             "benchmarks' data, e.g. --data ../shared/data)")


def main(argv=None) -> int:
    from siamtrt.benchmarks.data import default_data_dir
    from siamtrt.outputs import atomic_file, check_writable

    args = build_parser().parse_args(argv)
    data = Path(args.data) if args.data else default_data_dir()
    work, out = Path(args.work), Path(args.out)
    # before hours of quantizing, not after (run_command makes the error exit 2)
    check_data(data)
    check_writable([out / "family.json", out / "family.png"], what=["--out", "--out"], dirs=[out, work])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in args.arch or ["alex", "mobilev2"]:
        for seed, head, bn in MEMBERS[:args.members]:
            row = member_row(arch, seed, head, bn, work, data, trt=not args.no_trt, rounds=args.rounds)
            rows.append(row)
            _print_row(row)
            with atomic_file(out / "family.json") as f:
                f.write(json.dumps(rows, indent=1))
    _plot(rows, out / "family.png")
    print(f"saved: {out / 'family.json'}, {out / 'family.png'}")
    return 0


def member_tag(arch: str, seed: int, head: float, bn: str, data: Path) -> str:
    """The member's work folder name: its recipe and the data its BatchNorm statistics and crops come from (the
    sha256 prefix of --data's bag.avi: another --data is another member)."""
    from siamtrt.metadata import file_sha256

    return f"{arch}-seed{seed}-head{head}-bn_{bn}-data{file_sha256(data / DEFAULT_VIDEO_NAME)[:8]}"


def calib_reusable(calib: Path, src: Path) -> bool:
    """True when ``calib`` exists and was collected on the weights of the fp32 member ``src`` (its recorded model,
    :meth:`~siamtrt.calibration.data.CalibrationSet.check_model`); otherwise it is collected again."""
    import logging

    from siamtrt.calibration.data import load_calibration
    from siamtrt.errors import SiamtrtError
    from siamtrt.modeldir import ModelDir

    if not calib.is_file():
        return False
    try:
        load_calibration(calib).check_model(ModelDir.open(src))
        return True
    except SiamtrtError as e:
        logging.getLogger(__name__).warning("int8-family: %s is not reused: %s", calib, e.what)
        return False


def int8_reusable(d: Path, src: Path) -> bool:
    """True when ``d`` holds an INT8 directory quantized from the fp32 member ``src`` as it is now (both branches'
    recorded ``quantization.source_sha256``); otherwise it is quantized again."""
    import logging

    from siamtrt.errors import SiamtrtError
    from siamtrt.metadata import read_onnx_metadata
    from siamtrt.modeldir import BRANCHES, ONNX_FILES, ModelDir

    if not (d / SEARCH_ONNX).is_file():
        return False
    try:
        md = ModelDir.open(src)
        same = all((read_onnx_metadata(d / ONNX_FILES[b]).get("quantization") or {}).get("source_sha256")
                   == md.sha256(b) for b in BRANCHES)
    except SiamtrtError:
        same = False
    if not same:
        logging.getLogger(__name__).warning("int8-family: %s was not quantized from %s as it is now: quantizing "
                                            "again", d, src)
    return same


def member_row(arch: str, seed: int, head: float, bn: str, work: Path, data: Path, trt: bool = True,
               rounds: int = 10) -> dict:
    """One member: build it, calibrate, quantize every variant, measure fidelity on held-out crops and speed."""
    import numpy as np

    from siamtrt.calibration.collect import SourceSpec, collect
    from siamtrt.calibration.speed import run_branches, time_search_branches
    from siamtrt.modeldir import ModelDir

    t0 = time.perf_counter()
    tag = member_tag(arch, seed, head, bn, data)
    root = work / tag
    src = build_member(arch, seed, head, bn, root, data)
    calib = root / "calib.npz"
    if not calib_reusable(calib, src):
        collect(src, [SourceSpec(data / DEFAULT_VIDEO_NAME, bbox=DEFAULT_BOX)], calib, max_samples=48,
                templates_per_source=3, max_frames=CALIB_FRAMES, progress=False)
    ev = collect(src, [SourceSpec(data / DEFAULT_SEQUENCE_NAME)], None, max_samples=32, templates_per_source=1,
                 progress=False).calib
    keep = np.array([f >= CALIB_FRAMES for f in ev.meta["sources"][0]["search_frames"]])
    held = replace(ev, search=ev.search[keep], pair=ev.pair[keep])
    md = ModelDir.open(src, require_conv=True)
    _, rc, rl = run_branches(md, held, threads=2)
    row = {"member": tag, "arch": arch, "seed": seed, "head_scale": head, "bn_crops": bn,
           "weights": "stand-in random", "held_out_crops": int(len(held.search)), "variants": {}}
    qdq_targets = [(k, "onnxruntime", v) for k, v in VARIANTS.items()] + ([("fallback_trt", "tensorrt", {})]
                                                                          if trt else [])
    dirs = {}
    for name, target, opts in qdq_targets:
        d = root / f"int8_{name}"
        row["variants"][name] = _variant(src, calib, d, target, opts, held, rc, rl)
        if target == "onnxruntime":
            dirs[name] = d
    mds = [md] + [ModelDir.open(d, require_conv=True) for d in dirs.values()]
    for threads in (2, 1):
        _, rat = time_search_branches(mds, held, threads, rounds)
        for name, d in dirs.items():
            row["variants"][name][f"search_ratio_{threads}t"] = rat[str(d)]
    row["seconds"] = time.perf_counter() - t0
    return row


def _variant(src: Path, calib: Path, d: Path, target: str, opts: dict, held, rc, rl) -> dict:
    """Quantize one variant (reused when present) and measure its held-out fidelity against FP32."""
    from siamtrt.calibration.qdq import quantize_int8
    from siamtrt.calibration.report import cosine
    from siamtrt.calibration.speed import run_branches
    from siamtrt.metadata import read_onnx_metadata
    from siamtrt.modeldir import ModelDir

    t1 = time.perf_counter()
    if not int8_reusable(d, src):
        if d.exists():
            import shutil

            shutil.rmtree(d)  # quantized from another fp32 model (or half-written): quantized again
        quantize_int8(src, calib, d, target=target, progress=False, **opts)
    _, qc, ql = run_branches(ModelDir.open(d, require_conv=True), held, threads=2)
    q = read_onnx_metadata(d / SEARCH_ONNX)["quantization"]
    qt = read_onnx_metadata(d / TEMPLATE_ONNX)["quantization"]
    fid = q["fidelity"]
    return {"target": target, "cls_cosine": cosine(rc, qc), "loc_cosine": cosine(rl, ql),
            "subset_pair": fid["pair"], "met_on_subset": fid["met"],
            "search_float_nodes": len(q["excluded_nodes"]), "search_float_mac_share": q["float_mac_share"],
            "template_float_mac_share": qt["float_mac_share"],
            "search_prefix": fid["branches"]["search"]["prefix"],
            "evaluations": fid["branches"]["search"]["evaluations"] + fid["branches"]["template"]["evaluations"],
            "note": fid["branches"]["search"]["note"], "quantize_s": time.perf_counter() - t1}


def _print_row(row: dict) -> None:
    for name, v in row["variants"].items():
        print(f"{row['member']:32s} {name:12s} cls {v['cls_cosine']:.4f} loc {v['loc_cosine']:.4f} "
              f"float {v['search_float_nodes']:3d} nodes {v['search_float_mac_share'] * 100:5.1f} % MACs "
              f"(template {v['template_float_mac_share'] * 100:4.1f} %)  "
              + (f"search {v['search_ratio_2t']:.2f}x 2t {v['search_ratio_1t']:.2f}x 1t"
                 if "search_ratio_2t" in v else "(fidelity only)") + "  [stand-in random weights]", flush=True)


def _plot(rows, path: Path) -> None:
    import numpy as np

    from siamtrt.figures import pyplot, save_png

    plt = pyplot()

    names = [r["member"] for r in rows]
    variants = list(rows[0]["variants"]) if rows else []
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8))
    x = np.arange(len(rows))
    w = 0.8 / max(len(variants), 1)
    for i, v in enumerate(variants):
        axes[0].bar(x + i * w, [r["variants"][v]["cls_cosine"] for r in rows], w, label=v)
        axes[1].bar(x + i * w, [r["variants"][v].get("search_ratio_2t", np.nan) for r in rows], w, label=v)
    axes[0].axhline(0.98, color="k", ls=":", label="target 0.98")
    axes[0].set_ylim(0.8, 1.0)
    axes[0].set_ylabel("held-out cls cosine vs FP32")
    axes[1].axhline(0.40, color="k", ls=":", label="mobilev2 goal 0.40x")
    axes[1].set_ylabel("search time / FP32, ORT CPU 2 threads")
    for ax in axes:
        ax.set_xticks(x + 0.4 - w / 2)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle("INT8 on a family of stand-in random-weight checkpoints (not trained weights)")
    save_png(fig, path)
