"""Every section of every notebook ends with its Chinese key points (本节要点), and key terms carry their Chinese.

The key-point cells are markdown cells tagged ``zh-key-points`` (a teacher's
tool can drop or keep them by tag); a new ``## `` section without one fails
here, with the section's name.  Only markdown is touched, so nbval's
comparison of outputs is unaffected.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TAG = "zh-key-points"
CJK = re.compile(r"[\u4e00-\u9fff]")

# (notebook number, English term, its Chinese): the term's first appearance in the prose carries the Chinese.
FIRST_APPEARANCE = [
    ("00", "three-way handshake", "三次握手"),
    ("01", "TIME_WAIT", "时间等待状态"),
    ("02", "half-open", "半开连接"),
    ("03", "framing", "成帧"),
    ("06", "flow control", "流量控制"),
    ("06", "congestion control", "拥塞控制"),
    ("06", "bandwidth-delay product", "带宽时延积"),
    ("07", "head-of-line blocking", "队头阻塞"),
    ("09", "half-close", "半关闭"),
    ("09", "half-open connection", "半开连接"),
    ("01", "dual-stack", "双栈"),
    ("03", "delayed ACK", "延迟确认"),
    ("09", "exponential backoff", "指数退避"),
    ("10", "datagram", "数据报"),
    ("10", "jitter", "抖动"),
]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _is_points(cell: dict) -> bool:
    return cell["cell_type"] == "markdown" and TAG in cell.get("metadata", {}).get("tags", [])


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_ends_with_key_points(path):
    cells = _cells(path)
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _source(c).startswith("## ")]
    assert starts, f"{path.name} has no '## ' sections"
    problems = []
    for k, start in enumerate(starts):
        heading = _source(cells[start]).splitlines()[0]
        end = (starts[k + 1] if k + 1 < len(starts) else len(cells)) - 1
        last = cells[end]
        if not _is_points(last):
            problems.append(f"{heading!r} does not end with a 本节要点 cell")
            continue
        text = _source(last)
        bullets = [line for line in text.splitlines() if line.startswith("* ")]
        if not text.startswith("**本节要点**") or not bullets or not all(CJK.search(b) for b in bullets):
            problems.append(f"{heading!r}: its key points are not a Chinese bullet list under **本节要点**")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_section_starts_in_the_middle_of_a_cell(path):
    """A '## ' heading inside a cell would put its section's key points in the wrong place."""
    inside = [
        line
        for cell in _cells(path)
        if cell["cell_type"] == "markdown"
        for line in _source(cell).splitlines()[1:]
        if line.startswith("## ")
    ]
    assert not inside, f"{path.name}: a '## ' heading in the middle of a markdown cell: {inside}"


@pytest.mark.parametrize("number, term, chinese", FIRST_APPEARANCE)
def test_a_key_term_carries_its_chinese_where_it_first_appears(number, term, chinese):
    paths = [p for p in NOTEBOOKS if p.name.startswith(number + "_")]
    if not paths:
        pytest.skip(f"notebook {number} is not in this checkout")
    prose = "\n".join(
        _source(c) for c in _cells(paths[0]) if c["cell_type"] == "markdown" and not _is_points(c)
    )
    prose = re.sub(r"^(#|>).*$", "", prose, flags=re.M)  # headings and quotes are left as they are,
    prose = re.sub(r"^\*\(.*?\)\*\s*$", "", prose, flags=re.M | re.S)  # and the English of a quote, *(...)*
    prose = re.sub(r"`[^`\n]*`", "", prose)  # and so is code
    first = re.search(r"(?<![\w-])" + re.escape(term) + r"(?:s|es)?(?![\w-])", prose, re.I)
    assert first, f"{term!r} does not appear in notebook {number}"
    after = prose[first.end() : first.end() + 40].lstrip("*")
    seen = prose[first.start() : first.end() + 40]
    assert after.startswith(f"（{chinese}）"), (
        f"notebook {number}: {term!r} first appears without （{chinese}）: ...{seen!r}")
