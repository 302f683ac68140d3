"""The commands: one module per job, each with its argument parser and ``main(argv) -> exit code``.

The checkout scripts (``python export/to_onnx.py``, ``python runtime/track.py``, ...) and the installed ``siamtrt``
command call the same ``main``; library code never prints or exits (only these modules turn errors into exit codes).
"""
