"""The Python snippets of the runtime guide run as written: every ``python`` block of docs/runtime.md and README.md,
its paths alone adapted (``models/…`` → a tiny model directory, ``../shared/data/`` → the test data), in a fresh
interpreter (tests/cli/test_docs_commands.py checks the guides' command lines; nothing ran their Python before)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "runtime.md"]


def snippets():
    """(doc name, block number, code) for each python block of DOCS."""
    return [(doc.name, i, code) for doc in DOCS
            for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M))]


def test_the_guide_has_snippets():
    """The parser finds the runtime guide's Python API block (a change of format must not make the test vacuous)."""
    assert any(doc == "runtime.md" and "Tracker.from_model_dir" in code for doc, _, code in snippets())


@pytest.mark.parametrize("doc,n,code", [pytest.param(*s, id=f"{s[0]}-{s[1]}") for s in snippets()])
def test_snippet_runs_as_written(doc, n, code, tiny_dir, data_dir, tmp_path):
    model = tiny_dir("siamrpn_alex_dwxcorr")
    code = re.sub(r"""(["'])models/[^"']+\1""", repr(str(model)), code)
    code = code.replace("../shared/data/", f"{data_dir}/")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, f"{doc} python block {n} failed:\n{code}\n{r.stderr[-3000:]}"
    assert r.stdout.strip(), f"{doc} python block {n} printed nothing"
