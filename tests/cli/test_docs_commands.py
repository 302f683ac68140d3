"""The command lines and file paths of docs/*.md, so the guides cannot drift from the code (as the README's, in
tests/cli/test_readme_commands.py, which also runs them).

Every ``bash`` or usage block of docs/*.md is parsed: each ``siamtrt JOB``, ``python SCRIPT.py`` and
``python -m siamtrt.MODULE`` must exist and every ``--option`` on its line (usage continuation lines included) must be
one its ``--help`` lists. Every ``.py`` / ``.md`` / ``.sh`` path the README and the guides name must exist from the
repository root (or the doc's folder, for links): ``siamtrt/batch/jobs.py``, not ``batch/jobs.py``. Only checked,
not run: the guides' commands need checkpoints, GPUs, Jetsons or minutes.
"""

from __future__ import annotations

import re
from typing import List, Tuple

import pytest

from cli_helpers import REPO, help_options

DOCS = sorted((REPO / "docs").glob("*.md"))
#: paths the docs name that are not this repository's: pysot's scripts
EXTERNAL = {"tools/demo.py", "tools/test.py"}
PATH = re.compile(r"(?<![\w./~-])([\w.-]+/[\w./-]*\.(?:py|md|sh))\b")


def doc_commands() -> List[Tuple[str, str, List[str]]]:
    """(doc name, command line, argv of its --help) for each documented siamtrt command of docs/*.md."""
    found = []
    for doc in DOCS:
        for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", doc.read_text(), re.S | re.M):
            if lang not in ("bash", ""):
                continue
            lines: List[str] = []
            for line in re.sub(r"\\\n", " ", block).splitlines():
                if lines and re.match(r"\s+(\[|--)|\s*#\s+\[", line):  # a usage line continues the command above
                    lines[-1] += " " + line.strip().lstrip("#")
                else:
                    lines.append(line)
            for line in lines:
                for part in line.split("  #")[0].split("&&"):
                    w = part.split()
                    if w[:1] == ["$"]:
                        w = w[1:]
                    if len(w) < 2:
                        continue
                    if w[0] == "siamtrt":
                        argv = ["-m", "siamtrt", w[1]]
                    elif w[0] in ("python", "python3") and w[1].endswith(".py"):
                        argv = [w[1]]
                    elif w[0] in ("python", "python3") and w[1] == "-m" and w[2].startswith("siamtrt."):
                        argv = ["-m", w[2]]
                    else:
                        continue
                    found.append((doc.name, line.strip(), argv))
    return found


@pytest.mark.parametrize("doc,line,argv", doc_commands(), ids=lambda v: v[:60] if isinstance(v, str) else None)
def test_guide_command_and_options_exist(doc, line, argv):
    if argv[0].endswith(".py"):
        assert (REPO / argv[0]).is_file(), f"{doc}: {line}: no script {argv[0]}"
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line))
    unknown = used - help_options(argv)
    assert not unknown, f"{doc}: {line}: options {sorted(unknown)} are not in {' '.join(argv)} --help"


def test_guides_name_commands():
    """The parser finds the guides' commands (a change of the block format must not make the test above vacuous)."""
    names = {doc for doc, _, _ in doc_commands()}
    assert {"benchmarks.md", "calibration.md", "runtime.md", "serving.md", "tensorrt.md", "opencv.md"} <= names


def test_named_repository_paths_exist():
    missing = []
    for doc in [REPO / "README.md", *DOCS]:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for path in PATH.findall(line):
                if path not in EXTERNAL and not (REPO / path).exists() and not (doc.parent / path).exists():
                    missing.append(f"{doc.relative_to(REPO)}:{n}: {path}")
    assert not missing, "paths named in the docs that the repository does not have:\n" + "\n".join(missing)


def test_readme_lists_every_job():
    """The README's job table names every job of ``siamtrt --help`` (soak and make-synthetic were missing)."""
    from siamtrt.cli.main import JOBS

    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `siamtrt ")]
    cells = " ".join(" ".join(row.split(" | ")[:2]) for row in rows)  # job, and what it does ("also `accuracy`")
    named = set(re.findall(r"`(?:siamtrt )?([a-z][a-z0-9-]*)`", cells))
    assert set(JOBS) <= named, f"jobs the README's table does not name: {sorted(set(JOBS) - named)}"
