"""`make bench`: run every bench/bench_*.py module's main() in turn (or only those named on the command line).

Each module prints its own table: rlrun's figure, the reference measured in the same process, and the ratio.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main() -> int:
    wanted = set(sys.argv[1:])
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    failed = 0
    for name in names:
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as e:  # one broken bench must not hide the others' numbers
            failed += 1
            print(f"{name} failed: {type(e).__name__}: {e}", flush=True)
        print(f"({name} took {time.perf_counter() - t0:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
