"""The agent's side of ``kubectl exec``, ``attach`` and ``port-forward``.

The API server relays a client's WebSocket (see :mod:`corral.util.streamproto` for the
framing) to the agent of the pod's node, which does the work here, as the kubelet does:

- **exec** runs the command as a new process in the container's environment: the env
  the container got (pod fields, ``CUDA_VISIBLE_DEVICES`` …, with the run's reaper
  markers so the pod's cleanup takes it along), its ``workingDir`` and its user
  (``runAsUser``/``runAsGroup``). stdin/stdout/stderr are pipes, or one pty with
  ``tty=true`` (the process is a session leader with the pty as controlling terminal;
  channel-4 resize messages set its window size). The process ends → remaining output,
  then the exit status on channel 3, then a normal close. The client goes away → the
  process group is killed.
- **attach** streams the container's output from now on (its log, followed until the
  run ends). Containers run with stdin closed, so attaching stdin is refused with a
  Status on channel 3.
- **port-forward** connects to ``POD_IP:PORT`` for every port asked and relays bytes.

Errors after the upgrade (no such container, not running, cannot start the command) go
as a Failure Status on channel 3, the way kubectl prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import pty
import signal
import struct
import termios
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from corral.agent.process import contained
from corral.agent.worker import ExecContext
from corral.util.streamproto import (
    CLOSE_SIGNAL,
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    V5,
    port_prefix,
    status_json,
)

READ_SIZE = 64 * 1024
DRAIN_AFTER_EXIT = 2.0
"""Seconds output is still relayed after the command exits (a background child may hold the pipes open)."""


@dataclass(frozen=True)
class StreamOptions:
    """Which streams the client asked for (the ``stdin``/``stdout``/``stderr``/``tty`` query)."""

    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamOptions:
        def flag(name: str, default: bool) -> bool:
            raw = query.get(name)
            return default if raw is None else raw.lower() in ("true", "1", "yes")
        tty = flag("tty", False)
        return cls(stdin=flag("stdin", False), stdout=flag("stdout", True), stderr=flag("stderr", True) and not tty,
                   tty=tty)


class Channels:
    """Sends framed messages on one WebSocket (one writer at a time)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_bytes(bytes((channel,)) + data)

    async def finish(self, exit_code: int | None, message: str = "") -> None:
        """The status on channel 3, then a normal close."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            payload = status_json(self.protocol, exit_code, message)
            if payload:
                await self.send(ERROR, payload)
            await self.ws.close()


def _take_controlling_tty() -> None:  # runs in the child, after setsid
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_window(fd: int, payload: bytes) -> None:
    try:
        size = json.loads(payload)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (ValueError, TypeError, AttributeError):
        return
    if width > 0 and height > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _pump(read: Callable[[int], Awaitable[bytes]], channels: Channels, channel: int) -> None:
    while chunk := await read(READ_SIZE):
        await channels.send(channel, chunk)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _pty_reader(fd: int) -> Callable[[int], Awaitable[bytes]]:
    """An async ``read()`` of a pty master; end of data (EIO once the slave side is closed) reads as b""."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    async def read(size: int) -> bytes:
        while True:
            try:
                return os.read(fd, size)
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _wake, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
            except OSError as error:
                if error.errno == errno.EIO:
                    return b""
                raise
    return read


