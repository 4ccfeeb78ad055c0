"""A mock OpenAI-compatible model on loopback (stdlib only): what LiteLLM and the openai client call in tests.

Used by tests/test_litellm_proxy.py and scripts/capture_otel_fixtures.py.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MockOpenAI", "serve_mock_openai"]


class MockOpenAI(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like the OpenAI API (usage, n choices, logprobs when asked)."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        n = int(body.get("n") or 1)
        choice = lambda i: {  # noqa: E731
            "index": i, "finish_reason": "stop",
            "message": {"role": "assistant", "content": f"Step 1: think. Step 2: answer {i}."},
            "logprobs": {"content": [{"token": "Step", "logprob": -0.1, "bytes": [83, 116, 101, 112],
                                      "top_logprobs": [{"token": "Step", "logprob": -0.1, "bytes": [83, 116, 101, 112]}]}]}
            if body.get("logprobs") else None}
        out = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
               "model": body.get("model", "gpt-4o-mini") + "-2024-07-18", "system_fingerprint": "fp_capture",
               "choices": [choice(i) for i in range(n)],
               "usage": {"prompt_tokens": 21, "completion_tokens": 9 * n, "total_tokens": 21 + 9 * n,
                         "completion_tokens_details": {"reasoning_tokens": 0}}}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve_mock_openai() -> ThreadingHTTPServer:
    """Start the mock on a free loopback port (``server.server_port``); ``shutdown()`` stops it."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), MockOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
