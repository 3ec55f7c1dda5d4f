"""The CI definitions run exactly the README's test command, on the systems the README names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    commands = [b.strip() for b in blocks if "pytest" in b]
    assert commands, "the README's quick start lost its test command"
    return commands[0]


def test_ci_run_uses_the_readme_command() -> None:
    assert readme_test_command() in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_github_workflow_covers_three_systems_and_two_pythons() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    matrix = job["strategy"]["matrix"]
    assert {"ubuntu-latest", "macos-latest", "windows-latest"} <= set(matrix["os"])
    assert "3.10" in matrix["python-version"]  # the oldest Python pyproject.toml allows
    assert any(v in ("3.x", "3.13", "3.14") for v in matrix["python-version"])  # and the newest release
    runs = [step.get("run", "") for step in job["steps"]]
    assert readme_test_command() in runs


def test_readme_does_not_claim_untested_platforms() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"tested on (Windows|macOS)", readme)
