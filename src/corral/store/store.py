"""The revisioned object store: an in-memory index over a durable SQLite (WAL) log.

Design
------
* **One global counter.** Every change (create, update, delete) takes the next
  ``resourceVersion`` (an integer) and produces exactly one watch event, so the events
  in the history are numbered without gaps.
* **Memory first, durable before acknowledged.** A write is checked and applied to the
  in-memory index synchronously on the event loop (that is what makes check-and-set
  atomic without locks), queued for the writer, and returned as a :class:`Write` whose
  ``committed`` future resolves once SQLite has committed it. The API server only
  answers after that, so an acknowledged write survives ``kill -9``. Watch events are
  published only after their commit: a watcher never sees a change that could vanish.
* **Group commit.** Writes made during one turn of the event loop form a batch that is
  committed in one transaction (``executemany`` per run of same-kind operations) at the
  start of the next turn, then the batch's future resolves. Throughput grows with
  concurrency instead of paying one commit per write. With ``synchronous=NORMAL`` (the
  default) SQLite's WAL commit is a ``write()`` without ``fsync`` — durable against
  ``kill -9`` of the server, not against power loss — and cheap enough to run on the
  loop thread, which avoids handing every batch to another thread through the GIL.
  With ``synchronous=FULL`` (power-loss durability) a writer thread does the commits
  and their ``fsync`` so the loop keeps serving meanwhile.
* **Objects as bytes.** Each entry keeps its compact JSON encoding (``raw``), made once
  per write, and decodes the dict lazily. Lists and watch events are assembled from
  those bytes, and a restart only reads bytes back — no JSON parsing on start (SQLite
  checks each row is a JSON object; a damaged file is refused with :class:`StartupError`).
* **Watch history.** A ring of the last ``history`` events; a watch from an older
  version gets :class:`ExpiredError` (the server turns it into 410 Gone). After a restart the
  history starts empty at the recovered version, as after an etcd compaction.

* **Object size.** An object whose JSON is over :data:`MAX_OBJECT_BYTES` (1.5 MiB, etcd's
  default request limit, which bounds a Kubernetes object) is refused with
  :class:`ObjectTooLargeError` before anything changes: the check is on the bytes that
  would be stored, so it holds however the object was made (a patch, YAML aliases).

If a commit fails (disk full, I/O error) the store stops accepting writes and fails
every pending one: memory may then be ahead of disk, and only a restart (which rebuilds
from SQLite) makes them agree again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from corral.api.registry import Obj
from corral.util import fastjson
from corral.util.startup import StartupError

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """Base of the store's errors."""


class NotFoundError(StoreError):
    pass


class AlreadyExistsError(StoreError):
    pass


class ConflictError(StoreError):
    """The object changed since the ``resourceVersion`` the caller based its write on."""


class ExpiredError(StoreError):
    """The requested version is older than the kept watch history."""


class ObjectTooLargeError(StoreError):
    """An object whose encoding is over the size limit; nothing was stored."""


class UnavailableError(StoreError):
    """The store could not persist writes and refuses new ones."""


MAX_OBJECT_BYTES = 1536 * 1024
"""Largest stored object (its compact JSON), as etcd's 1.5 MiB request limit bounds Kubernetes objects."""


def encode(obj: Obj) -> bytes:
    """The compact JSON bytes an object is stored and served as (orjson; see :mod:`corral.util.fastjson`)."""
    return fastjson.dumps(obj)


def _first_damaged_row(path: Path) -> tuple[str, str, str] | None:
    """``(resource, namespace, name)`` of the first row that is not a JSON object with an integer version."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        row = conn.execute(
            "SELECT resource, namespace, name FROM objects WHERE typeof(rv) != 'integer' "
            "OR NOT json_valid(CAST(data AS TEXT)) OR json_type(CAST(data AS TEXT)) != 'object' LIMIT 1"
        ).fetchone()
        return (str(row[0]), str(row[1]), str(row[2])) if row else None
    finally:
        conn.close()


class Entry:
    """One stored object: its bytes, its version, and the dict decoded on first use.

    Entries are immutable: treat :attr:`obj` as read-only; :meth:`copy` gives a mutable dict.
    """

    __slots__ = ("_obj", "name", "namespace", "raw", "resource", "rv")

    def __init__(self, resource: str, namespace: str, name: str, rv: int, raw: bytes,  # noqa: PLR0917
                 obj: Obj | None = None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.rv = rv
        self.raw = raw
        self._obj = obj

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = fastjson.loads(self.raw)
        return self._obj

    def copy(self) -> Obj:
        result: Obj = fastjson.loads(self.raw)
        return result


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. ``line`` is the encoded watch line ``{"type":..,"object":..}\\n``, made once."""

    rv: int
    type: EventType
    entry: Entry
    previous: Entry | None
    line: bytes


