"""The GPU check's driver: one process per section, each in its time box, one JSON for the whole run.

The parent never touches CUDA beyond the ctypes probe: each section runs in its own Python process (so a hung or
crashed CUDA call costs that section only, and a time box is enforced by killing it), writes its part file after
every check, and the parent merges the parts into the report, rewritten atomically after each section. A run that
is killed from outside still leaves a valid JSON of the sections finished so far.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ...config import CONFIGS
from ...gpu.cuda import probe_cuda
from .common import BAD, ERROR, SKIPPED, TIMEOUT, Deadline, SectionRecorder, error_record, write_json

SCHEMA = "siamtrt.gpu_check/1"
SECTIONS = ("cuda_layer", "kernel", "torch_timing")
#: default time boxes (seconds); with the run budget they keep scripts/gpu_check.sh under 8 minutes
TIME_BOXES = {"cuda_layer": 60.0, "kernel": 210.0, "torch_timing": 150.0}
DEFAULT_BUDGET = 450.0
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_NO_CUDA, EXIT_INCOMPLETE = 0, 1, 2, 3, 4
STATUS_FOR_EXIT = {EXIT_PASS: "pass", EXIT_FAIL: "fail", EXIT_NO_CUDA: "no_cuda_device", EXIT_INCOMPLETE: "incomplete"}
REPO_ROOT = Path(__file__).resolve().parents[3]
GRACE_S = 15.0  # a section's process is killed this long after its time box (it stops itself at the box)


def log(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ versions
def versions() -> Dict[str, Any]:
    """Python, the packages the check uses (from package metadata: nothing imported), nvcc, the driver."""
    from ..sysinfo import installed_version

    out: Dict[str, Any] = {"python": platform.python_version()}
    try:
        from ..sysinfo import package_versions
        out.update(package_versions())
    except Exception as e:  # versions are context; never a reason to stop
        out["package_versions_error"] = str(e)
    for key, dists in {"cuda-bindings": ["cuda-bindings"], "cupy": ["cupy-cuda13x", "cupy-cuda12x", "cupy"],
                       "nvidia-cuda-nvrtc": ["nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu13", "nvidia-cuda-nvrtc-cu12"]
                       }.items():
        out[key] = installed_version(dists)
    try:
        from ...plugin.build import find_nvcc, nvcc_version
        nvcc = find_nvcc()
        out["nvcc"] = ".".join(map(str, nvcc_version(nvcc))) if nvcc else None
        out["nvcc_path"] = str(nvcc) if nvcc else None
    except Exception as e:
        out["nvcc"] = f"error: {e}"[:200]
    out["CUDA_HOME"] = os.environ.get("CUDA_HOME")
    return out


def device_info(device: str) -> Dict[str, Any]:
    probe = probe_cuda()
    info: Dict[str, Any] = {"requested": device, "cuda_available": probe.available, "driver_version":
                            probe.driver_version, "devices": [d.to_dict() for d in probe.devices]}
    if probe.devices:
        d = probe.devices[0]
        info.update(name=d.name, compute_capability=f"{d.compute_capability[0]}.{d.compute_capability[1]}", sm=d.sm)
    else:
        info["reason"] = probe.reason
    try:
        from ..sysinfo import cpu_model, gpus, load_average
        info.update(nvidia_smi=gpus(), cpu=cpu_model(), cores=os.cpu_count(), load_average_1min=load_average())
    except Exception as e:
        info["sysinfo_error"] = str(e)
    return info


# ------------------------------------------------------------------------------------------------ report
def new_report(args: argparse.Namespace) -> Dict[str, Any]:
    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tool": "scripts/gpu_check.sh (python -m siamtrt.benchmarks.gpu_check)", "status": "running",
            "exit_code": None, "dry_run": args.device == "cpu", "device": device_info(args.device),
            "versions": versions(),
            "options": {"device": args.device, "configs": args.configs or sorted(CONFIGS), "batch_n": args.batch_n,
                        "lost_size": args.lost_size, "sections": list(args.sections), "budget_s": args.budget,
                        "time_boxes_s": time_boxes(args), "seed": args.seed, "warmup": args.warmup,
                        "iters": args.iters, "dtypes": args.dtypes},
            "sections": {s: {"status": "not_run", "reason": "the run stopped before this section", "checks": []}
                         for s in SECTIONS},
            "summary": {}, "elapsed_s": 0.0}


def summarize(report: Dict[str, Any]) -> int:
    """Fill ``summary``, ``status`` and ``exit_code`` from the sections; return the exit code.

    Sections left out with ``--sections`` count in the summary but do not make a GPU run incomplete.
    """
    counts = {k: 0 for k in ("pass", "fail", "error", "skipped", "timeout")}
    chosen_skips = 0
    chosen = report["options"].get("sections") or list(report["sections"])
    states = []
    for name, sec in report["sections"].items():
        statuses = [c["status"] for c in sec.get("checks", [])]
        for st in statuses:
            counts[st] = counts.get(st, 0) + 1
        if name in chosen:
            states.append(sec["status"])
            chosen_skips += statuses.count(SKIPPED)
    report["summary"] = {"checks": sum(counts.values()), **counts}
    if not report["device"]["cuda_available"] and report["options"]["device"] == "cuda":
        code = EXIT_NO_CUDA
    elif counts["fail"] or counts["error"] or counts["timeout"] or any(s in BAD for s in states):
        code = EXIT_FAIL
    elif report["options"]["device"] == "cuda" and (chosen_skips or SKIPPED in states or "not_run" in states):
        code = EXIT_INCOMPLETE
    else:
        code = EXIT_PASS
    report["status"], report["exit_code"] = STATUS_FOR_EXIT[code], code
    return code


def validate_report(report: Dict[str, Any]) -> List[str]:
    """Problems with a report's form (empty when it follows the schema documented in docs/tensorrt.md)."""
    from .common import SECTION_STATUSES, STATUSES

    problems = []
    for key, kind in (("schema", str), ("created", str), ("status", str), ("exit_code", int), ("device", dict),
                      ("versions", dict), ("options", dict), ("sections", dict), ("summary", dict),
                      ("elapsed_s", (int, float))):
        if not isinstance(report.get(key), kind):
            problems.append(f"'{key}' missing or not {getattr(kind, '__name__', kind)}")
    if report.get("schema") != SCHEMA:
        problems.append(f"schema {report.get('schema')!r} != {SCHEMA!r}")
    if report.get("status") not in STATUS_FOR_EXIT.values() or \
            STATUS_FOR_EXIT.get(report.get("exit_code")) != report.get("status"):
        problems.append(f"status {report.get('status')!r} / exit_code {report.get('exit_code')!r} do not match")
    sections = report.get("sections") or {}
    if sorted(sections) != sorted(SECTIONS):
        problems.append(f"sections {sorted(sections)} != {sorted(SECTIONS)}")
    for name, sec in sections.items():
        if sec.get("status") not in SECTION_STATUSES:
            problems.append(f"section {name}: status {sec.get('status')!r}")
        if sec.get("status") in (SKIPPED, "not_run", ERROR) and not sec.get("reason"):
            problems.append(f"section {name}: status {sec.get('status')} without a reason")
        for c in sec.get("checks", []):
            if not isinstance(c.get("name"), str) or c.get("status") not in STATUSES:
                problems.append(f"section {name}: malformed check {str(c)[:120]}")
            elif c["status"] == SKIPPED and not c.get("reason"):
                problems.append(f"section {name}: check {c['name']} skipped without a reason")
    return problems


