"""What every command shares: turning library errors and interruptions into one message and an exit code.

Exit codes: 0 success, 1 partial failure the command reports itself (e.g. some videos failed), 2 bad input or any
:class:`~siamtrt.errors.SiamtrtError` (message: what, evidence, fix; no traceback), 130 / 143 interrupted by SIGINT /
SIGTERM (message: what was kept and where).
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, Optional

from ..errors import Interrupted, SiamtrtError
from ..outputs import exit_code_for_interrupt, interrupted_signal_name, signals_as_interrupt

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def run_command(body: Callable[[], Optional[int]], *, name: str = "siamtrt") -> int:
    """Run a command's body with SIGTERM/SIGHUP treated like Ctrl-C, mapping outcomes to exit codes.

    Args:
        body: the command's work; returns an exit code (None means 0).
        name (str): the command's name for the interruption message. Defaults to "siamtrt".
    """
    with signals_as_interrupt():
        try:
            code = body()
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


def setup_logging(verbose: bool = False) -> None:
    """INFO lines from siamtrt (stage-prefixed); third-party chatter only with ``--verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    if not verbose:
        for noisy in ("onnxruntime", "onnxscript", "onnx_ir", "onnxslim", "torch", "ray", "urllib3", "openvino"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "run_command", "setup_logging"]
