"""What every command shares: argument reading, quiet third-party output, and one way to end.

Exit codes: 0 success, 1 partial failure the command reports itself (e.g. some videos failed), 2 bad input or any
:class:`~siamtrt.errors.SiamtrtError` (message: what, evidence, fix; no traceback), 130 / 143 interrupted by SIGINT /
SIGTERM (message: what was kept and where), 141 the reader of stdout closed it (``| head``; nothing printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Callable, List, Optional, Sequence

from ..errors import Interrupted, SiamtrtError
from ..outputs import exit_code_for_interrupt, interrupted_signal_name, signals_as_interrupt

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away

#: a value that starts with a minus and a digit and holds a comma: "-20,-10,112,115" (argparse reads it as an option)
_NEGATIVE_LIST = re.compile(r"^-\.?\d[\d.eE+-]*(,\s*-?\.?\d[\d.eE+-]*)+$")

#: loggers of libraries whose INFO/WARNING chatter is hidden unless --verbose
NOISY_LOGGERS = ("onnxruntime", "onnxscript", "onnx_ir", "onnxslim", "torch", "ray", "urllib3", "openvino",
                 "matplotlib", "PIL", "tritonclient", "grpc")


def join_negative_values(argv: Sequence[str]) -> List[str]:
    """``["--bbox", "-20,-10,112,115"]`` → ``["--bbox=-20,-10,112,115"]``.

    argparse takes any word starting with "-" (other than a plain negative number) for an option, so a box whose
    corner lies left of or above the frame failed with "expected one argument". A comma-separated list of numbers
    is never an option name, so it is glued to the option before it.
    """
    out: List[str] = []
    for word in argv:
        prev = out[-1] if out else ""
        if _NEGATIVE_LIST.match(word) and prev.startswith("-") and "=" not in prev and not _NEGATIVE_LIST.match(prev):
            out[-1] = f"{prev}={word}"
        else:
            out.append(word)
    return out


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """``parser.parse_args`` on ``argv`` (default ``sys.argv[1:]``) after :func:`join_negative_values`."""
    return parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type of a count (``--threads``, ``--max-frames``, ``--streams`` ...): a whole number ≥ ``minimum``,
    refused at parse time (exit 2) before any model loads — ONNX Runtime took ``--threads -2`` silently, torch
    failed on it with a traceback, and ``modes --seeds 0`` wrote an empty report."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


#: the argparse type of counts that must be 1 or more
positive_int = int_at_least(1)


def positive_seconds(text: str) -> float:
    """argparse type of a duration: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """The ``-v/--verbose`` flag every command has: third-party warnings and progress shown."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party output too (OpenCV / ONNX Runtime / torch warnings, debug lines)")


def run_command(body: Callable[[], Optional[int]], *, name: str = "siamtrt") -> int:
    """Run a command's body with SIGTERM/SIGHUP treated like Ctrl-C, mapping outcomes to exit codes.

    Args:
        body: the command's work; returns an exit code (None means 0).
        name (str): the command's name for the interruption message. Defaults to "siamtrt".
    """
    with signals_as_interrupt():
        try:
            code = body()
            sys.stdout.flush()  # a closed pipe shows here, not as "Exception ignored" at exit
        except BrokenPipeError:
            return stdout_closed()
        except Interrupted as e:
            print(f"{name}: {e.what} ({interrupted_signal_name()})", file=sys.stderr)
            return exit_code_for_interrupt()
        except KeyboardInterrupt:
            print(f"{name}: interrupted ({interrupted_signal_name()}); no output was left half-written",
                  file=sys.stderr)
            return exit_code_for_interrupt()
        except SiamtrtError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK if code is None else int(code)


def stdout_closed() -> int:
    """The end of a command whose reader closed stdout (``siamtrt inspect --json | head``): quietly, as CLI tools do.

    As Python's documentation advises for SIGPIPE: stdout is pointed at devnull so the interpreter's final flush
    raises nothing, and the exit code is 128 + SIGPIPE (141), what a shell reports for a tool killed by it.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def quiet_third_party(verbose: bool = False) -> None:
    """Hide OpenCV's ``[ WARN:0@…]`` lines (FFmpeg probing, camera back-ends) and ONNX Runtime's warnings unless
    ``verbose``; set for this process and the processes it starts (Ray workers, Triton's Python stubs)."""
    level = "INFO" if verbose else "ERROR"
    if not verbose and not _stderr_is_tty():
        # tqdm bars redraw with carriage returns: in a log they are noise (siamtrt.progress prints plain lines
        # instead). tqdm reads TQDM_* defaults at import, so this is set before the job's modules load.
        os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["OPENCV_LOG_LEVEL"] = level
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "32" if verbose else "-8")  # AV_LOG_INFO / AV_LOG_QUIET
    os.environ["ORT_LOGGING_LEVEL"] = "2" if verbose else "3"
    if "cv2" in sys.modules:  # already imported: set its level directly as well
        try:
            import cv2

            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_INFO if verbose else
                                          cv2.utils.logging.LOG_LEVEL_ERROR)
        except (AttributeError, ImportError):
            pass


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logging(verbose: bool = False) -> None:
    """INFO lines from siamtrt (stage-prefixed); third-party chatter only with ``--verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", force=True)
    quiet_third_party(verbose)
    if not verbose:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "add_verbose", "int_at_least",
           "join_negative_values", "parse_args", "positive_int", "positive_seconds", "quiet_third_party", "run_command",
           "setup_logging", "stdout_closed"]
