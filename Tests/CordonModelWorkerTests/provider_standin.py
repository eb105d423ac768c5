#!/usr/bin/env python3
"""A stand-in for a model provider, for the model worker's tests: a real HTTP/1.1 server on
127.0.0.1 (an ephemeral port, printed on the first line of stdout) speaking OpenAI's chat
completions (POST .../chat/completions) and Anthropic's messages (POST .../messages) wire
formats, as documented (research memo sections 1 and 2).

What it answers is chosen by the request body's "model" (a scenario name): plain answers,
streams (tool calls split over chunks), 429 with retry-after, 500, 529, malformed JSON, a cut
stream, a stalled stream, a 50 MB body, an error that echoes the key, a slow answer.

Keep-alive as real servers do it: HTTP/1.1, every response framed (Content-Length, or chunked
for streams), TCP_NODELAY on each accepted socket. It counts the connections it accepts.
Control on stdin, one command a line: "stats" prints {"connections","requests","last"} as one
JSON line ("last": the last request's path, headers with lower-case names, and body). stdin's end
stops the server.
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
stats = {"connections": 0, "requests": 0, "last": None}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request(self, request, client_address):
        with lock:
            stats["connections"] += 1
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)


def openai_chunk(delta, finish=None, usage=None, choices=True):
    body = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1700000000, "model": "standin-1"}
    body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []
    body["usage"] = usage
    return "data: " + json.dumps(body) + "\n\n"


def anthropic_event(kind, body):
    body = dict(body, type=kind)
    return "event: " + kind + "\ndata: " + json.dumps(body) + "\n\n"


OPENAI_TOOLS_STREAM = [
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"content": "Let me "}),
    openai_chunk({"content": "look."}),
    openai_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
    openai_chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\""}}]}),
    openai_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ":\"CET\"}"}}]}),
    openai_chunk({}, finish="tool_calls"),
    openai_chunk({}, usage={"prompt_tokens": 21, "completion_tokens": 13, "total_tokens": 34}, choices=False),
    "data: [DONE]\n\n",
]

OPENAI_TEXT_STREAM = [
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"content": "Hello"}),
    openai_chunk({"content": " world"}),
    openai_chunk({}, finish="stop"),
    openai_chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, choices=False),
    "data: [DONE]\n\n",
]

ANTHROPIC_TOOLS_STREAM = [
    anthropic_event("message_start", {"message": {"id": "msg_standin", "type": "message", "role": "assistant", "model": "claude-standin",
                                                  "content": [], "stop_reason": None, "usage": {"input_tokens": 30, "output_tokens": 1}}}),
    anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    anthropic_event("ping", {}),
    anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Checking "}}),
    anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "now."}}),
    anthropic_event("content_block_stop", {"index": 0}),
    anthropic_event("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
    anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
    anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
    anthropic_event("content_block_stop", {"index": 1}),
    anthropic_event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 17}}),
    anthropic_event("message_stop", {}),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # Framing helpers: every response says where it ends, so the connection stays usable.

    def send_json(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, text):
        data = text.encode() if isinstance(text, str) else text
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with lock:
            stats["requests"] += 1
            stats["last"] = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw.decode()}
        body = json.loads(raw)
        anthropic = self.path.endswith("/messages")
        scenario = body.get("model", "")
        key = self.headers.get("x-api-key") or (self.headers.get("Authorization") or "").removeprefix("Bearer ")

        if scenario == "slow":
            time.sleep(float(body.get("temperature", 2)) * 1)
            scenario = "plain"
        if scenario == "plain":
            if anthropic:
                self.send_json(200, {"id": "msg_plain", "type": "message", "role": "assistant", "model": "claude-standin",
                                     "content": [{"type": "text", "text": "Hello from the stand-in"}], "stop_reason": "end_turn",
                                     "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 5}})
            else:
                self.send_json(200, {"id": "chatcmpl-plain", "object": "chat.completion", "created": 1700000000, "model": "standin-1",
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the stand-in", "refusal": None},
                                                  "logprobs": None, "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}},
                               headers=[("x-request-id", "req_plain")])
        elif scenario in ("stream", "tools-stream"):
            self.start_stream()
            events = ANTHROPIC_TOOLS_STREAM if anthropic else (OPENAI_TOOLS_STREAM if scenario == "tools-stream" else OPENAI_TEXT_STREAM)
            for event in events:
                # Split each event in two writes, mid-line: the reader must join them.
                half = len(event) // 2
                self.chunk(event[:half])
                self.chunk(event[half:])
            self.end_stream()
        elif scenario == "rate-limited":
            error = ({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}
                     if anthropic else {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}})
            self.send_json(429, error, headers=[("retry-after", "7")])
        elif scenario == "server-error":
            self.send_json(500, {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}})
        elif scenario == "overloaded":
            self.send_json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        elif scenario == "malformed":
            self.send_json(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "message": {"role": "assist')
        elif scenario == "truncated":
            # Two events, then the connection is cut in the middle of a chunk.
            self.start_stream()
            self.chunk(OPENAI_TEXT_STREAM[0])
            self.chunk(OPENAI_TEXT_STREAM[1])
            self.wfile.write(b"40\r\ndata: {\"id\":")
            self.wfile.flush()
            self.close_connection = True
        elif scenario == "no-end":
            # A well-framed stream that stops before its answer did: no finish, no [DONE].
            self.start_stream()
            self.chunk(OPENAI_TEXT_STREAM[0])
            self.chunk(OPENAI_TEXT_STREAM[1])
            self.end_stream()
        elif scenario == "stall":
            self.start_stream()
            self.chunk(OPENAI_TEXT_STREAM[0])
            time.sleep(8)
            self.close_connection = True
        elif scenario == "large":
            # A valid answer of 300,000 characters: past what the worker parses on its HTTP
            # thread, well under the cap.
            self.send_json(200, {"id": "chatcmpl-large", "object": "chat.completion", "created": 1700000000, "model": "standin-1",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "y" * 300000},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 9, "completion_tokens": 75000, "total_tokens": 75009}})
        elif scenario == "huge":
            # 50 MB announced and sent (as far as the reader reads).
            size = 50 << 20
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.write_filler(size)
        elif scenario == "huge-stream":
            # 50 MB of one stream with no length announced: only counting can stop it.
            self.start_stream()
            piece = openai_chunk({"content": "x" * 60000})
            sent = 0
            try:
                while sent < (50 << 20):
                    self.chunk(piece)
                    sent += len(piece)
                self.end_stream()
            except OSError:
                self.close_connection = True
        elif scenario == "echo-key":
            message = "Incorrect API key provided: " + key + ". You can find your API key at https://example.invalid."
            self.send_json(400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "bad_key_format"}})
        else:
            self.send_json(404, {"error": {"message": "The model `%s` does not exist" % scenario, "type": "invalid_request_error",
                                           "param": None, "code": "model_not_found"}})

    def write_filler(self, size):
        block = b" " * (1 << 16)
        sent = 0
        try:
            while sent < size:
                self.wfile.write(block[: min(len(block), size - sent)])
                sent += len(block)
        except OSError:
            self.close_connection = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "stats":
            with lock:
                print(json.dumps(stats), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
