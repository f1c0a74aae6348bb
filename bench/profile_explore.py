"""Where one Explore rerun spends the server's CPU: a slider move, profiled on a real server.

Starts ``streamlit run app.py`` on 127.0.0.1 in a process that times (and, in the second
pass, cProfiles) every script run in its own thread, opens Explore on LeNet-5/digits in one
Chromium page (Playwright), visits two settings so both are cached, then moves the pruning
slider back and forth between them: every move is a rerun that computes nothing new. Prints
per move the server process's CPU seconds (/proc, everything: script, protobuf, websocket)
and the script run's own CPU seconds, then cProfile's top functions of the script runs.

Run: flock /tmp/bench.lock python bench/profile_explore.py [--moves 20] [--top 30]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

# Runs inside the server process: SIGUSR2 starts profiling, SIGUSR1 writes the figures.
LAUNCHER = """
import cProfile, marshal, signal, sys, time
from streamlit.runtime.scriptrunner import script_runner
out, profiler, runs, on = sys.argv.pop(1), cProfile.Profile(), [], [False]
original = script_runner.ScriptRunner._run_script
def run_script(self, *a, **kw):
    start = time.thread_time()
    if on[0]:
        profiler.enable()
    try:
        return original(self, *a, **kw)
    finally:
        if on[0]:
            profiler.disable()
        runs.append((on[0], time.thread_time() - start))
script_runner.ScriptRunner._run_script = run_script
def dump(*_):
    profiler.dump_stats(out + ".prof")
    open(out + ".runs", "w").write(repr(runs))
def start(*_):
    runs.clear()
    on[0] = True
signal.signal(signal.SIGUSR1, dump)
signal.signal(signal.SIGUSR2, start)
from streamlit.web.cli import main
sys.argv = ["streamlit", "run"] + sys.argv[1:]
main()
"""


async def moves(page, pid: int, n: int) -> list[float]:
    """``n`` slider moves back and forth; the server's CPU seconds for each."""
    from bench_class import cpu_seconds, move

    spent = []
    for i in range(n):
        before = cpu_seconds(pid)
        await move(page, "ArrowRight" if i % 2 == 0 else "ArrowLeft")
        await asyncio.sleep(0.3)  # let the run's last messages go out
        spent.append(cpu_seconds(pid) - before)
    return spent


async def drive(url: str, pid: int, n: int) -> dict:
    from bench_class import listen, settled
    from helpers import CHROMIUM, CHROMIUM_ARGS
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        listen(page)
        await page.goto(f"{url}/?prune_rate=0.3&bits=5")
        await settled(page)
        await moves(page, pid, 2)  # 30 % -> 35 % -> 30 %: both cached from here on
        plain = await moves(page, pid, n)
        os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(0.5)
        profiled = await moves(page, pid, n)
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(2)
        await browser.close()
    return {"plain": plain, "profiled": profiled}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moves", type=int, default=20, help="slider moves per pass")
    ap.add_argument("--top", type=int, default=30, help="functions listed")
    ap.add_argument("--sort", default="cumulative", help="pstats sort key")
    args = ap.parse_args()

    from helpers import free_port, wait_healthy

    prefix = tempfile.mkdtemp(prefix="profile-explore-") + "/run"
    port = free_port()
    command = [sys.executable, "-c", LAUNCHER, prefix, "app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    log = open(prefix + ".log", "wb")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        spent = asyncio.run(drive(url, proc.pid, args.moves))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    runs = [cpu for on, cpu in ast.literal_eval(Path(prefix + ".runs").read_text()) if on]
    print(
        f"server CPU per move (no profiler): median {statistics.median(spent['plain']):.3f} s, "
        f"mean {statistics.mean(spent['plain']):.3f} s over {args.moves} moves"
    )
    print(
        f"script run CPU (profiled pass): median {statistics.median(runs):.3f} s over "
        f"{len(runs)} runs; server CPU per move then {statistics.median(spent['profiled']):.3f} s"
    )
    stats = pstats.Stats(prefix + ".prof")
    stats.sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
