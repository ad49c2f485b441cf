"""A digits classifier behind a small HTTP server (KServe v1 protocol), for corral's InferenceService.

Trains a scikit-learn classifier on the 8x8 digits that ship with scikit-learn (no download) at
start-up — ``MODEL_VERSION=v1`` a 3-nearest-neighbours classifier, ``v2`` an RBF support-vector machine — or
loads ``$MODEL_PATH``: a checkpoint of the PyTorch training example (``epoch-NNNN.pt``, needs torch)
or a pickled scikit-learn estimator.
Binds ``$POD_IP:$PORT`` as corral pods do.

- ``GET  /healthz`` — ``ok`` once the model is loaded;
- ``GET  /v1/models/digits`` — name, version, readiness, held-out accuracy;
- ``POST /v1/models/digits:predict`` — ``{"instances": [[64 pixel values 0..16], ...]}`` →
  ``{"predictions": [digit, ...], "model_version": ...}``.

``FAIL_RATE`` (0..1) makes that share of predictions answer 500 — to watch a canary roll back.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

NAME = os.environ.get("MODEL_NAME", "digits")
VERSION = os.environ.get("MODEL_VERSION", "v1")
FAIL_RATE = float(os.environ.get("FAIL_RATE", "0"))


class TorchDigits:
    """The MLP that ``examples/training/ddp/train.py`` trains, loaded from one of its checkpoints.

    Same architecture (64 → hidden → hidden → 10, ReLU) and input scaling (pixels / 16);
    ``predict``/``score`` mirror scikit-learn's so the server treats both alike.
    """

    def __init__(self, path: str) -> None:
        import torch
        from torch import nn

        self.torch = torch
        state = torch.load(path, map_location="cpu", weights_only=False)  # a checkpoint the operator points at
        weights = state["model"]
        hidden = int(weights["0.weight"].shape[0])
        self.model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                   nn.Linear(hidden, 10))
        self.model.load_state_dict(weights)
        self.model.eval()
        self.epoch = state.get("epoch")

    def predict(self, instances: Any) -> Any:
        with self.torch.no_grad():
            inputs = self.torch.tensor(instances, dtype=self.torch.float32) / 16.0
            return self.model(inputs).argmax(dim=1).numpy()

    def score(self, features: Any, labels: Any) -> float:
        return float((self.predict(features) == labels).mean())


def load_model() -> tuple[Any, float]:
    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(digits.data, digits.target, test_size=0.25, random_state=0)
    path = os.environ.get("MODEL_PATH")
    if path and path.endswith(".pt"):
        model = TorchDigits(path)
    elif path:
        with open(path, "rb") as handle:
            model = pickle.load(handle)  # noqa: S301 - a model file the operator points at
    elif VERSION == "v2":
        model = SVC(gamma=0.001, C=10.0).fit(train_x, train_y)
    else:
        model = KNeighborsClassifier(n_neighbors=3).fit(train_x, train_y)
    return model, float(model.score(test_x, test_y))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: Any = None
    accuracy = 0.0
    busy = threading.BoundedSemaphore(1000)  # one slot per request in flight (drained on SIGTERM)
    draining = threading.Event()  # set on SIGTERM: answer with Connection: close from then on
    last_request = 0.0  # monotonic time the last request arrived

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if Handler.draining.is_set():  # going away: a proxy must not reuse this connection
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        elif self.path == f"/v1/models/{NAME}":
            self._send(200, {"name": NAME, "version": VERSION, "ready": True, "accuracy": round(self.accuracy, 4)})
        else:
            self._send(404, {"error": f"unknown path {self.path}; try POST /v1/models/{NAME}:predict"})

    def do_POST(self) -> None:
        Handler.last_request = time.monotonic()
        with Handler.busy:
            self._post()

    def _post(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != f"/v1/models/{NAME}:predict":
            self._send(404, {"error": f"unknown path {self.path}; try POST /v1/models/{NAME}:predict"})
            return
        try:
            instances = json.loads(raw)["instances"]
            if not isinstance(instances, list) or not all(isinstance(r, list) and len(r) == 64 for r in instances):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": 'body must be {"instances": [[64 numbers 0..16], ...]}'})
            return
        if FAIL_RATE and random.random() < FAIL_RATE:
            self._send(500, {"error": "injected failure (FAIL_RATE)"})
            return
        predictions = [int(p) for p in self.model.predict(instances)]
        self._send(200, {"predictions": predictions, "model_version": VERSION})


def main() -> None:
    started = time.monotonic()
    Handler.model, Handler.accuracy = load_model()
    host = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    # Graceful termination: on SIGTERM (scale-down, rollout) stop accepting new connections, answer
    # what still arrives on open keep-alive connections with `Connection: close` (a gateway may send
    # one before it has seen the pod go), and exit once nothing has arrived for a second and nothing
    # is in flight (at most 10 s), so a replica going away never cuts an answer short.
    def terminate(*_: Any) -> None:
        Handler.draining.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, terminate)
    print(f"digits {VERSION}: accuracy {Handler.accuracy:.3f}, loaded in {time.monotonic() - started:.2f}s, "
          f"serving on {host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        # Wait (bounded) for predictions still being answered; idle keep-alive connections don't hold us.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (Handler.busy._value < 1000  # noqa: SLF001
                                               or time.monotonic() - Handler.last_request < 1.0):
            time.sleep(0.05)


if __name__ == "__main__":
    main()
