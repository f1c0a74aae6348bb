"""A class at once: 8 real Chromium pages moving sliders against one `streamlit run` server.

For each data set, prints a table for 1 session alone and for
  (a) every session following the same settings (a class following the teacher), and
  (b) every session on its own settings (distinct bit widths):
p50/p95 of three times per slider move:
  - "server": from the page's rerun request reaching the server's side to the frame that
    carries the new "Non-zero parameters" value leaving it (the server's part only);
  - "answer": from the key press to that frame leaving the server (adds the page's own
    handling of the key press before it sends the request);
  - "painted": from the key press until the page shows the value (adds the browser's
    rendering of everything the run sent);
the server's CPU seconds per session-move and the browsers' (all Chromium processes) from
/proc/<pid>/stat, and the server's RSS before and after. ``--minutes M`` then keeps (b)
going for M minutes, walking the sessions over many settings, and prints the RSS growth.

"server" and "answer" are read by a tap (``bench/tap.py``): each page talks to the server
through its own forwarding port in a separate normal-priority process, which timestamps the
bytes as they pass. Playwright's own websocket event is emitted by the page's renderer when
its main thread gets to the frame, so a busy renderer delays it; it is kept in the JSON as
"frame_in_page".

``--nice renderers`` (default) runs Chromium's renderer processes (the pages' JavaScript,
layout and painting) under nice 19 and its browser, network and GPU processes at normal
priority: in a class every student's page renders on their own laptop, so on one machine the
server should get the CPU before the 8 renderers, while the browser process still passes
input and frames on at once. ``--nice all`` nices every Chromium process (the earlier
default), ``--nice none`` none. The mode is printed with the figures.

Run: flock /tmp/bench.lock python bench/bench_class.py [--quick] [--minutes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from tap import Tap  # noqa: E402

WAIT_MS = 300_000
LABEL = "Non-zero parameters"  # the metric whose new value ends a move
SAME_BITS = 5  # (a): everybody at 5 bits
DISTINCT_BITS = (2, 3, 4, 6, 7, 8, 12, 16)  # (b): one bit width per session
ROWS = {"one": (True, True), "same": (False, True), "distinct": (False, False)}  # (alone, same)


def rss_mib(pid: int) -> float:
    """Resident memory of the server process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc; 0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        found.update(kids)
        todo += kids
    return found


def browser_cpu() -> dict[int, float]:
    """CPU seconds so far of every Chromium process this script started (pid -> seconds)."""
    return {pid: cpu_seconds(pid) for pid in chromium_processes()}


def browser_cpu_delta(before: dict[int, float]) -> float:
    """Chromium CPU seconds since ``before`` (processes started since then count from 0)."""
    now = browser_cpu()
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())


def chromium_processes() -> dict[int, str]:
    """Every Chromium process this script started: pid -> its type ("browser", "renderer",
    "gpu-process", "utility", "zygote"; child processes rewrite their command line into one
    space-separated string)."""
    out = {}
    for pid in descendants(os.getpid()):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if words and b"chrom" in words[0]:
            kinds = [w[len(b"--type=") :] for w in words if w.startswith(b"--type=")]
            out[pid] = kinds[0].decode() if kinds else "browser"
    return out


def nice_renderers() -> None:
    """Renderer processes to nice 19 (new ones start at the zygote's priority, 0)."""
    for pid, kind in chromium_processes().items():
        if kind == "renderer":
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 19)
            except OSError:  # gone already
                pass


def nice_chromium() -> str:
    """A tiny executable that runs Chromium under ``nice -n 19`` (Playwright launches it)."""
    path = Path(tempfile.mkdtemp(prefix="bench-class-")) / "chromium-nice"
    path.write_text(f'#!/bin/sh\nexec nice -n 19 "{CHROMIUM}" "$@"\n')
    path.chmod(0o755)
    return str(path)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def settled(page) -> None:
    from playwright.async_api import expect

    value = page.get_by_test_id("stMetric").filter(has_text=LABEL)
    await expect(value.get_by_test_id("stMetricValue")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)


