"""``python -m siamtrt JOB ...``: the same as the installed ``siamtrt`` command."""

import sys

from siamtrt.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
