"""A timing tap between browser pages and a Streamlit server, in its own process.

Each page gets its own port on 127.0.0.1 that forwards bytes both ways to the server, so
every record says which page it belongs to. The tap records, with ``time.perf_counter()``
(CLOCK_MONOTONIC, the same clock in every process):

- ``("up", page, t)``: bytes from the page reached the server's side (a key press's rerun
  request, once its websocket frame leaves the browser);
- ``("down", page, t, bytes)``: bytes from the server that carry ``label`` (Streamlit's
  frames are uncompressed protobuf, in which a metric's label and value are plain UTF-8),
  as they leave for the page.

Why a tap: Playwright's ``framereceived`` event is emitted by the page's renderer when its
main thread takes the frame, so a renderer busy drawing the previous frame (or starved by 7
other renderers) delays it; it is not the server's time. The tap runs at normal priority and
only copies bytes.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import socket
import threading
import time

WINDOW = 256  # bytes kept after the label: the metric's value follows it in the same message


def _serve(target: int, sockets: list[socket.socket], label: bytes, events) -> None:
    async def pipe(page, reader, writer, up: bool) -> None:
        tail = b""
        try:
            while chunk := await reader.read(65536):
                now = time.perf_counter()
                if up:
                    events.put(("up", page, now))
                else:
                    seen = tail + chunk  # a label split over two reads is still found
                    at = seen.find(label)
                    while at >= 0:
                        events.put(("down", page, now, seen[at : at + len(label) + WINDOW]))
                        at = seen.find(label, at + 1)
                    tail = seen[-len(label) :]
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        async def handle(page, client_r, client_w) -> None:
            try:
                server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(
                pipe(page, client_r, server_w, True), pipe(page, server_r, client_w, False)
            )

        servers = []
        for page, sock in enumerate(sockets):
            servers.append(
                await asyncio.start_server(lambda r, w, p=page: handle(p, r, w), sock=sock)
            )
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


class Tap:
    """``Tap(server_port, pages, label)``: ``url(i)`` for page i; ``up[i]``/``down[i]`` lists.

    Example:
        >>> with Tap(8501, 8, b"Non-zero parameters") as tap:
        ...     page.goto(tap.url(0))
        ...     tap.down[0]  # [(t, bytes), ...]
    """

    def __init__(self, target: int, pages: int, label: bytes):
        self.sockets = []
        for _ in range(pages):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            self.sockets.append(s)
        self.ports = [s.getsockname()[1] for s in self.sockets]
        self.up: list[list[float]] = [[] for _ in range(pages)]
        self.down: list[list[tuple[float, bytes]]] = [[] for _ in range(pages)]
        ctx = mp.get_context("fork")
        self.events = ctx.Queue()
        self.proc = ctx.Process(
            target=_serve, args=(target, self.sockets, label, self.events), daemon=True
        )
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)

    def url(self, page: int) -> str:
        return f"http://127.0.0.1:{self.ports[page]}"

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event[0] == "up":
                self.up[event[1]].append(event[2])
            else:
                self.down[event[1]].append((event[2], event[3]))

    def __enter__(self) -> Tap:
        self.proc.start()
        self._reader.start()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.join(timeout=5)
        self._stop.set()
        self._reader.join(timeout=5)
        for s in self.sockets:
            s.close()
