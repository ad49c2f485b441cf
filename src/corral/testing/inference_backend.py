"""A tiny model-server stand-in for gateway tests and benchmarks (run as a process).

``python -m corral.testing.inference_backend --port N --name r1`` serves:

- ``/healthz`` — 200 ``ok`` (503 while ``--not-ready``);
- ``/stream?n=5&interval=0.2`` — ``n`` chunks, one every ``interval`` seconds (chunked);
- ``/sse?n=5&interval=0.2`` — the same as server-sent events;
- ``/sleep?s=0.5`` — answers after ``s`` seconds;
- anything else — JSON ``{"replica", "method", "path", "model", "bytes"}``
  (``--fail`` makes every answer a 500; ``--body-bytes`` pads the answer).

``--start-delays 6,0.1 --start-counter FILE`` makes start-up times vary as a model
server's do (weights cached or fetched): the n-th process to start with the same
counter file sleeps the n-th delay (cyclically) before it listens.

Binds ``--host`` (default ``$POD_IP`` or 127.0.0.1), as corral pods do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from aiohttp import web


def make_app(name: str, *, fail: bool, ready: bool, pad: int) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok", status=200 if ready else 503)

    async def stream(request: web.Request) -> web.StreamResponse:
        count = int(request.query.get("n", "5"))
        interval = float(request.query.get("interval", "0.2"))
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(count):
            await response.write(f"chunk {i}\n".encode())
            await asyncio.sleep(interval)
        await response.write_eof()
        return response

    async def sse(request: web.Request) -> web.StreamResponse:
        count = int(request.query.get("n", "5"))
        interval = float(request.query.get("interval", "0.2"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for i in range(count):
            await response.write(f"data: {json.dumps({'i': i, 'replica': name})}\n\n".encode())
            await asyncio.sleep(interval)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def sleep(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.5")))
        return web.json_response({"replica": name, "slept": float(request.query.get("s", "0.5"))})

    async def anything(request: web.Request) -> web.Response:
        body = await request.read()
        model = None
        if body:
            try:
                parsed = json.loads(body)
                model = parsed.get("model") if isinstance(parsed, dict) else None
            except ValueError:
                model = None
        answer = {"replica": name, "method": request.method, "path": request.path_qs, "model": model,
                  "bytes": len(body)}
        if pad:
            answer["pad"] = "x" * pad
        return web.json_response(answer, status=500 if fail else 200)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/stream", stream)
    app.router.add_get("/sse", sse)
    app.router.add_get("/sleep", sleep)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def start_number(counter: str) -> int:
    """This process's 1-based start number: one byte appended to ``counter`` (O_APPEND writes are
    atomic, so concurrent starts each get their own offset)."""
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
        return os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("POD_IP", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--name", default=os.environ.get("HOSTNAME", "replica"))
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--not-ready", action="store_true")
    parser.add_argument("--body-bytes", type=int, default=0)
    parser.add_argument("--start-delays", default="", help="comma-separated seconds to sleep before listening")
    parser.add_argument("--start-counter", default="", help="file that numbers the starts (see the docstring)")
    args = parser.parse_args()
    if args.start_delays:
        delays = [float(delay) for delay in args.start_delays.split(",")]
        number = start_number(args.start_counter) if args.start_counter else 1
        time.sleep(delays[(number - 1) % len(delays)])
    app = make_app(args.name, fail=args.fail, ready=not args.not_ready, pad=args.body_bytes)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
