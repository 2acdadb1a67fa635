"""A real TCP (or unix-socket) server that accepts connections and answers too slowly.

``DripServer`` runs an asyncio server in a thread on 127.0.0.1 (or a socket
path). Each connection gets ``payload`` one byte every ``interval`` seconds
(``payload=b""``: nothing at all, a server that accepts and never answers),
whatever the client sends. It stops by itself after ``lifetime`` seconds,
closing every connection, so a test that hangs on it cannot hang for ever;
leaving the ``with`` block stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from types import TracebackType

# "+PONG" without its CRLF, then filler: a RESP reply line that never ends.
RESP_DRIP = b"+PONG" + b"x" * 10_000
# A TLS handshake record header announcing 16 KB, then its body byte by byte:
# the client's handshake keeps reading and never completes.
TLS_DRIP = b"\x16\x03\x03\x40\x00" + b"\x02" * 16_000


class DripServer:
    def __init__(
        self,
        payload: bytes = RESP_DRIP,
        *,
        interval: float = 1.0,
        lifetime: float = 60.0,
        unix_path: Path | None = None,
    ) -> None:
        self.payload = payload
        self.interval = interval
        self.lifetime = lifetime
        self.unix_path = unix_path
        self.port = 0
        self.connections = 0
        self.talking = 0  # connections whose client has sent something (now awaits a reply)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-drip-server", daemon=True)

    def url(self, scheme: str = "redis", userinfo: str = "") -> str:
        if self.unix_path is not None:
            return f"unix://{userinfo}{self.unix_path}"
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def __enter__(self) -> DripServer:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"drip server did not start: {self._failure!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stopping = self._stopping
        if stopping is not None:
            self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by __enter__ when it happens at start
            self._failure = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _discard(self, reader: asyncio.StreamReader) -> None:
        """Read and drop whatever the client sends (so its writes never block)."""
        try:
            if await reader.read(4096):
                self.talking += 1
                while await reader.read(4096):
                    pass
        except (ConnectionError, OSError):
            pass

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        writers: list[asyncio.StreamWriter] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writers.append(writer)
            drain = asyncio.ensure_future(self._discard(reader))
            try:
                for byte in self.payload:
                    # Not a wait: the server's pace, one byte per interval.
                    await asyncio.sleep(self.interval)
                    writer.write(bytes([byte]))
                    await writer.drain()
                # Not a wait: hold the connection open, silent, until stopped.
                await asyncio.sleep(self.lifetime)
            except (ConnectionError, OSError):
                pass
            except asyncio.CancelledError:
                pass  # the server is stopping: end quietly, not as a failed callback
            finally:
                drain.cancel()

        if self.unix_path is not None:
            server = await asyncio.start_unix_server(handle, path=str(self.unix_path))
        else:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(asyncio.TimeoutError):  # then it stops by itself
            await asyncio.wait_for(self._stopping.wait(), self.lifetime)
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["RESP_DRIP", "TLS_DRIP", "DripServer"]
