"""Which build of the event core runs: pow.py compiled (setup.py builds it with Cython where it can) while the
compiled module was built from the pow.py beside it, else pow.py as Python. Both give the same results bit for
bit (tests/test_chain_core.py); the compiled one is faster.

Python imports a compiled module in preference to the .py of the same name, so after pow.py is edited or
checked out without a rebuild, it would silently run the old code. Each build records the SHA-256 of the source
it compiled (pow.sha256 beside the module). `select_core` runs before anything imports pow (this package's
__init__) and, where that record does not match pow.py, imports pow.py under the module's name instead and
warns once. RLRUN_CHAIN_CORE=python runs pow.py whatever is built (profilers see no Python frames inside a
compiled module).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

MODULE = "rlrun.envs.chain.pow"
SOURCE = Path(__file__).with_name("pow.py")
RECORD = "pow.sha256"  # written by setup.py's build step


def compiled_file(folder: Path | None = None) -> Path | None:
    """The compiled module in `folder` (pow.py's), if one was built for this Python."""
    folder = SOURCE.parent if folder is None else folder
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"pow{suffix}"
        if path.exists():
            return path
    return None


def built_from_source(compiled: Path, source: Path | None = None) -> bool:
    """Whether `compiled` was built from `source` (pow.py) as it is now."""
    source = SOURCE if source is None else source
    try:
        record = compiled.with_name(RECORD).read_text().strip()
    except FileNotFoundError:
        return False
    return record == hashlib.sha256(source.read_bytes()).hexdigest()


def load_python(name: str = MODULE) -> ModuleType:
    """Import pow.py as Python under `name` (another name than MODULE gives a second, independent copy)."""
    spec = importlib.util.spec_from_file_location(name, SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def select_core() -> None:
    """Make the coming import of MODULE run the build described in the module docstring."""
    if MODULE in sys.modules:
        return
    compiled = compiled_file()
    if compiled is None:
        return  # the import finds pow.py
    if os.environ.get("RLRUN_CHAIN_CORE", "") == "python":
        load_python()
    elif not built_from_source(compiled):
        warnings.warn(f"rlrun: {compiled.name} was not built from the pow.py beside it; running pow.py as Python "
                      "(rebuild it with `make install` or `pip install -e .`)", stacklevel=2)
        load_python()


def core_kind() -> str:
    """'compiled' or 'python': which build of the core this process runs."""
    module = sys.modules.get(MODULE)
    if module is None:
        raise RuntimeError(f"{MODULE} is not imported yet")
    return "python" if str(module.__file__).endswith(".py") else "compiled"
