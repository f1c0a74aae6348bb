"""Does the page itself grow the server's memory? Explore rerun in-process, no server.

Runs ``app.py`` with Streamlit's ``AppTest`` on LeNet-5/digits and walks the pruning slider
0-95 % and back while the bit width alternates between two values, so after the first two
sweeps every setting is cached; prints the process's RSS after each sweep. Flat RSS here
and growth under ``bench_class.py --minutes`` point at the server (threads, allocator),
not at the page's caches.

Run: python bench/rerun_memory.py [--sweeps 8]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    from streamlit.testing.v1 import AppTest

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=8)
    args = ap.parse_args()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"dataset": "digits", "model": "lenet5"})
    at.run()
    print(f"after the first run: {rss_mib():,.0f} MiB", flush=True)
    runs = 0
    for sweep in range(args.sweeps):
        for rate in range(0, 100, 5):
            at.slider[0].set_value(rate).run()
        at.select_slider[0].set_value((2, 3)[sweep % 2]).run()
        runs += 21
        assert not at.exception, at.exception
        gc.collect()
        print(f"sweep {sweep}: {runs} reruns, {rss_mib():,.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
