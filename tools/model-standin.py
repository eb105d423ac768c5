#!/usr/bin/env python3
"""A stand-in for a hosted model API: a real HTTP server speaking OpenAI's Chat Completions and
Anthropic's Messages wire formats, whose behaviour is scripted. The model gateway's tests and
bench/models.sh both run it. Standard library only (any python3 >= 3.9).

    tools/model-standin.py [--host ADDR] [--port N] [--name NAME] [--models A,B] [--api-key KEY]
                           [--KEY VALUE ...]

It prints the port it bound on the first line of stdout (then nothing else there), and serves
until SIGTERM/SIGINT. `--host` defaults to 127.0.0.1 (an IPv6 address works; so does an address
inside a network namespace), `--port` to 0 (any free one).

Endpoints
  POST /v1/chat/completions   OpenAI: JSON, or SSE (`data: {chunk}` ... `data: [DONE]`) when the
                              request says "stream": true; with stream_options.include_usage the
                              usage chunk (choices: []) comes before [DONE]. When the request has
                              `tools` and the behaviour says so (tool_call_rate), the answer is a
                              call of the first tool (finish_reason "tool_calls"; streamed as an
                              id/name delta then argument fragments).
  POST /v1/messages           Anthropic: JSON, or named-event SSE (message_start,
                              content_block_start, ping, content_block_delta, content_block_stop,
                              message_delta, message_stop); tool_use blocks likewise.
  GET  /v1/models             OpenAI's list of --models (default: --name).
  GET  /health                {"status":"ok"}.
  GET  /stats                 counters: requests, connections, by path and by status, answers
                              right and wrong, the current behaviour, the distinct credentials seen.
  GET  /log?since=N           the requests after number N (at most the last 100000 kept): number,
                              path, model, tag, status, outcome, stream, whether the answer was
                              right. A tag is the text after "tag=" in the last user message,
                              so a client can tell which stand-in served which of its calls
                              through any gateway.
  POST /control               JSON object: sets behaviour keys (below) from now on; "next": [{...},
                              ...] queues one-request overrides, used in order, one per call;
                              "reset": true zeroes the counters and the log. Answers the behaviour.

Behaviour keys (command line: --latency-ms 5, --error-status 429, ...):
  latency_ms        delay before the reply's headers (a stream: before its first event); 0
  jitter            the standard deviation of ln(latency): each delay is
                    latency_ms * exp(jitter * N(0,1)); 0 = exact
  chunk_delay_ms    delay between a stream's events; 0
  error_rate        chance of answering with error_status instead; 0
  error_status      429, 500, 503, 529, ... ; 500. 429/503/529 carry retry-after: retry_after
  retry_after       seconds, for that header; 1
  correctness       chance the answer is right; 1. A prompt "what is A+B" is answered "The
                    answer is A+B." (the sum, or when wrong another number); any other prompt
                    "ok" (or, when wrong, "not ok")
  malformed_rate    chance of a 200 whose body is not valid JSON (a stream: a broken event); 0
  stall_rate        chance of stalling stall_ms: a plain reply before its headers, a stream after
                    its first event; 0
  stall_ms          10000
  huge_rate         chance the answer text is huge_bytes long; 0
  huge_bytes        1048576
  prompt_tokens     reported input tokens; null = about a quarter of the prompt's characters
  completion_tokens reported output tokens; null = about a quarter of the answer's characters
  tool_call_rate    chance a request with tools gets a tool call; 1
  tool_arguments    the call's arguments (a JSON object); {}
  model             the model name replies carry; null = the request's model
  seed              reseeds the stand-in's random generator (runs are reproducible per seed)

Wire details clients rely on: HTTP/1.1 keep-alive, TCP_NODELAY on every accepted connection,
Content-Length on every reply (a stream too: its whole body is built first, then written event by
event with its delays), errors in the API's own shape ({"error":{...}} for OpenAI, {"type":
"error","error":{...}} for Anthropic). --api-key KEY makes it require `Authorization: Bearer KEY`
(OpenAI paths) or `x-api-key: KEY` (Anthropic) and answer 401 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

DEFAULTS = {
    "latency_ms": 0.0,
    "jitter": 0.0,
    "chunk_delay_ms": 0.0,
    "error_rate": 0.0,
    "error_status": 500,
    "retry_after": 1,
    "correctness": 1.0,
    "malformed_rate": 0.0,
    "stall_rate": 0.0,
    "stall_ms": 10000.0,
    "huge_rate": 0.0,
    "huge_bytes": 1 << 20,
    "prompt_tokens": None,
    "completion_tokens": None,
    "tool_call_rate": 1.0,
    "tool_arguments": {},
    "model": None,
    "seed": None,
}
MAX_BODY = 8 << 20
MAX_LOG = 100_000
QUESTION = re.compile(r"what\s+is\s+(-?\d+)\s*\+\s*(-?\d+)", re.IGNORECASE)
TAG = re.compile(r"\btag=([A-Za-z0-9_.:-]{1,64})")


def check(key, value):
    """The value for a behaviour key, or ValueError."""
    if key not in DEFAULTS:
        raise ValueError(f"unknown key {key!r}")
    if key in ("prompt_tokens", "completion_tokens", "model", "seed") and value is None:
        return None
    if key == "model":
        if not isinstance(value, str):
            raise ValueError("model: a string")
        return value
    if key == "tool_arguments":
        if not isinstance(value, dict):
            raise ValueError("tool_arguments: a JSON object")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key}: a number")
    if key.endswith("_rate") or key == "correctness":
        if not 0 <= value <= 1:
            raise ValueError(f"{key}: from 0 to 1")
        return float(value)
    if value < 0:
        raise ValueError(f"{key}: not negative")
    if key == "error_status" and not 400 <= value <= 599:
        raise ValueError("error_status: 400 to 599")
    if key.endswith("_ms") and value > 600_000:
        raise ValueError(f"{key}: at most 600000")
    if key == "huge_bytes" and value > 256 << 20:
        raise ValueError("huge_bytes: at most 268435456")
    if key in ("error_status", "retry_after", "huge_bytes", "prompt_tokens", "completion_tokens", "seed"):
        return int(value)
    return float(value)


class State:
    def __init__(self, name, models, api_key, behaviour):
        self.name, self.models, self.api_key = name, models, api_key
        self.lock = threading.Lock()
        self.behaviour = dict(behaviour)
        self.random = random.Random(behaviour.get("seed"))
        self.queue = deque()
        self.reset()

    def reset(self):
        self.requests = 0
        self.connections = 0
        self.by_path, self.by_status, self.outcomes = {}, {}, {}
        self.right = self.wrong = 0
        self.credentials = set()
        self.log = deque(maxlen=MAX_LOG)

    def control(self, body):
        with self.lock:
            changes = {k: check(k, v) for k, v in body.items() if k not in ("next", "reset")}
            queued = body.get("next", [])
            if not isinstance(queued, list) or not all(isinstance(q, dict) for q in queued):
                raise ValueError("next: a list of objects")
            queued = [{k: check(k, v) for k, v in q.items()} for q in queued]
            if body.get("reset"):
                self.reset()
                self.queue.clear()
            self.behaviour.update(changes)
            if "seed" in changes and changes["seed"] is not None:
                self.random.seed(changes["seed"])
            self.queue.extend(queued)
            return dict(self.behaviour, queued=len(self.queue))

    def plan(self):
        """This request's behaviour and its dice, drawn under the lock (one sequence per seed)."""
        with self.lock:
            b = dict(self.behaviour)
            if self.queue:
                b.update(self.queue.popleft())
            r = self.random
            return b, {
                "error": r.random() < b["error_rate"],
                "malformed": r.random() < b["malformed_rate"],
                "stall": r.random() < b["stall_rate"],
                "huge": r.random() < b["huge_rate"],
                "right": r.random() < b["correctness"],
                "tool": r.random() < b["tool_call_rate"],
                "gauss": r.gauss(0, 1),
                "offset": r.choice([d for d in range(-9, 10) if d]),
                "ids": "%016x" % r.getrandbits(64),
            }

    def record(self, entry):
        with self.lock:
            self.requests += 1
            entry["n"] = self.requests
            self.by_path[entry["path"]] = self.by_path.get(entry["path"], 0) + 1
            key = str(entry["status"])
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.outcomes[entry["outcome"]] = self.outcomes.get(entry["outcome"], 0) + 1
            if entry.get("right") is True:
                self.right += 1
            elif entry.get("right") is False:
                self.wrong += 1
            self.log.append(entry)


