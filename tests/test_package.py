"""Package-level guarantees: light import, the CLI's subcommands, no torchvision."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


def test_torchvision_is_not_installed():
    # torchvision has no CPU build here and its CUDA wheels break transformers' image classes.
    assert importlib.util.find_spec("torchvision") is None


def test_no_dependency_pulls_torchvision():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + [d for ds in project["optional-dependencies"].values() for d in ds]
    # torchvision itself, and packages that require it (vllm) or install it as an extra.
    banned = ("torchvision", "vllm", "transformers[vision]", "trl[vlm]")
    assert not [d for d in deps if d.lower().replace(" ", "").startswith(banned)], deps


def test_import_medmo_is_light():
    code = (
        "import sys, medmo, medmo.records, medmo.prompts, medmo.cli;"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'pyarrow', 'pydicom', 'fastapi')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "medmo.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("data", "model", "train", "eval", "ask", "ground", "report", "serve", "speedrun"):
        assert command in out.stdout, f"`medmo --help` does not list {command!r}"
    assert "research" in out.stdout.lower()


@pytest.mark.parametrize("argv", [["data", "--help"], ["eval", "--help"], ["train", "--help"]])
def test_subcommand_help(argv):
    out = subprocess.run([sys.executable, "-m", "medmo.cli", *argv], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_dependencies_are_bounded_and_the_constraints_pin_the_tested_versions():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project["optional-dependencies"].items() if k in ("serve", "test")}
    reqs = [Requirement(d) for d in project["dependencies"] + [d for ds in extras.values() for d in ds]]
    unbounded = [str(r) for r in reqs if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert unbounded == []
    pins = {}
    for line in (root / "constraints-cpu.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    for r in reqs:
        key = r.name.lower().replace("_", "-")
        assert key in pins, f"constraints-cpu.txt does not pin {r.name}"
        assert r.specifier.contains(pins[key], prereleases=True), f"{r.name}=={pins[key]} is outside {r.specifier}"
