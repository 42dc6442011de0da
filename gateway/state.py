"""Restart state: what a restarted gateway needs to reattach its live streams (issue 6, PROTOCOL.md 6).

When the gateway dies, Zoom sees signaling lost, sends ``*.rtms_interrupted`` and waits about 60 s
for a reconnect to the *original* ``server_urls`` -- which the interrupted payload does not carry.
So every accepted ``rtms_started`` (and failover) is written here, and removed when the stream ends.
A restarted gateway loads the file and, when Zoom reports the interruption, reconnects from it.

The file holds stream targets only (ids, URLs, product, when started): never credentials; the
handshake signature is recomputed from the configured secret. Writes are atomic (temporary file,
fsync, rename, fsync of the directory), mode 0600. A corrupt or unreadable file is logged and
treated as empty: it never stops a gateway from starting.

Format (JSON)::

    {"version": 1, "streams": {"<stream_id>": {"product": "meeting", "instance_id": "...",
     "instance_key": "meeting_uuid", "stream_id": "...", "server_urls": "wss://...", "started_at": 1.7e9}}}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from .protocol import Product, WebhookEvent, WebhookKind

log = logging.getLogger("gateway.state")

STATE_VERSION = 1
#: files larger than this are not read (a stream entry is a few hundred bytes).
MAX_FILE_BYTES = 16 * 1024 * 1024
_FIELDS = ("product", "instance_id", "instance_key", "stream_id", "server_urls")


@dataclass(frozen=True, slots=True)
class SavedStream:
    """One live stream's target: enough to redo the signaling handshake after a restart."""

    product: str
    instance_id: str
    instance_key: str
    stream_id: str
    server_urls: str
    started_at: float

    @classmethod
    def from_webhook(cls, event: WebhookEvent, server_urls: str | None = None, started_at: float | None = None) -> SavedStream:
        """From an accepted ``rtms_started`` (``server_urls`` overrides for a failover)."""
        product = event.product.value if event.product else ""
        return cls(
            product=product,
            instance_id=event.instance_id or "",
            instance_key=event.instance_key or (event.product.id_key if event.product else ""),
            stream_id=event.stream_id or "",
            server_urls=server_urls if server_urls is not None else event.server_urls or "",
            started_at=time.time() if started_at is None else started_at,
        )

    def to_event(self) -> WebhookEvent:
        """A synthetic ``rtms_started`` carrying the stored target (what sessions and sinks are built from)."""
        product = Product(self.product)
        return WebhookEvent(
            event=product.event("started"),
            kind=WebhookKind.STARTED,
            event_ts=int(self.started_at * 1000),
            product=product,
            instance_id=self.instance_id,
            instance_key=self.instance_key,
            stream_id=self.stream_id,
            server_urls=self.server_urls,
            payload={"restored": True},
        )

    @classmethod
    def parse(cls, doc: Any) -> SavedStream:
        """Validate one stored entry (``ValueError`` names what is wrong)."""
        if not isinstance(doc, dict):
            raise ValueError("entry is not an object")
        for name in _FIELDS:
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise ValueError(f"{name} missing or not a non-empty string")
        Product(doc["product"])  # ValueError for an unknown product
        started = doc.get("started_at")
        if not isinstance(started, (int, float)) or isinstance(started, bool):
            raise ValueError("started_at missing or not a number")
        return cls(*(doc[name] for name in _FIELDS), started_at=float(started))


class StreamStateStore:
    """The durable map ``stream_id -> SavedStream`` behind ``[server] state_file``.

    ``put``/``remove`` change memory; on a running loop a write-behind task serialises the map there
    and writes it in a worker thread (a burst of starts costs one fsync, and the loop never waits
    for the disk: ~28 ms for 2000 streams on ext4); without a running loop they write at once.
    ``flush`` writes now; ``aclose`` waits for the write-behind task, then flushes. A write never
    replaces a newer one (generation numbers). At most ``max_entries`` are kept (oldest dropped, loudly).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_entries: int = 10_000) -> None:
        self.path = Path(path)
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, SavedStream] = OrderedDict()
        self._generation = 0  # bumped by every change
        self._written = -1  # generation on disk
        self._io_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.write_errors = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._entries

    def entries(self) -> dict[str, SavedStream]:
        return dict(self._entries)

    def load(self) -> dict[str, SavedStream]:
        """Read the file into memory and return its streams; anything unreadable is logged and skipped."""
        self._entries.clear()
        try:
            size = self.path.stat().st_size
            if size > MAX_FILE_BYTES:
                log.error("state file %s is %d bytes (limit %d): ignored", self.path, size, MAX_FILE_BYTES)
                return {}
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("state file %s unreadable (%s): starting without restored streams", self.path, exc)
            return {}
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            log.error("state file %s is corrupt (%s): ignored", self.path, exc)
            return {}
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION or not isinstance(doc.get("streams"), dict):
            log.error("state file %s has an unknown layout (want version %d): ignored", self.path, STATE_VERSION)
            return {}
        for key, value in doc["streams"].items():
            try:
                saved = SavedStream.parse(value)
                if saved.stream_id != key:
                    raise ValueError("key differs from stream_id")
            except ValueError as exc:
                log.error("state file %s: entry %.64r skipped: %s", self.path, key, exc)
                continue
            self._entries[key] = saved
        while len(self._entries) > self.max_entries:
            dropped, _ = self._entries.popitem(last=False)
            log.error("state file %s: more than %d streams; %s dropped", self.path, self.max_entries, dropped)
        return dict(self._entries)

    def put(self, saved: SavedStream) -> None:
        self._entries[saved.stream_id] = saved
        self._entries.move_to_end(saved.stream_id)
        while len(self._entries) > self.max_entries:
            dropped, _ = self._entries.popitem(last=False)
            log.error("state file %s full (%d streams): %s will not survive a restart", self.path, self.max_entries, dropped)
        self._schedule()

    def remove(self, stream_id: str) -> None:
        if self._entries.pop(stream_id, None) is not None:
            self._schedule()

    def _schedule(self) -> None:
        self._generation += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._write_behind(), name="state-file-writer")

    async def _write_behind(self) -> None:
        while self._written < self._generation:
            generation, body = self._snapshot()
            if not await asyncio.to_thread(self._write, generation, body):
                return  # logged; the next change tries again

    def _snapshot(self) -> tuple[int, bytes]:
        return self._generation, orjson.dumps({"version": STATE_VERSION, "streams": {k: asdict(v) for k, v in self._entries.items()}})

    def flush(self) -> bool:
        """Write the file now (atomically, 0600); a failure is logged and counted, never raised."""
        return self._write(*self._snapshot())

    async def aclose(self) -> None:
        """Let a pending write-behind finish, then write whatever is newer."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._written < self._generation:
            self.flush()

    def _write(self, generation: int, body: bytes) -> bool:
        with self._io_lock:
            if generation <= self._written and self.path.exists():
                return True  # this state (or a newer one) is already on disk
            return self._write_locked(generation, body)

    def _write_locked(self, generation: int, body: bytes) -> bool:
        directory = self.path.parent
        tmp = ""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)  # mode 0600
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            tmp = ""
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self.write_errors += 1
            log.error("state file %s not written (%s): live streams may not survive a restart", self.path, exc)
            return False
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self._written = generation
        self.writes += 1
        return True