def listen(page) -> None:
    """Keep (arrival time, payload) of every websocket frame the page receives, and the
    arrival times of the server's "script finished" messages (``page.finished``).

    A fragment's rerun does not show Streamlit's status widget, so the end of a run is read
    from the websocket: a ``ForwardMsg`` whose type is ``script_finished``.
    """
    page.frames_in, page.finished = [], []

    def on_frame(payload) -> None:
        arrived = time.perf_counter()
        page.frames_in.append((arrived, payload))
        if isinstance(payload, bytes) and len(payload) < 128 and run_finished(payload):
            page.finished.append(arrived)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))


def run_finished(payload: bytes) -> bool:
    """Whether a frame is the message that ends a (whole or fragment) run."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    try:
        msg = ForwardMsg.FromString(payload)
    except Exception:  # not a ForwardMsg: not the end of a run
        return False
    early = ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN
    return msg.WhichOneof("type") == "script_finished" and msg.script_finished != early


async def run_done(page, start: float) -> None:
    """Wait until a run that started after ``start`` has finished (messages and all)."""
    deadline = time.perf_counter() + WAIT_MS / 1000
    while not any(t > start for t in page.finished):
        if time.perf_counter() > deadline:
            raise TimeoutError("no script_finished message after the key press")
        await asyncio.sleep(0.02)


def tapped(page, start: float, text: str) -> tuple[float, float]:
    """(server, answer) seconds for the move that started at ``start``, from the tap: the
    page's first bytes after ``start`` reaching the server's side, and the first server
    bytes after them that carry the metric with ``text``; (nan, nan) when not found."""
    tap, i = page.tap, page.tap_index
    if tap is None:
        return float("nan"), float("nan")
    up = next((t for t in list(tap.up[i]) if t > start), None)
    needle = text.encode()
    for t, data in list(tap.down[i]):
        if up is not None and t > up and needle in data:
            return t - up, t - start
    return float("nan"), float("nan")


def answered(page, start: float, text: str) -> float:
    """Seconds from ``start`` to the first frame after it that carries ``text``, as the
    page's renderer saw it (Playwright's event: late when the renderer is busy).

    Streamlit's frames are protobuf messages, in which a metric's value is a plain UTF-8
    string, so the new number is found as bytes in the frame that delivers it.
    """
    needle = text.encode()
    for arrived, payload in page.frames_in:
        if arrived < start:
            continue
        data = payload if isinstance(payload, bytes) else payload.encode()
        if needle in data:
            return arrived - start
    return float("nan")


async def move(page, key: str) -> dict[str, float]:
    """Press ``key`` on a slider; seconds (server, answer, painted, frame_in_page) of the new
    non-zero count (see the module's docstring)."""
    from playwright.async_api import expect

    box = page.get_by_test_id("stMetric").filter(has_text=LABEL)
    value = box.get_by_test_id("stMetricValue")
    before = await value.inner_text()
    await page.get_by_role("slider").first.focus()
    page.frames_in.clear()
    page.finished.clear()
    start = time.perf_counter()
    await page.keyboard.press(key)
    await expect(value).not_to_have_text(before, timeout=WAIT_MS)
    painted = time.perf_counter() - start
    text = await value.inner_text()
    frame = answered(page, start, text)
    await run_done(page, start)
    await settled(page)
    server, answer = tapped(page, start, text)
    return {"server": server, "answer": answer, "painted": painted, "frame_in_page": frame}


async def press(page, slider, key: str, timeout_ms: float = WAIT_MS) -> None:
    """Press ``key`` on ``slider`` and wait for the run it starts: the link changes (the
    non-zero count need not: at low bits the zero level can already hold what a step prunes).
    Raises Playwright's TimeoutError where nothing changes."""
    before = page.url
    await slider.focus()
    await page.keyboard.press(key)
    await page.wait_for_url(lambda url: url != before, timeout=timeout_ms)


async def new_bits(page) -> None:
    """Another bit width: one step down, or up where the slider ends (a press there
    changes nothing and starts no run)."""
    from playwright.async_api import TimeoutError as NoChange

    slider = page.get_by_role("slider").nth(1)
    try:
        await press(page, slider, "ArrowLeft", timeout_ms=3000)
    except NoChange:
        await press(page, slider, "ArrowRight")
    await settled(page)


async def open_pages(browser, url: str, queries: list[str], tap=None, nice=None) -> list:
    """One page per query; page i talks to the server through ``tap``'s port i (when given).
    With ``nice == "renderers"`` the new pages' renderers are then put under nice 19."""
    pages = []
    for i, query in enumerate(queries):
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        listen(page)
        page.tap, page.tap_index = tap, i
        await page.goto(f"{tap.url(i) if tap else url}/?{query}")
        pages.append(page)
    if nice == "renderers":
        nice_renderers()
    await asyncio.gather(*(settled(p) for p in pages))
    return pages


async def round_of_moves(pages, moves: int, key: str = "ArrowRight") -> list[dict]:
    """Every page presses ``key`` at the same moment, ``moves`` times; all their times."""
    times = []
    for _ in range(moves):
        times += await asyncio.gather(*(move(p, key) for p in pages))
    return times


async def measured_round(pages, moves: int, server: int) -> dict:
    """A round of moves with its times and the CPU the server and the browsers spent on it."""
    server_before, browsers_before = cpu_seconds(server), browser_cpu()
    times = await round_of_moves(pages, moves)
    n = len(times)
    return {
        **{name: summary([t[name] for t in times]) for name in TIMES},
        "server_cpu_per_move_s": round((cpu_seconds(server) - server_before) / n, 3),
        "browser_cpu_per_move_s": round(browser_cpu_delta(browsers_before) / n, 3),
    }


async def close(pages) -> None:
    for p in pages:
        await p.context.close()


TIMES = ("server", "answer", "painted", "frame_in_page")


async def scenario(
    browser, url, base: str, sessions: int, moves: int, same: bool, pid, tap=None, nice=None
) -> dict:
    bits = [SAME_BITS] * sessions if same else DISTINCT_BITS[:sessions]
    queries = [f"{base}&bits={b}&prune_rate=0.3" for b in bits]
    pages = await open_pages(browser, url, queries, tap, nice)
    try:
        before = rss_mib(pid)
        row = await measured_round(pages, moves, pid)
        return {
            "sessions": sessions,
            **row,
            "rss_before_mib": round(before),
            "rss_after_mib": round(rss_mib(pid)),
        }
    finally:
        await close(pages)


async def walk_step(page, key: str) -> None:
    """One pruning step for the memory walk."""
    await press(page, page.get_by_role("slider").first, key)
    await settled(page)


async def wander(browser, url, base: str, sessions: int, minutes: float, pid: int, nice) -> list:
    """(b) for ``minutes``: pruning up and down, bits stepping; RSS sampled each round."""
    bits = DISTINCT_BITS[:sessions]
    queries = [f"{base}&bits={b}&prune_rate=0" for b in bits]
    pages = await open_pages(browser, url, queries, nice=nice)
    samples, end, step = [], time.monotonic() + 60 * minutes, 0
    try:
        while time.monotonic() < end:
            key = "ArrowRight" if (step // 19) % 2 == 0 else "ArrowLeft"  # 0 % .. 95 % and back
            await asyncio.gather(*(walk_step(p, key) for p in pages))
            if step % 19 == 18:  # each sweep over the rates, every session moves its bits
                await asyncio.gather(*(new_bits(p) for p in pages))
            samples.append((round(time.monotonic() - end + 60 * minutes), rss_mib(pid)))
            step += 1
    finally:
        await close(pages)
    return samples


def summary(times: list[float]) -> dict:
    missing = sum(t != t for t in times)  # nan: no frame carried the value (should not happen)
    times = [t for t in times if t == t] or [float("nan")]
    return {
        "n": len(times),
        "missing": missing,
        "p50_s": round(statistics.median(times), 2),
        "p95_s": round(percentile(times, 0.95), 2),
        "max_s": round(max(times), 2),
    }


async def run(args) -> dict:
    from playwright.async_api import async_playwright

    mode = MODES[args.nice]
    out = {"sessions": args.sessions, "moves": args.moves, "model": args.model, "data": {}}
    out["browsers"] = mode
    print(f"browsers: {mode}; {args.moves} moves per page per row", flush=True)
    log = ROOT / "test-artifacts" / "bench-class-server.log"
    executable = nice_chromium() if args.nice == "all" else CHROMIUM
    with (
        streamlit_server(log) as (url, proc),
        Tap(port_of(url), args.sessions, LABEL.encode()) as tap,
    ):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            for data in args.data.split(","):
                base = f"dataset={data}&model={args.model}"
                # One page first: loads the baseline, so the timings are about compressing.
                await close(await open_pages(browser, url, [base]))
                run_row = partial(
                    scenario, browser, url, base, pid=proc.pid, tap=tap, nice=args.nice
                )
                rows = {}
                for name in args.rows.split(","):
                    one, same = ROWS[name]
                    rows[name] = await run_row(1 if one else args.sessions, args.moves, same)
                out["data"][data] = rows
                print(table(data, rows, mode), flush=True)
                print(data, json.dumps(rows), flush=True)
            if args.minutes:
                data = args.data.split(",")[-1]
                base = f"dataset={data}&model={args.model}"
                before = rss_mib(proc.pid)
                samples = await wander(
                    browser, url, base, args.sessions, args.minutes, proc.pid, args.nice
                )
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


MODES = {
    "renderers": "Chromium's renderers under nice 19, its other processes at normal priority",
    "all": "every Chromium process under nice 19",
    "none": "Chromium at normal priority",
}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


LABELS = {
    "one": "1 session",
    "same": "(a) {n} sessions, same settings",
    "distinct": "(b) {n} sessions, distinct settings",
}


def table(data: str, rows: dict, mode: str) -> str:
    """The figures of one data set as a Markdown table."""
    lines = [
        f"{data} ({mode}); times from the key press, CPU per session-move",
        "",
        "| sessions | server p50 / p95 | answer p50 / p95 | painted p50 / p95 | server CPU "
        "| browser CPU | server RSS before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        times = "".join(f"| {r[k]['p50_s']:.2f} s / {r[k]['p95_s']:.2f} s " for k in TIMES[:3])
        lines.append(
            f"| {LABELS[name].format(n=r['sessions'])} "
            + times
            + f"| {r['server_cpu_per_move_s']:.3f} s | {r['browser_cpu_per_move_s']:.3f} s "
            f"| {r['rss_before_mib']:,} -> {r['rss_after_mib']:,} MiB |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits,fashion-mnist", help="comma-separated data sets")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--sessions", type=int, default=8, help="browser pages (at most 8)")
    ap.add_argument("--rows", default="one,same,distinct", help="which rows: one, same, distinct")
    ap.add_argument("--moves", type=int, default=6, help="slider moves per page per scenario")
    ap.add_argument("--minutes", type=float, default=0, help="then (b) for this long: memory")
    ap.add_argument("--quick", action="store_true", help="digits, 4 pages, 2 moves (smoke)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--nice",
        choices=list(MODES),
        default="renderers",
        help="which Chromium processes run under nice 19 (default: the renderers only)",
    )
    args = ap.parse_args()
    if unknown := set(args.rows.split(",")) - ROWS.keys():
        ap.error(f"unknown rows {sorted(unknown)}: choose from {', '.join(ROWS)}")
    if args.quick:
        args.data, args.sessions, args.moves = "digits", 4, 2
    args.sessions = min(args.sessions, len(DISTINCT_BITS))
    out = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
