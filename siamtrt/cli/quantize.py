"""Make an INT8 (QDQ) or FP16 copy of an exported fp32 model directory.

    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision int8 --out models/siamrpn_mobilev2_l234_dwxcorr_int8
    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision int8 --target tensorrt --trt-cache --trt-version 8.6.2 --out models/mobilev2_int8_trt
    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision fp16 --out models/siamrpn_mobilev2_l234_dwxcorr_fp16
    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --check-bf16

INT8 uses onnxruntime.quantization (QDQ, per-channel int8 weights), for the engine that will run it (--target):
onnxruntime (default) and openvino give uint8 asymmetric activations, the fast CPU form; tensorrt gives symmetric
int8 with zero points of 0 and float bias, what TensorRT's explicit quantization accepts (export/build_engine.py
--int8). The fidelity search measures on that engine (OpenVINO for openvino, ONNX Runtime otherwise). The depthwise
correlations and the last convolution of each output path stay float, the stem too except for openvino (whose int8
stem is fast: it is quantized where fidelity allows); then the float prefix (the convolutions nearest the input)
grows, per model, until the INT8 pair keeps cls and loc cosine >= --min-cosine (default 0.98) against FP32 for the
worst template of 32 calibration crops, and the pair is checked on 32 held-out crops (--min-cosine 0: no search;
--float-prefix / --exclude force more float). Every step of the search, the chosen set and the fidelity reached are
printed and written to the metadata. A calibration file collected on other weights is refused (--force accepts it),
and so is an --out holding a model made from other weights (--force replaces it; the same weights are replaced).

--check-bf16 (no --precision / --out): measures, on the calibration crops, whether OpenVINO's bf16 hint for the
float layers keeps the directory's outputs (worst template min cls/loc cosine >= 0.98 against the f32 hint) and
records the result in the OpenVINO cache folder; the OpenVINO backend's precision "bf16" / "auto" uses bf16 only
with such a passing record (quantize --target openvino records it in the INT8 directory's metadata). --trt-cache also
writes <branch>.calib.cache for TensorRT's implicit INT8 (TensorRT 8.x-10.x, JetPack 5/6), for the fp32 ONNX files of
--model. FP16 uses onnxconverter-common with float32 I/O. The output directory keeps the source metadata, with
precision and the quantization details recorded.
"""

import argparse
import sys


from siamtrt.calibration.qdq import QDQ_TARGETS
from siamtrt.cli.common import add_verbose, setup_logging
from siamtrt.calibration.ranges import DEFAULT_METHOD, METHODS
from siamtrt.calibration.sensitivity import DEFAULT_FIDELITY_SAMPLES, DEFAULT_HELD_OUT, DEFAULT_MIN_COSINE
from siamtrt.errors import CalibrationError, SiamtrtError
from siamtrt.modeldir import collect_command