def prompt_text(messages):
    """The last user message's text (string content or its text parts)."""
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def all_text(request):
    parts = [request.get("system")] if isinstance(request.get("system"), str) else []
    for m in request.get("messages") or []:
        if isinstance(m, dict):
            c = m.get("content")
            parts.append(c if isinstance(c, str) else json.dumps(c))
    return " ".join(parts)


def answer_for(text, dice, behaviour):
    """(answer text, right?)."""
    if dice["huge"]:
        return "x" * behaviour["huge_bytes"], None
    q = QUESTION.search(text)
    if q:
        total = int(q.group(1)) + int(q.group(2))
        if dice["right"]:
            return f"The answer is {total}.", True
        return f"The answer is {total + dice['offset']}.", False
    return ("ok", True) if dice["right"] else ("not ok", False)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on the accepted socket (StreamRequestHandler.setup)
    server_version = "model-standin"
    sys_version = ""

    def setup(self):
        super().setup()
        with self.server.state.lock:
            self.server.state.connections += 1

    def log_message(self, *args):
        pass

    # -- plumbing --

    def send(self, status, body, content_type="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_stream(self, events, between, stall_after_first):
        """An SSE reply: Content-Length of the whole, written event by event."""
        body = [e.encode() for e in events]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(sum(len(b) for b in body)))
        self.end_headers()
        self.wfile.flush()
        for i, chunk in enumerate(body):
            if i > 0:
                if i == 1 and stall_after_first:
                    time.sleep(stall_after_first)
                elif between:
                    time.sleep(between)
            self.wfile.write(chunk)
            self.wfile.flush()

    def read_json(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = self.read_chunked()
        else:
            n = int(length or 0)
            if n > MAX_BODY:
                raise OverflowError
            data = self.rfile.read(n)
        return json.loads(data or b"null")

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline(100)
                return data
            if len(data) + size > MAX_BODY:
                raise OverflowError
            data += self.rfile.read(size)
            self.rfile.readline(100)

    # -- routes --

    def do_GET(self):
        url = urlparse(self.path)
        st = self.server.state
        if url.path == "/health":
            self.send(200, {"status": "ok"})
        elif url.path == "/v1/models":
            self.send(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": st.name} for m in st.models]})
        elif url.path == "/stats":
            with st.lock:
                self.send(200, {
                    "name": st.name, "requests": st.requests, "connections": st.connections,
                    "by_path": st.by_path, "by_status": st.by_status, "outcomes": st.outcomes,
                    "right": st.right, "wrong": st.wrong, "credentials": sorted(st.credentials),
                    "behaviour": st.behaviour, "queued": len(st.queue)})
        elif url.path == "/log":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            with st.lock:
                entries = [e for e in st.log if e["n"] > since]
            self.send(200, {"name": st.name, "entries": entries})
        else:
            self.send(404, {"error": {"message": f"no route {url.path}", "type": "invalid_request_error", "param": None, "code": None}})

    def do_POST(self):
        url = urlparse(self.path)
        anthropic = url.path == "/v1/messages"
        try:
            request = self.read_json()
        except OverflowError:
            self.close_connection = True
            return self.error(413, "request too large", anthropic)
        except (ValueError, UnicodeDecodeError):
            return self.error(400, "the body is not JSON", anthropic)
        if url.path == "/control":
            if not isinstance(request, dict):
                return self.send(400, {"error": "a JSON object"})
            try:
                return self.send(200, self.server.state.control(request))
            except ValueError as e:
                return self.send(400, {"error": str(e)})
        if url.path not in ("/v1/chat/completions", "/v1/messages"):
            return self.error(404, f"no route {url.path}", anthropic)
        started = time.monotonic()
        st = self.server.state
        entry = {"path": url.path, "model": None, "tag": None, "stream": False, "status": 200, "outcome": "ok", "right": None}
        try:
            credential = self.headers.get("x-api-key") if anthropic else (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if credential:
                with st.lock:
                    if len(st.credentials) < 64:
                        st.credentials.add(credential)
            if st.api_key is not None and credential != st.api_key:
                entry.update(status=401, outcome="unauthorized")
                return self.error(401, "invalid api key", anthropic)
            if not isinstance(request, dict) or not isinstance(request.get("messages"), list) or not isinstance(request.get("model"), str):
                entry.update(status=400, outcome="bad request")
                return self.error(400, "model and messages are required", anthropic)
            if anthropic and not isinstance(request.get("max_tokens"), int):
                entry.update(status=400, outcome="bad request")
                return self.error(400, "max_tokens: Field required", anthropic)
            text = prompt_text(request["messages"])
            tag = TAG.search(text)
            entry.update(model=request["model"], tag=tag.group(1) if tag else None, stream=bool(request.get("stream")))
            b, dice = st.plan()
            delay = b["latency_ms"] * math.exp(b["jitter"] * dice["gauss"]) / 1000
            stream = bool(request.get("stream"))
            if dice["stall"] and not stream:
                delay += b["stall_ms"] / 1000
            if dice["error"]:
                time.sleep(delay)
                entry.update(status=b["error_status"], outcome="error")
                return self.error(b["error_status"], "scripted failure", anthropic, b["retry_after"])
            answer, right = answer_for(text, dice, b)
            tools = request.get("tools") if isinstance(request.get("tools"), list) and request.get("tools") else None
            call = None
            if tools and dice["tool"]:
                first = tools[0] if isinstance(tools[0], dict) else {}
                name = first.get("name") if anthropic else (first.get("function") or {}).get("name")
                call = {"id": ("toolu_" if anthropic else "call_") + dice["ids"], "name": name or "tool", "arguments": b["tool_arguments"]}
                right = None
            entry["right"] = right
            model = b["model"] or request["model"]
            usage = (b["prompt_tokens"] if b["prompt_tokens"] is not None else max(1, len(all_text(request)) // 4),
                     b["completion_tokens"] if b["completion_tokens"] is not None else max(1, len(answer) // 4))
            if dice["malformed"]:
                entry["outcome"] = "malformed"
            elif dice["stall"]:
                entry["outcome"] = "stall"
            elif dice["huge"]:
                entry["outcome"] = "huge"
            elif call:
                entry["outcome"] = "tool call"
            if stream:
                build = self.anthropic_events if anthropic else self.openai_events
                events = build(request, model, dice["ids"], answer, call, usage)
                if dice["malformed"]:
                    events.insert(1, "data: {\"id\": \"broken\", \"choices\": [\n\n" if not anthropic else
                                  "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \n\n")
                time.sleep(delay)
                self.send_stream(events, b["chunk_delay_ms"] / 1000, b["stall_ms"] / 1000 if dice["stall"] else 0)
            else:
                body = (self.anthropic_body if anthropic else self.openai_body)(model, dice["ids"], answer, call, usage)
                body = json.dumps(body).encode()
                if dice["malformed"]:
                    body = body[: max(1, len(body) // 2)]
                time.sleep(delay)
                self.send(200, body)
        except (BrokenPipeError, ConnectionResetError):
            entry["outcome"] = "client gone"
            self.close_connection = True
        finally:
            entry["ms"] = round((time.monotonic() - started) * 1000, 3)
            st.record(entry)

    def error(self, status, message, anthropic, retry_after=None):
        headers = [("retry-after", str(retry_after))] if retry_after is not None and status in (429, 503, 529) else []
        if anthropic:
            kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_standin"}
        else:
            kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                    429: "rate_limit_exceeded"}.get(status, "server_error")
            code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self.send(status, body, headers=headers)

    # -- OpenAI --

    @staticmethod
    def openai_usage(usage):
        return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1]}

    def openai_body(self, model, ids, answer, call, usage):
        message = {"role": "assistant", "content": answer, "refusal": None}
        finish = "stop"
        if call:
            message["content"] = None
            message["tool_calls"] = [{"id": call["id"], "type": "function",
                                      "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]
            finish = "tool_calls"
        return {"id": "chatcmpl-" + ids, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": self.openai_usage(usage), "system_fingerprint": "standin"}

    def openai_events(self, request, model, ids, answer, call, usage):
        created = int(time.time())
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish=None):
            body = {"id": "chatcmpl-" + ids, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                body["usage"] = None
            return "data: " + json.dumps(body) + "\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        if call:
            arguments = json.dumps(call["arguments"])
            events.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                 "function": {"name": call["name"], "arguments": ""}}]}))
            for i in range(0, len(arguments), 8):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:i + 8]}}]}))
            events.append(chunk({}, "tool_calls"))
        else:
            for piece in pieces(answer):
                events.append(chunk({"content": piece}))
            events.append(chunk({}, "stop"))
        if include_usage:
            events.append("data: " + json.dumps({"id": "chatcmpl-" + ids, "object": "chat.completion.chunk", "created": created,
                                                 "model": model, "choices": [], "usage": self.openai_usage(usage)}) + "\n\n")
        events.append("data: [DONE]\n\n")
        return events

    # -- Anthropic --

    def anthropic_body(self, model, ids, answer, call, usage):
        content = [{"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["arguments"]}] if call else [{"type": "text", "text": answer}]
        return {"id": "msg_" + ids, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}

    def anthropic_events(self, request, model, ids, answer, call, usage):
        def event(name, body):
            return f"event: {name}\ndata: {json.dumps(body)}\n\n"

        events = [event("message_start", {"type": "message_start", "message": {
            "id": "msg_" + ids, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage[0], "output_tokens": 1}}})]
        if call:
            events.append(event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}}))
            events.append(event("ping", {"type": "ping"}))
            arguments = json.dumps(call["arguments"])
            for i in range(0, len(arguments), 8):
                events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                            "delta": {"type": "input_json_delta", "partial_json": arguments[i:i + 8]}}))
        else:
            events.append(event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
            events.append(event("ping", {"type": "ping"}))
            for piece in pieces(answer):
                events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                            "delta": {"type": "text_delta", "text": piece}}))
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use" if call else "end_turn",
                                                                                  "stop_sequence": None}, "usage": {"output_tokens": usage[1]}}))
        events.append(event("message_stop", {"type": "message_stop"}))
        return events


