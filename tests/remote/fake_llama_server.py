"""A named fake of llama-server's native API, for the protocol alone.

No llama-server binary is available here (building one takes half an hour), so the
``llama-server`` backend's protocol is checked against this stand-in on loopback. It
is faithful in what the backend relies on, and in nothing else:

- ``GET /props``: ``total_slots`` and ``default_generation_settings.n_ctx``;
- ``POST /completion`` with ``stream: true``: server-sent events over chunked
  encoding, one event per token with ``content`` and ``tokens`` (``return_tokens``),
  ``timings`` in each event (``timings_per_token``) and a last event with
  ``stop: true``; a request is served by the slot ``id_slot`` names, and
  ``cache_prompt`` keeps each slot's tokens so that ``timings.prompt_n`` counts only
  the tokens after the common prefix, as llama-server does;
- a client that closes the connection ends the stream (``disconnected`` is set);
- ``without_token_ids`` answers as servers before ``return_tokens`` did.

It "generates" the ids of ``script`` (each token's text is ``pieces[id]``), and can
answer errors: ``fail_first`` requests get a 503, ``error_event_after`` sends an error
event after that many tokens. Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeLlamaServer:
    def __init__(
        self,
        *,
        slots: int = 4,
        n_ctx: int = 2048,
        script: list[int] | None = None,
        pieces: dict[int, str] | None = None,
        token_delay_s: float = 0.0,
    ) -> None:
        self.slots = slots
        self.n_ctx = n_ctx
        self.script = script or [1000, 1001, 1002]
        self.pieces = pieces or {}
        self.token_delay_s = token_delay_s
        self.fail_first = 0
        self.error_event_after: int | None = None
        self.without_token_ids = False
        """Answer as a server older than ``return_tokens``: no ids, control tokens empty."""
        self.requests: list[dict[str, Any]] = []
        self.slot_tokens: dict[int, list[int]] = {}
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/props":
                    self._json(404, {"error": {"code": 404, "message": "File Not Found"}})
                    return
                self._json(
                    200,
                    {
                        "total_slots": fake.slots,
                        "default_generation_settings": {"n_ctx": fake.n_ctx},
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/completion":
                    self._json(404, {"error": {"code": 404, "message": "File Not Found"}})
                    return
                with fake._lock:
                    fake.requests.append(body)
                    if fake.fail_first > 0:
                        fake.fail_first -= 1
                        self._json(503, {"error": {"code": 503, "message": "Loading model"}})
                        return
                fake.stream(self, body)

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stream(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = [int(t) for t in body["prompt"]]
        slot = int(body.get("id_slot", -1))
        slot = slot if slot >= 0 else 0
        with self._lock:
            cached = self.slot_tokens.get(slot, []) if body.get("cache_prompt", True) else []
            common = 0
            for a, b in zip(cached, prompt[:-1], strict=False):
                if a != b:
                    break
                common += 1
            self.slot_tokens[slot] = list(prompt)
        timings = {"prompt_n": len(prompt) - common, "prompt_ms": 5.0 * (len(prompt) - common)}
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: dict[str, Any]) -> bool:
            data = f"data: {json.dumps(event)}\n\n".encode()
            try:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
            except OSError:
                self.disconnected.set()
                return False
            return True

        n_predict = int(body.get("n_predict", -1))
        limit = len(self.script) if n_predict < 0 else min(n_predict, len(self.script))
        for index, token in enumerate(self.script[:limit]):
            if self.error_event_after is not None and index == self.error_event_after:
                send({"error": {"code": 500, "message": "fake failure"}})
                break
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            event: dict[str, Any] = {
                "content": self.pieces.get(token, f"<{token}>"),
                "tokens": [token],
                "stop": False,
                "id_slot": slot,
                "timings": {**timings, "predicted_n": index + 1, "predicted_ms": 2.0 * (index + 1)},
            }
            if self.without_token_ids:
                del event["tokens"]
            if not send(event):
                return
        else:
            final = {
                "content": "",
                "tokens": [],
                "stop": True,
                "stop_type": "limit",
                "id_slot": slot,
                "timings": {**timings, "predicted_n": limit, "predicted_ms": 2.0 * limit},
            }
            if not send(final):
                return
        try:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            self.disconnected.set()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