def build_parser(prog=None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", required=True, help="fp32 model directory (from export/to_onnx.py)")
    ap.add_argument("--calib", help="calibration file from calibration/collect.py (required for int8; optional "
                                    "for fp16, where it finds overflow-prone nodes)")
    ap.add_argument("--precision", choices=("int8", "fp16"), help="the copy to make (required unless --check-bf16)")
    ap.add_argument("--target", choices=tuple(QDQ_TARGETS),
                    help="int8: the engine that runs the directory: onnxruntime (default; uint8 activations, CPU), "
                         "openvino (uint8 activations, int8 stem where fidelity allows, CPU) or tensorrt (symmetric "
                         "int8)")
    ap.add_argument("--method", choices=METHODS,
                    help=f"int8 activation ranges of the backbone/neck (default {DEFAULT_METHOD})")
    ap.add_argument("--head-method", choices=METHODS,
                    help=f"int8 activation ranges after the correlation (default {DEFAULT_METHOD})")
    ap.add_argument("--min-cosine", type=float,
                    help="int8: fidelity target: float prefix grows until the INT8 pair keeps cls and loc cosine "
                         ">= this vs FP32 for its worst template on calibration crops "
                         f"(default {DEFAULT_MIN_COSINE}; 0 = no search)")
    ap.add_argument("--fidelity-samples", type=int,
                    help=f"int8: calibration search crops the float set is searched on (default "
                         f"{DEFAULT_FIDELITY_SAMPLES})")
    ap.add_argument("--held-out-samples", type=int,
                    help=f"int8: other calibration crops the chosen pair is checked on (default {DEFAULT_HELD_OUT}; "
                         "0 = none)")
    ap.add_argument("--float-prefix", type=float,
                    help="int8: share of search-branch conv MACs nearest the input forced float (default 0; the "
                         "former fixed recipe: 0.05 with --min-cosine 0)")
    ap.add_argument("--template-float-prefix", type=float,
                    help="int8: the same for the template branch (default 0; former fixed recipe 0.25)")
    ap.add_argument("--exclude", action="append", default=[], metavar="NODE",
                    help="keep this ONNX node in float (repeatable)")
    ap.add_argument("--trt-cache", action="store_true",
                    help="int8: also write TensorRT implicit-INT8 calibration caches (TensorRT <= 10)")
    ap.add_argument("--trt-version", help="TensorRT version the cache is for, e.g. 8.5.2 (default: installed)")
    ap.add_argument("--force", action="store_true",
                    help="accept other weights: a calibration file collected on other weights of the same "
                         "architecture, and an --out holding a model made from other weights (replaced)")
    ap.add_argument("--check-bf16", action="store_true",
                    help="measure whether OpenVINO's bf16 hint keeps --model's outputs on the --calib crops and record "
                         "it in the OpenVINO cache folder (no copy is made)")
    ap.add_argument("--out", help="derived model directory to write (required unless --check-bf16)")
    add_verbose(ap)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.check_bf16:
            return _check_bf16(args)
        summary = _fp16(args) if args.precision == "fp16" else _int8(args)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def _check_copy_options(args) -> None:
    """--precision and --out are both needed for a copy; int8-only options are refused for fp16."""
    missing = [f"--{k}" for k in ("precision", "out") if getattr(args, k) is None]
    if missing:
        raise CalibrationError(f"{' and '.join(missing)} required", fix="e.g. --precision int8 --out models/NAME-int8"
                               " (or --check-bf16 to measure OpenVINO's bf16 hint instead)")
    if args.precision == "fp16":
        int8_only = [f"--{k.replace('_', '-')}" for k in ("method", "head_method", "float_prefix",
                                                          "template_float_prefix", "trt_version", "min_cosine",
                                                          "fidelity_samples", "held_out_samples", "target")
                     if getattr(args, k) is not None] + (["--trt-cache"] if args.trt_cache else [])
        if int8_only:
            verb = "applies" if len(int8_only) == 1 else "apply"
            raise CalibrationError(f"{', '.join(int8_only)} {verb} to --precision int8 only",
                                   fix=f"drop {'it' if len(int8_only) == 1 else 'them'}, or use --precision int8")


def _fp16(args):
    """--precision fp16: onnxconverter-common with float32 I/O (siamtrt.calibration.fp16)."""
    _check_copy_options(args)
    from siamtrt.calibration.fp16 import convert_fp16

    return convert_fp16(args.model, args.out, args.calib, exclude=tuple(args.exclude), force=args.force)


def _int8(args):
    """--precision int8: Q/DQ for --target with the fidelity search (siamtrt.calibration.qdq.quantize_int8)."""
    _check_copy_options(args)
    if not args.calib:
        raise CalibrationError("--precision int8 needs --calib",
                               fix=f"collect crops first: {collect_command()}")
    from siamtrt.calibration.qdq import quantize_int8

    prefix = {}
    if args.float_prefix is not None:
        prefix["search"] = args.float_prefix
    if args.template_float_prefix is not None:
        prefix["template"] = args.template_float_prefix
    # fidelity options left unset take the library's defaults (one place for them: calibration/sensitivity)
    given = {k: v for k, v in (("min_cosine", args.min_cosine), ("fidelity_samples", args.fidelity_samples),
                               ("held_out", args.held_out_samples)) if v is not None}
    return quantize_int8(args.model, args.calib, args.out, target=args.target or "onnxruntime",
                         method=args.method or "max", head_method=args.head_method or "max",
                         float_prefix=prefix, exclude=args.exclude, trt_cache=args.trt_cache,
                         trt_version=args.trt_version, force=args.force, **given)


def _check_bf16(args) -> int:
    """--check-bf16: measure and record OpenVINO's bf16 fidelity for --model (siamtrt.calibration.sensitivity)."""
    if not args.calib:
        raise CalibrationError("--check-bf16 needs --calib (real crops: synthetic probes do not show bf16's errors)",
                               fix=f"collect crops first: {collect_command()}")
    given = [f"--{k.replace('_', '-')}" for k in ("precision", "out") if getattr(args, k) is not None]
    if given:
        raise CalibrationError(f"--check-bf16 makes no copy: {', '.join(given)} do not apply",
                               fix="drop them, or drop --check-bf16")
    from siamtrt.calibration.sensitivity import check_bf16
    from siamtrt.runtime.openvino import bf16_plan_text

    kw = {"samples": args.fidelity_samples} if args.fidelity_samples else {}
    rec, store = check_bf16(args.model, args.calib, force=args.force, **kw)
    if "cls" not in rec:
        print(f"bf16 not measured: {rec.get('reason')}")
    else:
        for step in rec["steps"]:
            print(f"  bf16, {bf16_plan_text(step)}: " +
                  (f"cls {step['cls']:.4f} loc {step['loc']:.4f}" if "cls" in step else step["error"]))
        verdict = ("kept: OpenVINO precision 'auto' / 'bf16' will use bf16 for this model" if rec["passed"] else
                   "NOT kept: OpenVINO stays f32 for this model ('bf16' is refused)")
        print(f"bf16 hint vs f32 (OpenVINO {rec['openvino']}, {rec['cpu']}; {bf16_plan_text(rec)}): worst template "
              f"cls {rec['cls']:.4f} loc {rec['loc']:.4f} on {rec['crops']} crops, {rec['templates']} templates "
              f"(needs >= {rec['min_cosine']:.2f}): {verdict}")
    print(f"recorded in {store}")
    return 0
