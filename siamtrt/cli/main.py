"""The ``siamtrt`` command: one subcommand per job, each the very ``main`` the checkout scripts call.

    siamtrt export --config siamrpn_alex_dwxcorr          # = python export/to_onnx.py --config ...
    siamtrt track --model DIR --video bag.avi --bbox 316,140,112,115
    siamtrt inspect DIR | ENGINE
    siamtrt JOB --help

Every job goes through :func:`run_job` (the checkout scripts too): ``--bbox -20,-10,…`` is read as a value,
third-party noise is off unless ``-v/--verbose``, SIGTERM and SIGHUP stop a job like Ctrl-C (exit 130 / 143, with
what was kept; ``serve`` exits 0: its server stopped on request), and a :class:`~siamtrt.errors.SiamtrtError` is one
message and exit 2, never a traceback. Job modules are imported only when their job runs, so ``siamtrt --help``
needs neither torch nor TensorRT.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

from .common import EXIT_ERROR, join_negative_values, quiet_third_party, run_command

#: job → (module under siamtrt.cli, the checkout script that runs the same main, or "")
JOBS: Dict[str, Tuple[str, str]] = {
    "export": ("export", "export/to_onnx.py"),
    "collect": ("collect", "calibration/collect.py"),
    "quantize": ("quantize", "calibration/quantize.py"),
    "report": ("report", "calibration/report.py"),
    "build": ("build", "export/build_engine.py"),
    "inspect": ("inspect", ""),
    "track": ("track", "runtime/track.py"),
    "bench": ("fps", "benchmarks/fps.py"),
    "accuracy": ("accuracy", "benchmarks/accuracy.py"),
    "modes": ("modes", "benchmarks/modes.py"),
    "int8-family": ("int8_family", "benchmarks/int8_family.py"),
    "make-synthetic": ("make_synthetic", "benchmarks/make_synthetic.py"),
    "triton": ("triton", "export/to_triton.py"),
    "serve": ("serve", ""),
    "client": ("client", ""),
    "serving-bench": ("serving_bench", "benchmarks/serving.py"),
    "track-many": ("track_many", "benchmarks/track_many.py"),
    "soak": ("soak", "benchmarks/soak.py"),
}
#: the order and grouping of ``siamtrt --help``
GROUPS = (("model", ("export", "collect", "quantize", "report", "build", "inspect")),
          ("track", ("track", "bench", "accuracy", "modes", "int8-family", "make-synthetic")),
          ("serve", ("triton", "serve", "client", "serving-bench", "track-many", "soak")))


def job_summary(job: str) -> str:
    """First line of the job module's docstring, read without importing it (no torch for ``--help``)."""
    spec = importlib.util.find_spec(f"{__package__}.{JOBS[job][0]}")
    if spec is None or not spec.origin:
        return "(not installed)"
    try:
        with open(spec.origin, encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


def usage() -> str:
    from .. import __version__

    lines = [f"usage: siamtrt JOB [options]     (siamtrt JOB --help for a job's options; siamtrt {__version__})", ""]
    for group, jobs in GROUPS:
        lines.append(f"{group}:")
        for job in jobs:
            lines.append(f"  {job:15s} {textwrap.shorten(job_summary(job), 90, placeholder=' …')}")
        lines.append("")
    lines.append(textwrap.fill("From a checkout, the same jobs: " + ", ".join(
        f"python {s} = {j}" for j, (_, s) in JOBS.items() if s) + ".", 110, subsequent_indent="  "))
    lines.append("Every job: -v/--verbose shows third-party output; exit 0 ok, 2 bad input, 130/143 interrupted "
                 "(serve: 0, a server stopped on request).")
    return "\n".join(lines)


def run_job(job: str, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run one job's ``main`` as the installed command and the checkout scripts do.

    Args:
        job (str): a key of :data:`JOBS`.
        argv: the job's arguments. Defaults to ``sys.argv[1:]``.
        prog (str): name shown in usage lines (e.g. "siamtrt track"). Defaults to the script's name.
    """
    args = join_negative_values(sys.argv[1:] if argv is None else list(argv))
    quiet_third_party(verbose="-v" in args or "--verbose" in args)  # before OpenCV / ORT print anything
    old = sys.argv[0]
    if prog:
        sys.argv[0] = prog  # argparse's default prog: the usage line names the command the user typed
    try:  # the job's imports (torch, OpenCV: seconds) inside run_command: a Ctrl-C among them is a stop, not a trace
        return run_command(lambda: importlib.import_module(f"{__package__}.{JOBS[job][0]}").main(args),
                           name=prog or job)
    finally:
        sys.argv[0] = old


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``siamtrt`` console script (and ``python -m siamtrt``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else EXIT_ERROR
    if argv[0] == "--version":
        from .. import __version__

        print(f"siamtrt {__version__}")
        return 0
    job = argv[0]
    if job not in JOBS:
        close = difflib.get_close_matches(job, list(JOBS), n=1)
        print(f"error: unknown job {job!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
              + f"\n  fix: one of {', '.join(JOBS)}; siamtrt --help lists them", file=sys.stderr)
        return EXIT_ERROR
    return run_job(job, argv[1:], prog=f"siamtrt {job}")


__all__ = ["GROUPS", "JOBS", "job_summary", "main", "run_job", "usage"]
