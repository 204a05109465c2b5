"""Every ```python block of README.md and docs/*.md runs as it is (in order, one namespace per page), so
the docs can't drift from the code."""
import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = _blocks(page)
    assert blocks, f"{page.name} has no python blocks"
    monkeypatch.chdir(tmp_path)                         # files the snippets write land in a temp folder
    ns = {"__name__": "__docs__"}
    for i, src in enumerate(blocks):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(src, f"{page.name}[block {i}]", "exec"), ns)
            except Exception as e:           # noqa: BLE001 - re-raised with the block that failed
                raise AssertionError(f"{page.name}, python block {i} failed: {e!r}\n{src}") from e
