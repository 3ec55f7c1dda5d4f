"""The handout runs anywhere: chatlab from its wheel, the student edition in a folder outside the repository.

The wheel is built from this checkout and installed with ``pip install --target``
into a temporary folder, which is the only chatlab the kernel can import (it comes
first on PYTHONPATH, and the test checks ``chatlab.__file__``). Notebooks 01, 04
and 09 read the packet captures: they must find them in the installed package and
run to the end from a folder that is not the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason='the student edition needs nbgrader: pip install -e ".[test]"')
nbclient = pytest.importorskip("nbclient")

from chatlab.edition import write_student_edition  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAPTURE_NOTEBOOKS = ["01_setsockopt.ipynb", "04_recv.ipynb", "09_when_connections_fail.ipynb"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chatlab's wheel, built from this checkout and installed into a folder of its own."""
    wheels = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(wheels), str(ROOT)], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("chatlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for capture in ("chat.pcap", "transfer.pcap", "fin_rst.pcap", "time_wait.pcap"):
        assert f"chatlab/data/captures/{capture}" in names, f"the wheel lacks {capture}"
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--target", str(target), str(wheel)],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, installed: Path) -> Path:
    """A kernel of this interpreter whose chatlab is the installed wheel, not the checkout."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / "kernels" / "chatlab-wheel"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chatlab from its wheel", "language": "python",
        "env": {"PYTHONPATH": str(installed)},
    }))
    return kernels


def test_the_installed_package_finds_its_captures(installed: Path) -> None:
    code = ("import chatlab.captures as c, sys; assert c.__file__.startswith(sys.argv[1]), c.__file__; "
            "print(all((c.CAPTURES / n).is_file() for n in c.NAMES))")
    done = subprocess.run([sys.executable, "-c", code, str(installed)], check=False, capture_output=True, text=True,
                          cwd=installed.parent, env=dict(os.environ, PYTHONPATH=str(installed)), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stdout + done.stderr


@pytest.mark.parametrize("name", CAPTURE_NOTEBOOKS)
def test_the_student_edition_runs_outside_the_repository(tmp_path: Path, installed: Path, kernel: Path,
                                                         name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    from test_edition import check_run_to_the_end

    outside = tmp_path / "class"  # not the repository, not below it
    write_student_edition(outside, source=ROOT / "notebooks")
    assert ROOT.resolve() not in outside.resolve().parents
    nb = nbformat.read(outside / name, as_version=4)
    probe = nbformat.v4.new_code_cell(
        "import chatlab, sys\n"
        f"assert chatlab.__file__.startswith({str(installed)!r}), chatlab.__file__")
    nb.cells.insert(0, probe)
    specs = KernelSpecManager(kernel_dirs=[str(kernel / "kernels")])
    km = KernelManager(kernel_name="chatlab-wheel", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(nb, km=km, timeout=180, kernel_name="chatlab-wheel",
                                     resources={"metadata": {"path": str(outside)}})
    client.execute()
    nb.cells.pop(0)
    check_run_to_the_end(nb, name)
