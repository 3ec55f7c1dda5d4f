"""The package's type hints are checked, so they stay true (STYLE: typed throughout)."""

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")
ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks():
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary",
                                     str(ROOT / "chatlab")])
    assert status == 0, out + err