def pieces(text, size=16384):
    """The answer split into stream deltas: by words when short, by size when huge."""
    if len(text) > size:
        return [text[i:i + size] for i in range(0, len(text), size)]
    words = re.findall(r"\S+\s*", text)
    return words or [text]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description="A scripted stand-in for hosted model APIs (OpenAI and Anthropic wire formats).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="standin")
    parser.add_argument("--models", default=None, help="comma-separated ids for /v1/models (default: --name)")
    parser.add_argument("--api-key", default=None)
    for key, value in DEFAULTS.items():
        kind = {"tool_arguments": json.loads, "model": str, "prompt_tokens": int, "completion_tokens": int, "seed": int}.get(
            key, float if isinstance(value, float) else int)
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=value)
    args = parser.parse_args()
    behaviour = {}
    for key in DEFAULTS:
        try:
            behaviour[key] = check(key, getattr(args, key))
        except ValueError as e:
            parser.error(str(e))
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    Server.address_family = family
    server = Server((args.host, args.port), Handler)
    server.state = State(args.name, (args.models or args.name).split(","), args.api_key, behaviour)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


def stop(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, stop)
    # A parent that blocks SIGTERM (a test runner, a daemon) passes the mask on: unblocked here,
    # or "serves until SIGTERM" would be never.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    main()