async def run_exec(ws: web.WebSocketResponse, protocol: str, command: list[str], context: ExecContext, *,
                   options: StreamOptions) -> None:
    """Run ``command`` with its streams on ``ws``; returns when the command is done and the socket closed."""
    channels = Channels(ws, protocol)
    argv, switch = contained(command, cgroup=context.cgroup, user=context.identity.uid, group=context.identity.gid)
    env, cwd = context.env, context.cwd
    master: int | None = None
    devnull = asyncio.subprocess.DEVNULL
    pipe = asyncio.subprocess.PIPE
    try:
        if options.tty:
            master, slave = pty.openpty()
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True,
                    preexec_fn=_take_controlling_tty, **switch)
            finally:
                os.close(slave)
        else:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=pipe if options.stdin else devnull, stdout=pipe if options.stdout else devnull,
                stderr=pipe if options.stderr else devnull, env=env, cwd=cwd, start_new_session=True, **switch)
    except OSError as error:
        if master is not None:
            os.close(master)
        await channels.finish(None, f"failed to exec in container: starting {command[0]!r}: {error.strerror or error}")
        return
    pumps: list[asyncio.Task[None]] = []
    if master is not None:
        pumps.append(asyncio.create_task(_pump(_pty_reader(master), channels, STDOUT)))
    else:
        for stream, channel in ((process.stdout, STDOUT), (process.stderr, STDERR)):
            if stream is not None:
                pumps.append(asyncio.create_task(_pump(stream.read, channels, channel)))

    async def close_stdin() -> None:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
            with contextlib.suppress(ConnectionError):
                await process.stdin.wait_closed()

    async def input_loop() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                data: bytes = message.data
            elif message.type == WSMsgType.TEXT:
                data = str(message.data).encode()
            else:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and payload:
                if master is not None:
                    os.write(master, payload)
                elif process.stdin is not None and not process.stdin.is_closing():
                    process.stdin.write(payload)
                    with contextlib.suppress(ConnectionError):
                        await process.stdin.drain()
            elif channel == RESIZE and master is not None:
                _set_window(master, payload)
            elif channel == CLOSE_SIGNAL and protocol == V5 and payload[:1] == bytes((STDIN,)):
                await close_stdin()

    inputs = asyncio.create_task(input_loop())
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({inputs, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():  # the client went away first
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await exited
            return
        if pumps:
            _, late = await asyncio.wait(pumps, timeout=DRAIN_AFTER_EXIT)
            for task in late:
                task.cancel()
        code = exited.result()
        await channels.finish(code if code >= 0 else 128 - code)
    finally:
        for task in [*pumps, inputs]:
            task.cancel()
        await asyncio.gather(*pumps, inputs, return_exceptions=True)
        if master is not None:
            os.close(master)
        await close_stdin()


async def run_attach(ws: web.WebSocketResponse, protocol: str, output: Callable[[], Any]) -> None:
    """Relay ``output()`` (an async iterator of the container's new log bytes) on stdout until it ends or
    the client leaves."""
    channels = Channels(ws, protocol)

    async def relay() -> None:
        async for chunk in output():
            await channels.send(STDOUT, chunk)

    async def until_closed() -> None:
        async for message in ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break

    relaying = asyncio.create_task(relay())
    watching = asyncio.create_task(until_closed())
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
        if relaying.done() and not ws.closed:
            await channels.finish(0)
    finally:
        for task in (relaying, watching):
            task.cancel()
        await asyncio.gather(relaying, watching, return_exceptions=True)


async def run_port_forward(ws: web.WebSocketResponse, host: str, ports: list[int], *, pod: str) -> None:
    """One TCP connection to ``host:port`` per port, relayed on channels ``2i``/``2i+1``."""
    channels = Channels(ws, "")
    writers: dict[int, asyncio.StreamWriter] = {}
    tasks: list[asyncio.Task[None]] = []
    for index, port in enumerate(ports):
        await channels.send(2 * index, port_prefix(port))
        await channels.send(2 * index + 1, port_prefix(port))
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as error:
            await channels.send(2 * index + 1, f"error forwarding port {port} to pod {pod}: failed to connect to "
                                f"{host}:{port}: {error.strerror or error}".encode())
            continue
        writers[index] = writer
        tasks.append(asyncio.create_task(_pump(reader.read, channels, 2 * index)))

    async def input_loop() -> None:
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data:
                if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    continue
                break
            data: bytes = message.data
            writer = writers.get(data[0] // 2) if data[0] % 2 == 0 else None
            if writer is not None and len(data) > 1:
                writer.write(data[1:])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

    inputs = asyncio.create_task(input_loop())
    pumping: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    try:
        # the pod closing its connections (or none opened) ends the session, as with the kubelet
        ending: set[asyncio.Future[Any]] = {inputs, pumping}
        await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    finally:
        inputs.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(inputs, *tasks, return_exceptions=True)
        for writer in writers.values():
            writer.close()
