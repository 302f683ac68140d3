"""The commands siamtrt's messages tell users to run (``fix=``, "next:", help texts): the installed ``siamtrt JOB``
form, with options that job really has (docs/*.md are checked the same way in test_docs_commands.py).

Every string literal under siamtrt/ is read (f-strings with ``{}`` for their values); docstrings are left out, since
they may document the checkout scripts themselves.
"""

from __future__ import annotations

import ast
import re
from typing import Iterator, List, Tuple

import pytest

from cli_helpers import REPO, help_options
from siamtrt.cli.main import JOBS

SCRIPT_FORM = re.compile(r"python3? (?:export|calibration|benchmarks|runtime)/\w+\.py")
#: ``siamtrt JOB`` (a job's name, or any word before an option: a misspelt job) and the rest of its command, up to a
#: bracket, a semicolon, a line end, ", ", " then " or " or "
COMMAND = re.compile(r"\bsiamtrt (%s|[a-z][a-z0-9-]*(?= --))(?![\w/-])((?:(?!, | then | or )[^();\n])*)"
                     % "|".join(sorted(map(re.escape, JOBS), key=len, reverse=True)))


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return node.value


def message_literals() -> Iterator[Tuple[str, int, str]]:
    """(file, line, text) of each non-docstring string literal of siamtrt/."""
    for path in sorted((REPO / "siamtrt").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings, bare strings
        parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for n in ast.walk(tree):
            if id(n) in docs or id(n) in parts:
                continue
            if isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant) and isinstance(n.value, str)):
                yield str(path.relative_to(REPO)), n.lineno, _text(n)


def message_commands() -> List[Tuple[str, str, str]]:
    """(where, job, the command's text after the job) of each ``siamtrt JOB`` the messages name."""
    return [(f"{f}:{line}", m.group(1), m.group(2)) for f, line, text in message_literals()
            for m in COMMAND.finditer(text)]


def test_messages_name_no_checkout_script():
    old = [f"{f}:{line}: {m}" for f, line, text in message_literals() for m in SCRIPT_FORM.findall(text)]
    assert not old, "messages that name a checkout script, not its siamtrt job:\n" + "\n".join(old)


def test_messages_name_commands():
    """The scan finds the messages' commands (a change of how they are written must not make the next test
    vacuous)."""
    jobs = {job for _, job, _ in message_commands()}
    assert {"export", "build", "quantize", "collect", "track"} <= jobs


@pytest.mark.parametrize("where,job,rest", message_commands(), ids=lambda v: v if ":" in str(v) else None)
def test_message_command_and_options_exist(where, job, rest):
    assert job in JOBS, f"{where}: siamtrt {job}{rest}: no such job (siamtrt --help lists {', '.join(JOBS)})"
    argv = ["-m", "siamtrt", job]
    known = help_options(argv) | (help_options(argv + ["--target", "opencv"]) if "--target opencv" in rest else set())
    unknown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)) - known
    assert not unknown, f"{where}: siamtrt {job}{rest}: options {sorted(unknown)} are not in siamtrt {job} --help"
