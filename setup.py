"""The build step for rlrun's one compiled module: the blockchain simulator's event core.

rlrun/envs/chain/pow.py is plain Python that Cython compiles in its pure-Python mode, with C types for its hot
methods in pow.pxd beside it. The compiled module is the same code, faster, with the same results bit for bit
(tests/test_chain_core.py). Where Cython or a C compiler is missing the build goes on without it, and the
package runs pow.py as Python. Each build writes the SHA-256 of the pow.py it compiled beside the module
(pow.sha256), so that rlrun never runs a compiled core older than its source (rlrun/envs/chain/core.py).

Everything else about the package is in pyproject.toml.
"""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE = "rlrun.envs.chain.pow"
CORE_SOURCE = Path("rlrun/envs/chain/pow.py")
RECORD = "pow.sha256"  # read by rlrun/envs/chain/core.py


class BuildCore(build_ext):
    """Build the core where this machine can (the extension is optional: a compile error is reported, not
    raised) and record the source each built module came from, beside it in the build folder and, for an
    editable install, in the source tree."""

    def run(self) -> None:
        super().run()
        digest = hashlib.sha256(CORE_SOURCE.read_bytes()).hexdigest() + "\n"
        inplace = self.inplace
        try:
            self.inplace = False
            built = Path(self.get_ext_fullpath(CORE))
            self.inplace = True
            in_tree = Path(self.get_ext_fullpath(CORE))
        finally:
            self.inplace = inplace
        records = [built.with_name(RECORD)] + ([in_tree.with_name(RECORD)] if inplace else [])
        for record in records:
            if built.exists():
                record.write_text(digest)
            else:  # not compiled this time: a module left from an earlier build no longer matches a record
                record.unlink(missing_ok=True)


def core_extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("rlrun: Cython is not installed; rlrun runs the chain core (pow.py) as Python")
        return []
    return cythonize(
        # no fused multiply-adds (gcc contracts a * b + c by default where the CPU has them): Python rounds the
        # product and the sum separately, and the compiled core must give the same floats
        [Extension(CORE, [str(CORE_SOURCE)], optional=True,
                   extra_compile_args=[] if os.name == "nt" else ["-ffp-contract=off"])],
        # annotation_typing off: the source's annotations document Python types, the C types are in pow.pxd
        compiler_directives={"language_level": "3", "annotation_typing": False},
        quiet=True,
    )


setup(ext_modules=core_extensions(), cmdclass={"build_ext": BuildCore})
