"""The top-level conf/ ships inside the wheel as rlrun.conf, pyproject's package list covers the tree, and the
wheel carries the compiled chain core with the record of the source it was built from."""

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_packages() -> set[str]:
    found = {"hydra_plugins"}
    for top in ("rlrun", "hydra_plugins"):
        for root, _, files in os.walk(ROOT / top):
            if "__init__.py" in files and "__pycache__" not in root:
                found.add(str(Path(root).relative_to(ROOT)).replace(os.sep, "."))
    for root, _, _ in os.walk(ROOT / "conf"):  # shipped as rlrun.conf: one (data-only) package per folder
        found.add(".".join(("rlrun", *Path(root).relative_to(ROOT).parts)))
    return found


def test_pyproject_lists_every_package_of_the_tree():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert listed == tree_packages()


def test_the_wheel_carries_the_config_tree_as_rlrun_conf(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("rlrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    yamls = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert yamls and {f"rlrun/conf/{y}" for y in yamls} <= names
    assert "rlrun/conf/__init__.py" in names and "hydra_plugins/rlrun_ray_launcher/__init__.py" in names
    if shutil.which("cc") is not None:  # setup.py compiles the chain core where a C compiler is
        assert any(n.startswith("rlrun/envs/chain/pow.") and n.endswith(".so") for n in names), sorted(names)
        record = zipfile.ZipFile(wheel).read("rlrun/envs/chain/pow.sha256").decode().strip()
        assert record == hashlib.sha256((ROOT / "rlrun/envs/chain/pow.py").read_bytes()).hexdigest()


def test_without_a_c_compiler_the_package_builds_and_runs_the_core_as_python(tmp_path):
    """The compiled core is optional: with a compiler that fails, the wheel builds without the module and
    without a record of it (so rlrun runs pow.py as Python). Built from a copy, so that no module left in the
    tree's build/ from an earlier build can stand in for the failed one."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "outputs", "multirun", "*.egg-info", "__pycache__", "*.so", "pow.c", "pow.sha256"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                   check=True, capture_output=True, timeout=300, env={**os.environ, "CC": "false"})
    (wheel,) = tmp_path.glob("rlrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rlrun/envs/chain/pow.py" in names
    assert not [n for n in names if n.startswith("rlrun/envs/chain/pow.") and n.endswith((".so", ".sha256"))]

