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
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE = "rlrun.envs.chain.pow"
CORE_SOURCE = Path("rlrun/envs/chain/pow.py")
RECORD = "pow.sha256"  # read by rlrun/envs/chain/core.py


class BuildCore(build_ext):
    """Build the core where this machine can, and keep with each built module the record of the source it was
    compiled from: the record is written only when the compile succeeded (or found the module up to date, which
    Cython's and setuptools' timestamps allow only while pow.py is unchanged), and travels with the module when
    an editable install copies it into the source tree."""

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)  # raises on a failed compile (reported above: the extension is optional)
        digest = hashlib.sha256(CORE_SOURCE.read_bytes()).hexdigest()
        Path(self.get_ext_fullpath(ext.name)).with_name(RECORD).write_text(digest + "\n")

    def copy_extensions_to_source(self) -> None:
        super().copy_extensions_to_source()
        for ext in self.extensions:
            in_tree = Path(self.get_ext_fullpath(ext.name)).with_name(RECORD)
            self.inplace = False
            built = Path(self.get_ext_fullpath(ext.name))
            self.inplace = True
            if built.exists() and built.with_name(RECORD).exists():
                shutil.copyfile(built.with_name(RECORD), in_tree)
            else:  # nothing was copied: a module left from an earlier build must not look current
                in_tree.unlink(missing_ok=True)


def core_extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("rlrun: Cython is not installed; rlrun runs the chain core (pow.py) as Python")
        return []
    extensions = cythonize(
        # no fused multiply-adds (gcc contracts a * b + c by default where the CPU has them): Python rounds the
        # product and the sum separately, and the compiled core must give the same floats
        [Extension(CORE, [str(CORE_SOURCE)], extra_compile_args=[] if os.name == "nt" else ["-ffp-contract=off"])],
        # annotation_typing off: the source's annotations document Python types, the C types are in pow.pxd
        compiler_directives={"language_level": "3", "annotation_typing": False},
        build_dir="build",  # the generated C stays out of the package tree
        quiet=True,
    )
    for extension in extensions:  # cythonize returns new Extension objects, without `optional`
        extension.optional = True  # a failed compile is reported and the package installs without it
    return extensions

setup(ext_modules=core_extensions(), cmdclass={"build_ext": BuildCore})