class Write:
    """A write applied in memory; await :attr:`committed` before acknowledging it."""

    __slots__ = ("committed", "entry")

    def __init__(self, entry: Entry, committed: asyncio.Future[None]) -> None:
        self.entry = entry
        self.committed = committed

    async def wait(self) -> Entry:
        await asyncio.shield(self.committed)
        return self.entry


class _Batch:
    __slots__ = ("future", "last_rv", "ops")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.ops: list[tuple[str, str, str, int, bytes | None]] = []
        self.last_rv = 0


Deliver = Callable[[list["WatchEvent"], dict[Any, bytes]], bool]
"""A watcher's push callback: ``deliver(events, shared) -> bool``; see :class:`Watcher`."""


class Watcher:
    """A cursor over the event history, woken on every commit.

    **Pull** (default): the owner waits (:meth:`wait`) and takes the events after its
    cursor (:meth:`take`). **Push**: with ``deliver``, a watcher whose cursor is caught up
    is handed each commit's events synchronously, on the loop, as the commit is published:
    ``deliver(events, shared)`` writes them out (it must not block or await) and returns
    ``True``, and the store moves the cursor past them; it returns ``False`` when it cannot
    take them now (say its socket's buffer is full), and the watcher is woken instead, to
    catch up by pulling — so a slow watcher costs a bounded buffer, then falls back to the
    history (and to :class:`ExpiredError` once that has moved past it). ``shared`` is one
    dict per commit, shared by every push watcher, where a watcher may keep bytes it built
    (a filtered, encoded chunk) for others with the same filter: each event is then encoded
    once and each distinct chunk built once, however many watchers there are.
"""

    def __init__(self, store: Store, after_rv: int, deliver: Deliver | None = None) -> None:
        self._store = store
        self.cursor = after_rv
        self._wakeup = asyncio.Event()
        self.closed = False
        self.deliver = deliver

    def _notify(self) -> None:
        self._wakeup.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for new committed events; ``False`` on timeout."""
        if self.cursor < self._store.committed_rv or self.closed:
            return True
        self._wakeup.clear()
        if self.cursor < self._store.committed_rv:
            return True
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def take(self) -> list[WatchEvent]:
        """Committed events after the cursor (raises :class:`ExpiredError` if the watcher fell behind)."""
        events = self._store.events_since(self.cursor)
        if events:
            self.cursor = events[-1].rv
        return events

    def close(self) -> None:
        self.closed = True
        self._store._watchers.discard(self)
        self._wakeup.set()


class Store:
    """Objects by ``(resource, namespace, name)``; see the module docstring for the design.

    ``resource`` is a string that names a resource uniquely (the API server uses
    ``plural.group``); ``namespace`` is ``""`` for cluster-scoped objects. ``path=None``
    keeps everything in memory (tests of other parts only).
    """

    def __init__(self, path: Path | None, *, history: int = 20_000, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._history_size = max(16, history)
        self._synchronous = synchronous
        self._objects: dict[str, dict[str, dict[str, Entry]]] = {}
        self._ring: list[WatchEvent | None] = [None] * self._history_size
        self._first_rv = 1  # oldest rv the history can still serve events after (first_rv - 1)
        self.rv = 0  # last assigned
        self.committed_rv = 0  # last durable and published
        self._watchers: set[Watcher] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: _Batch | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[_Batch] = []
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._stopping = False
        self._failed: BaseException | None = None
        self._last_future: asyncio.Future[None] | None = None
        self.batches = 0
        self.batched_ops = 0

    # ---- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Load every object from SQLite and start the writer."""
        self._loop = asyncio.get_running_loop()
        if self._path is not None:
            await asyncio.to_thread(self._load)
            if self._synchronous.upper() in ("FULL", "EXTRA"):
                self._thread = threading.Thread(target=self._writer, name="corral-store-writer", daemon=True)
                self._thread.start()
            else:
                self._conn = self._connect()
        self.committed_rv = self.rv
        self._first_rv = self.rv + 1

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._configure(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")

    def _load(self) -> None:
        """Read every row back (as bytes), or raise :class:`StartupError` naming what is wrong.

        A file that is not a SQLite database, a SQLite database of another program, and a
        row that is not a JSON object are refused before anything is written, so the file
        stays as it was for the user to inspect. Rows are checked by SQLite's
        ``json_valid`` (C) on a second, read-only connection in another thread while this one
        reads them (sqlite3 releases the GIL while it steps), so on two or more cores the
        check costs little start-up time — and still no JSON parsing in Python on start.
        """
        assert self._path is not None
        path = self._path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StartupError(path, f"cannot open the database: {error}") from None
        try:
            self._check_schema(conn, path)  # before anything (even WAL mode) writes to the file
            self._configure(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS objects (resource TEXT NOT NULL, namespace TEXT NOT NULL, "
                "name TEXT NOT NULL, rv INTEGER NOT NULL, data BLOB NOT NULL, "
                "PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
            if row is not None and not isinstance(row[0], int):
                raise StartupError(path, f"meta row 'rv' holds {row[0]!r}, not a resourceVersion")
            rv = int(row[0]) if row else 0
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="corral-store-check") as checker:
                damaged = checker.submit(_first_damaged_row, path)
                try:
                    self._read_rows(conn, rv)
                    unreadable: Exception | None = None
                except (TypeError, ValueError) as error:  # a row the checker names (e.g. rv not an integer)
                    unreadable = error
                bad = damaged.result()
            if bad is None and unreadable is not None:
                raise StartupError(path, f"a stored row cannot be read: {unreadable}")
            if bad is not None:
                self._objects.clear()
                where = "/".join(part for part in bad if part)
                raise StartupError(path, f"the stored object {where} is damaged (not a JSON object with an "
                                         "integer resourceVersion); repair or delete that row with sqlite3")
        except sqlite3.DatabaseError as error:
            self._objects.clear()
            raise StartupError(path, f"not a usable corral database: {error}") from None
        finally:
            conn.close()

    def _read_rows(self, conn: sqlite3.Connection, rv: int) -> None:
        """The index from every row (bytes only) and the highest resourceVersion."""
        objects = self._objects
        current: tuple[str, str] = ("", "\0")
        items: dict[str, Entry] = {}
        highest = 0
        # rows come in primary-key order, grouped by (resource, namespace)
        for resource, namespace, name, obj_rv, data in conn.execute(
            "SELECT resource, namespace, name, rv, data FROM objects"
        ):
            if (resource, namespace) != current:
                current = (resource, namespace)
                items = objects.setdefault(resource, {}).setdefault(namespace, {})
            items[name] = Entry(resource, namespace, name, obj_rv, data)
            highest = max(highest, obj_rv)
        self.rv = max(rv, highest)

    @staticmethod
    def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
        """Refuse a SQLite database that holds tables but not corral's (never add ours to it)."""
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "objects" not in tables:
            raise StartupError(path, f"a SQLite database, but not corral's (tables: {', '.join(sorted(tables))})")

    async def close(self) -> None:
        """Commit what is queued, stop the writer, and close every watcher."""
        for watcher in list(self._watchers):
            watcher.close()
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._conn is not None:
            self._flush()
            self._conn.close()
            self._conn = None

    # ---- reads ----------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Entry | None:
        return self._objects.get(resource, {}).get(namespace, {}).get(name)

    def entries(self, resource: str, namespace: str | None = None) -> list[Entry]:
        """Entries sorted by ``(namespace, name)``."""
        by_namespace = self._objects.get(resource, {})
        if namespace is not None:
            items = by_namespace.get(namespace, {})
            return [items[name] for name in sorted(items)]
        result: list[Entry] = []
        for ns in sorted(by_namespace):
            items = by_namespace[ns]
            result.extend(items[name] for name in sorted(items))
        return result

    def entries_at(self, resource: str, namespace: str | None, at_rv: int) -> list[Entry]:
        """Entries as they were at version ``at_rv``, sorted like :meth:`entries`.

        Rebuilt from the current state by undoing, key by key, the changes after ``at_rv``:
        the history's first event after it for a key carries the key's state at it
        (``previous``; none when that event created the object). Raises
        :class:`ExpiredError` once the history no longer reaches back to ``at_rv``.
        """
        if at_rv >= self.rv:
            return self.entries(resource, namespace)
        if at_rv < self.oldest_watchable_rv:
            raise ExpiredError(f"too old resource version: {at_rv} ({self.oldest_watchable_rv})")
        ring, size = self._ring, self._history_size
        before: dict[tuple[str, str], Entry | None] = {}
        for rv in range(at_rv + 1, self.rv + 1):
            event = ring[rv % size]
            assert event is not None and event.rv == rv
            entry = event.entry
            if entry.resource != resource or (namespace is not None and entry.namespace != namespace):
                continue
            before.setdefault((entry.namespace, entry.name), event.previous)
        if not before:
            return self.entries(resource, namespace)
        state = {(e.namespace, e.name): e for e in self.entries(resource, namespace)}
        for key, previous in before.items():
            if previous is None:
                state.pop(key, None)
            else:
                state[key] = previous
        return [state[key] for key in sorted(state)]

    def iter_all(self, resource: str) -> Iterator[Entry]:
        for items in self._objects.get(resource, {}).values():
            yield from items.values()

    def count(self, resource: str | None = None) -> int:
        resources = [resource] if resource is not None else list(self._objects)
        return sum(len(items) for r in resources for items in self._objects.get(r, {}).values())

    def namespace_is_empty(self, namespace: str) -> bool:
        return all(not by_ns.get(namespace) for by_ns in self._objects.values())

    def resources(self) -> list[str]:
        return list(self._objects)

    # ---- writes ---------------------------------------------------------------------

    def create(self, resource: str, obj: Obj) -> Write:
        """Store a new object; sets ``metadata.resourceVersion``. Raises :class:`AlreadyExistsError`."""
        namespace, name = _key(obj)
        if self.get(resource, namespace, name) is not None:
            raise AlreadyExistsError(f"{name!r} already exists")
        return self._apply(resource, namespace, name, obj, "ADDED", None)

    def update(self, resource: str, obj: Obj, expected_rv: int | None = None) -> Write:
        """Replace an object; with ``expected_rv`` fail with :class:`ConflictError` if it moved on."""
        namespace, name = _key(obj)
        current = self.get(resource, namespace, name)
        if current is None:
            raise NotFoundError(f"{name!r} not found")
        if expected_rv is not None and expected_rv != current.rv:
            raise ConflictError(f"the object has been modified (resourceVersion {expected_rv} is now {current.rv})")
        return self._apply(resource, namespace, name, obj, "MODIFIED", current)

    def delete(self, resource: str, namespace: str, name: str, expected_rv: int | None = None) -> Write:
        """Remove an object; the DELETED event carries its last state at a new version."""
        current = self.get(resource, namespace, name)
        if current is None:
            raise NotFoundError(f"{name!r} not found")
        if expected_rv is not None and expected_rv != current.rv:
            raise ConflictError(f"the object has been modified (resourceVersion {expected_rv} is now {current.rv})")
        obj = current.copy()
        return self._apply(resource, namespace, name, obj, "DELETED", current)

    def _apply(self, resource: str, namespace: str, name: str, obj: Obj, kind: EventType,  # noqa: PLR0917
               previous: Entry | None) -> Write:
        if self._failed is not None:
            raise UnavailableError(f"the store cannot persist writes: {self._failed}")
        rv = self.rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = encode(obj)
        if len(raw) > MAX_OBJECT_BYTES and kind != "DELETED":
            raise ObjectTooLargeError(
                f'{resource} "{name}" is too large: its JSON is {len(raw)} bytes; the limit is {MAX_OBJECT_BYTES} '
                "bytes (1.5 MiB)")
        entry = Entry(resource, namespace, name, rv, raw, obj)
        items = self._objects.setdefault(resource, {}).setdefault(namespace, {})
        if kind == "DELETED":
            del items[name]
            if not items:
                del self._objects[resource][namespace]
        else:
            items[name] = entry
        self.rv = rv
        line = b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"
        self._ring[rv % self._history_size] = WatchEvent(rv, kind, entry, previous, line)
        if rv - self._history_size >= self._first_rv:
            self._first_rv = rv - self._history_size + 1
        return Write(entry, self._enqueue(resource, namespace, name, rv, None if kind == "DELETED" else raw))

    def _enqueue(self, resource: str, namespace: str, name: str, rv: int, raw: bytes | None) -> asyncio.Future[None]:
        loop = self._loop
        assert loop is not None, "Store.open() was not awaited"
        if self._path is None:  # memory only
            future: asyncio.Future[None] = loop.create_future()
            future.set_result(None)
            self._publish(rv)
            return future
        if self._thread is None:  # inline group commit on the loop
            batch = self._pending
            if batch is None:
                batch = self._pending = _Batch(loop.create_future())
                loop.call_soon(self._flush)
            batch.ops.append((resource, namespace, name, rv, raw))
            batch.last_rv = rv
            self._last_future = batch.future
            return batch.future
        with self._lock:
            batch = self._pending
            if batch is None:
                batch = self._pending = _Batch(loop.create_future())
                self._queue.append(batch)
                self._cond.notify()
            batch.ops.append((resource, namespace, name, rv, raw))
            batch.last_rv = rv
        self._last_future = batch.future
        return batch.future

    def _write_batches(self, conn: sqlite3.Connection, batches: list[_Batch]) -> BaseException | None:
        """Commit ``batches`` in one transaction; the error if it failed (then nothing was written)."""
        upsert = "INSERT OR REPLACE INTO objects (resource, namespace, name, rv, data) VALUES (?, ?, ?, ?, ?)"
        delete = "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?"
        try:
            conn.execute("BEGIN")
            run: list[tuple[Any, ...]] = []
            run_is_delete = False
            deletes = False
            for batch in batches:
                for resource, namespace, name, rv, raw in batch.ops:
                    is_delete = raw is None
                    deletes = deletes or is_delete
                    if run and is_delete != run_is_delete:
                        conn.executemany(delete if run_is_delete else upsert, run)
                        run = []
                    run_is_delete = is_delete
                    run.append((resource, namespace, name) if is_delete else (resource, namespace, name, rv, raw))
            if run:
                conn.executemany(delete if run_is_delete else upsert, run)
            if deletes:  # otherwise the highest row version already says it (the load takes the larger)
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (batches[-1].last_rv,))
            conn.execute("COMMIT")
        except BaseException as exc:  # the store is now unusable
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return exc
        return None

    def _flush(self) -> None:
        """Inline mode: commit what the last loop iteration wrote, on the loop thread."""
        batch = self._pending
        self._pending = None
        if batch is None or self._conn is None:
            return
        self._committed([batch], self._write_batches(self._conn, [batch]))

    def _writer(self) -> None:
        conn = self._connect()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue and self._stopping:
                        return
                    batches = self._queue
                    self._queue = []
                    self._pending = None
                error = self._write_batches(conn, batches)
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._committed, batches, error)
                except RuntimeError:  # loop closed: nobody is waiting any more
                    return
        finally:
            conn.close()

    def _committed(self, batches: list[_Batch], error: BaseException | None) -> None:
        self.batches += 1
        for batch in batches:
            self.batched_ops += len(batch.ops)
            if error is not None:
                self._failed = error
                if not batch.future.done():
                    batch.future.set_exception(UnavailableError(f"commit failed: {error}"))
                continue
            if not batch.future.done():
                batch.future.set_result(None)
        if error is None:
            self._publish(batches[-1].last_rv)

    def _publish(self, rv: int) -> None:
        previous = self.committed_rv
        self.committed_rv = rv
        events: list[WatchEvent] | None = None
        shared: dict[Any, bytes] = {}
        for watcher in self._watchers:
            if watcher.deliver is not None and watcher.cursor == previous and not watcher.closed:
                if events is None:
                    try:
                        events = self.events_since(previous)
                    except ExpiredError:  # one batch larger than the history: everyone pulls (and gets 410)
                        events = []
                if events and watcher.deliver(events, shared):
                    watcher.cursor = rv
                    continue
            watcher._notify()

    async def barrier(self) -> None:
        """Wait until every write applied so far is durable (raises :class:`UnavailableError` if it cannot be)."""
        if self.committed_rv >= self.rv:
            return
        if self._failed is not None:
            raise UnavailableError(f"the store cannot persist writes: {self._failed}")
        if self._last_future is not None:
            await asyncio.shield(self._last_future)

    # ---- watch ----------------------------------------------------------------------

    @property
    def oldest_watchable_rv(self) -> int:
        """The oldest version a watch may start from (exclusive)."""
        return self._first_rv - 1

    def watcher(self, after_rv: int, deliver: Deliver | None = None) -> Watcher:
        """A watcher of every committed event after ``after_rv``; raises :class:`ExpiredError` if too old.

        With ``deliver`` it is a push watcher (see :class:`Watcher`)."""
        if after_rv < self.oldest_watchable_rv:
            raise ExpiredError(f"too old resource version: {after_rv} ({self.oldest_watchable_rv})")
        watcher = Watcher(self, min(after_rv, self.committed_rv), deliver)
        self._watchers.add(watcher)
        return watcher

    def events_since(self, after_rv: int) -> list[WatchEvent]:
        """Committed events with ``rv > after_rv``, in order."""
        if after_rv < self.oldest_watchable_rv:
            raise ExpiredError(f"too old resource version: {after_rv} ({self.oldest_watchable_rv})")
        ring, size = self._ring, self._history_size
        events: list[WatchEvent] = []
        for rv in range(after_rv + 1, self.committed_rv + 1):
            event = ring[rv % size]
            assert event is not None and event.rv == rv
            events.append(event)
        return events

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)


def _key(obj: Obj) -> tuple[str, str]:
    metadata = obj["metadata"]
    return metadata.get("namespace") or "", metadata["name"]
