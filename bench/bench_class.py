"""A class at once: 8 real Chromium pages moving sliders against one `streamlit run` server.

For each data set, prints p50/p95 of slider -> new number (key press to the "Non-zero
parameters" metric showing the new value) for
  (a) every session following the same settings (a class following the teacher), and
  (b) every session on its own settings (distinct bit widths),
plus the server's RSS before and after. ``--minutes M`` then keeps (b) going for M minutes,
walking the sessions over many settings, and prints the RSS growth.

Run: flock /tmp/bench.lock python bench/bench_class.py [--quick] [--minutes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

WAIT_MS = 300_000
SAME_BITS = 5  # (a): everybody at 5 bits
DISTINCT_BITS = (2, 3, 4, 6, 7, 8, 12, 16)  # (b): one bit width per session


def rss_mib(pid: int) -> float:
    """Resident memory of the server process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def settled(page) -> None:
    from playwright.async_api import expect

    value = page.get_by_test_id("stMetric").filter(has_text="Non-zero parameters")
    await expect(value.get_by_test_id("stMetricValue")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)


async def move(page, key: str) -> float:
    """Press ``key`` on a slider; seconds until the non-zero count shows a new value."""
    from playwright.async_api import expect

    box = page.get_by_test_id("stMetric").filter(has_text="Non-zero parameters")
    value = box.get_by_test_id("stMetricValue")
    before = await value.inner_text()
    await page.get_by_role("slider").first.focus()
    start = time.perf_counter()
    await page.keyboard.press(key)
    await expect(value).not_to_have_text(before, timeout=WAIT_MS)
    seconds = time.perf_counter() - start
    await settled(page)
    return seconds


async def new_bits(page) -> None:
    """One bit fewer (the non-zero count need not change, so wait for the run, not a value)."""
    await page.get_by_role("slider").nth(1).focus()
    await page.keyboard.press("ArrowLeft")
    await page.wait_for_timeout(500)
    await settled(page)


async def open_pages(browser, url: str, queries: list[str]) -> list:
    pages = []
    for query in queries:
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        await page.goto(f"{url}/?{query}")
        pages.append(page)
    await asyncio.gather(*(settled(p) for p in pages))
    return pages


async def round_of_moves(pages, moves: int, key: str = "ArrowRight") -> list[float]:
    """Every page presses ``key`` at the same moment, ``moves`` times; all latencies."""
    times = []
    for _ in range(moves):
        times += await asyncio.gather(*(move(p, key) for p in pages))
    return times


async def close(pages) -> None:
    for p in pages:
        await p.context.close()


async def scenario(browser, url, base: str, sessions: int, moves: int, same: bool) -> list:
    bits = [SAME_BITS] * sessions if same else DISTINCT_BITS[:sessions]
    pages = await open_pages(browser, url, [f"{base}&bits={b}&prune_rate=0.3" for b in bits])
    try:
        return await round_of_moves(pages, moves)
    finally:
        await close(pages)


async def step(page, key: str) -> None:
    """One pruning step for the memory walk: wait for the run, not for a new count (at low
    bits the quantizer's zero level can already hold the weights a step prunes)."""
    before = page.url
    await page.get_by_role("slider").first.focus()
    await page.keyboard.press(key)
    await page.wait_for_url(lambda url: url != before, timeout=WAIT_MS)
    await settled(page)


async def wander(browser, url, base: str, sessions: int, minutes: float, pid: int) -> list:
    """(b) for ``minutes``: pruning up and down, bits stepping; RSS sampled each round."""
    bits = DISTINCT_BITS[:sessions]
    pages = await open_pages(browser, url, [f"{base}&bits={b}&prune_rate=0" for b in bits])
    samples, end, step = [], time.monotonic() + 60 * minutes, 0
    try:
        while time.monotonic() < end:
            key = "ArrowRight" if (step // 19) % 2 == 0 else "ArrowLeft"  # 0 % .. 95 % and back
            await asyncio.gather(*(step(p, key) for p in pages))
            if step % 19 == 18:  # each sweep over the rates, every session moves its bits
                await asyncio.gather(*(new_bits(p) for p in pages))
            samples.append((round(time.monotonic() - end + 60 * minutes), rss_mib(pid)))
            step += 1
    finally:
        await close(pages)
    return samples


def summary(times: list[float]) -> dict:
    return {
        "n": len(times),
        "p50_s": round(statistics.median(times), 2),
        "p95_s": round(percentile(times, 0.95), 2),
        "max_s": round(max(times), 2),
    }


async def run(args) -> dict:
    from playwright.async_api import async_playwright

    out = {"sessions": args.sessions, "moves": args.moves, "model": args.model, "data": {}}
    log = ROOT / "test-artifacts" / "bench-class-server.log"
    with streamlit_server(log) as (url, proc):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for data in args.data.split(","):
                base = f"dataset={data}&model={args.model}"
                # One page first: loads the baseline, so the timings are about compressing.
                await close(await open_pages(browser, url, [base]))
                before = rss_mib(proc.pid)
                same = await scenario(browser, url, base, args.sessions, args.moves, True)
                distinct = await scenario(browser, url, base, args.sessions, args.moves, False)
                out["data"][data] = {
                    "same": summary(same),
                    "distinct": summary(distinct),
                    "rss_before_mib": round(before),
                    "rss_after_mib": round(rss_mib(proc.pid)),
                }
                print(data, json.dumps(out["data"][data]), flush=True)
            if args.minutes:
                data = args.data.split(",")[-1]
                base = f"dataset={data}&model={args.model}"
                before = rss_mib(proc.pid)
                samples = await wander(browser, url, base, args.sessions, args.minutes, proc.pid)
                out["memory"] = {
                    "data": data,
                    "minutes": args.minutes,
                    "rss_before_mib": round(before),
                    "rss_after_mib": round(samples[-1][1]) if samples else None,
                    "rss_peak_mib": round(max(s[1] for s in samples)) if samples else None,
                    "rounds": len(samples),
                    # one (second, MiB) sample per minute, to show whether growth levels off
                    "per_minute": [
                        s
                        for i, s in enumerate(samples)
                        if i == 0 or s[0] // 60 != samples[i - 1][0] // 60
                    ],
                }
                print("memory", json.dumps(out["memory"]), flush=True)
            await browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits,fashion-mnist", help="comma-separated data sets")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--sessions", type=int, default=8, help="browser pages (at most 8)")
    ap.add_argument("--moves", type=int, default=6, help="slider moves per page per scenario")
    ap.add_argument("--minutes", type=float, default=0, help="then (b) for this long: memory")
    ap.add_argument("--quick", action="store_true", help="digits, 4 pages, 2 moves (smoke)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.data, args.sessions, args.moves = "digits", 4, 2
    args.sessions = min(args.sessions, len(DISTINCT_BITS))
    out = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