# ------------------------------------------------------------------------------------------------ sections
def time_boxes(args: argparse.Namespace) -> Dict[str, float]:
    return {"cuda_layer": args.box_cuda_layer, "kernel": args.box_kernel, "torch_timing": args.box_torch_timing}


def section_argv(args: argparse.Namespace, section: str, part: Path, box: float) -> List[str]:
    argv = [sys.executable, "-m", "siamtrt.benchmarks.gpu_check", "--section", section, "--part", str(part),
            "--time-box", f"{box:.1f}", "--device", args.device, "--batch-n", str(args.batch_n),
            "--lost-size", str(args.lost_size), "--seed", str(args.seed), "--dtypes", *args.dtypes]
    if args.configs:
        argv += ["--configs", *args.configs]
    if args.warmup is not None:
        argv += ["--warmup", str(args.warmup)]
    if args.iters is not None:
        argv += ["--iters", str(args.iters)]
    if args.sm is not None:
        argv += ["--sm", str(args.sm)]
    return argv


def _echo(stream, tail: deque) -> None:
    for line in iter(stream.readline, ""):
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))


def run_section_process(args: argparse.Namespace, section: str, box: float, workdir: Path) -> Dict[str, Any]:
    """Run one section in its own process, killed ``GRACE_S`` after its box; its part file, annotated."""
    import json

    part = workdir / f"{section}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    tail: deque = deque(maxlen=40)
    proc = subprocess.Popen(section_argv(args, section, part, box), cwd=str(REPO_ROOT), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = threading.Thread(target=_echo, args=(proc.stdout, tail), daemon=True)
    reader.start()
    killed = False
    try:
        rc = proc.wait(timeout=box + GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc, killed = proc.wait(), True
    reader.join(timeout=5)
    try:
        data = json.loads(part.read_text())
    except (OSError, ValueError):
        data = {"section": section, "checks": [], "info": {}}
    data["process_exit_code"] = rc
    if killed:
        data["status"], data["reason"] = TIMEOUT, f"killed after its {box:.0f} s time box + {GRACE_S:.0f} s grace"
    elif rc != 0 or data.get("status") in (None, "running"):
        data["status"] = ERROR
        data["reason"] = f"the section's process exited with {rc}" + ("" if data.get("checks") else
                                                                      " before recording a check")
        data["output_tail"] = list(tail)
    return data


def run_all(args: argparse.Namespace, out: Path) -> int:
    """The parent: probe, then each section in its own process within the run budget; the JSON after each."""
    budget = Deadline(args.budget)
    report = new_report(args)
    probe = probe_cuda()
    if args.device == "cuda" and not probe.available:
        for s in SECTIONS:
            report["sections"][s] = {"status": SKIPPED, "reason": f"no CUDA device ({probe.reason})", "checks": []}
        code = summarize(report)
        write_json(out, report)
        log(f"no CUDA device ({probe.reason}): nothing was checked; wrote {out} (exit {code})")
        return code
    write_json(out, report)
    with tempfile.TemporaryDirectory(prefix="siamtrt-gpucheck-") as tmp:
        for section in SECTIONS:
            if section not in args.sections:
                report["sections"][section] = {"status": SKIPPED, "reason": "not selected (--sections)",
                                               "checks": []}
                continue
            box = min(time_boxes(args)[section], budget.left() - GRACE_S - 5)
            if box < 10:
                report["sections"][section] = {"status": TIMEOUT, "checks": [],
                                               "reason": f"the run budget ({args.budget:.0f} s) was spent first"}
                continue
            log(f"section {section} (time box {box:.0f} s)")
            report["sections"][section] = run_section_process(args, section, box, Path(tmp))
            report["elapsed_s"] = round(budget.elapsed(), 2)
            summarize(report)
            write_json(out, report)
    report["elapsed_s"] = round(budget.elapsed(), 2)
    code = summarize(report)
    write_json(out, report)
    s = report["summary"]
    log(f"{report['status']}: {s['pass']} passed, {s['fail']} failed, {s['error']} errors, {s['timeout']} timed out, "
        f"{s['skipped']} skipped in {report['elapsed_s']:.0f} s; wrote {out} (exit {code})")
    return code


# ------------------------------------------------------------------------------------------------ one section
def run_one_section(args: argparse.Namespace) -> int:
    """A section's process: run it, write the part file; exit 0 once the part file is final."""
    rec = SectionRecorder(args.section, args.part, Deadline(args.time_box), log)
    try:
        _dispatch(rec, args)
    except ImportError as e:  # torch (shapes, timing) or cuda-bindings missing: nothing to check with
        rec.finish(SKIPPED, f"{e.name or e} is not installed ({e}); this section needs it")
    except Exception as e:  # anything the section did not catch is one error record, not a lost section
        rec.add(error_record(f"{args.section} (uncaught)", e))
    if rec.data.get("reason") is None:
        rec.finish()
    # leave at once: reference threads still running after a time box must not hold the process
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _dispatch(rec: SectionRecorder, args: argparse.Namespace) -> None:
    from .cases import architectures, correlation_cases

    probe = probe_cuda()
    sm = args.sm
    if sm is None and probe.devices:
        major, minor = probe.devices[0].compute_capability
        sm = major * 10 + minor
    archs = architectures(args.configs)
    if args.device == "cuda" and args.section in ("cuda_layer", "kernel"):
        from ...errors import BackendError
        from ...gpu.cuda import cuda_driver, cudart
        try:
            cudart(), cuda_driver()
        except BackendError as e:  # a missing library is not a failed check: the run is incomplete (exit 4)
            rec.finish(SKIPPED, e.what)
            return
    if args.section == "cuda_layer":
        if args.device == "cpu":
            rec.finish(SKIPPED, "--device cpu (dry run): the CUDA layer needs a CUDA device")
            return
        from .cuda_layer import cuda_layer_section
        cuda_layer_section(rec, sm, args.seed)
    elif args.section == "kernel":
        from .kernel_check import kernel_section
        cases = correlation_cases(archs, args.batch_n, args.lost_size or None)
        rec.info(architectures={a.name: list(a.configs) for a in archs})
        kernel_section(rec, cases, args.device, sm, args.seed)
    else:
        from .torch_timing import torch_section
        warmup = args.warmup if args.warmup is not None else (20 if args.device == "cuda" else 1)
        iters = args.iters if args.iters is not None else (100 if args.device == "cuda" else 3)
        dtypes = args.dtypes if args.device == "cuda" else ["float32"]
        torch_section(rec, archs, args.device, dtypes, warmup, iters, args.seed)


# ------------------------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siamtrt.benchmarks.gpu_check", allow_abbrev=False,
                                description="GPU check: the DepthwiseXCorr kernel vs numpy on every architecture's "
                                            "correlation shapes, siamtrt.gpu.cuda vs host copies, torch-CUDA "
                                            "search-branch times. Writes one JSON. Exit 0 pass, 1 a check failed, "
                                            "2 bad arguments, 3 no CUDA device, 4 incomplete (a check skipped).")
    p.add_argument("--out", type=Path, default=None,
                   help="the JSON report (default: results/gpu_check/<date-time>/gpu_check.json in the checkout)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cpu = dry run: nvcc build, kernel cases through a CPU stand-in, torch FP32 on the CPU")
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=None, metavar="NAME",
                   help="model configs whose architectures are checked (default: all)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--batch-n", type=int, default=None, help="the batch-N correlation cases (default: 8)")
    p.add_argument("--lost-size", type=int, default=None,
                   help="long-term search size added at batch 1 (default: pysot's 831; 0 = none)")
    p.add_argument("--dtypes", nargs="+", choices=("float16", "float32"), default=["float16", "float32"],
                   help="torch timing precisions on CUDA (the CPU dry run uses float32)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls (default: 20 on CUDA, 1 on CPU)")
    p.add_argument("--iters", type=int, default=None, help="timed calls (default: 100 on CUDA, 3 on CPU)")
    p.add_argument("--sm", type=int, default=None, help="target architecture (default: the GPU's; dry run: 90)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="whole run, seconds (default: %(default)s)")
    for s in SECTIONS:
        p.add_argument(f"--box-{s.replace('_', '-')}", type=float, default=TIME_BOXES[s],
                       help=f"time box of section {s}, seconds (default: %(default)s)")
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--time-box", type=float, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .cases import DEFAULT_BATCH_N, DEFAULT_LOST_SIZE
    args.batch_n = DEFAULT_BATCH_N if args.batch_n is None else args.batch_n
    args.lost_size = DEFAULT_LOST_SIZE if args.lost_size is None else args.lost_size
    if args.batch_n < 1 or args.lost_size < 0:
        print("error: --batch-n must be >= 1 and --lost-size >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.section:
        return run_one_section(args)
    out = args.out or REPO_ROOT / "results" / "gpu_check" / time.strftime("%Y%m%d-%H%M%S") / "gpu_check.json"
    try:
        return run_all(args, out)
    except KeyboardInterrupt:
        log(f"interrupted; the sections finished so far are in {out}")
        return 130
