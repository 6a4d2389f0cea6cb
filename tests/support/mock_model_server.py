#!/usr/bin/env python3
"""A scripted mock model server speaking the Anthropic Messages and OpenAI chat wire formats.

Used by the model proxy tests and the agent tests. Python 3 standard library only.

Usage:
    mock_model_server.py --port 0 --port-file F [--script S.json] [--log L.jsonl]
                         [--require-key KEY] [--model NAME] [--verbose]

It listens on 127.0.0.1 (--port 0 picks a free port; the chosen port is written to
--port-file, atomically, once the server accepts connections) and answers:

    POST /v1/messages           Anthropic Messages shape
    POST /v1/chat/completions   OpenAI chat completions shape
    GET  /v1/models             Anthropic shape when the request has an anthropic-version
                                header, OpenAI shape otherwise

Both POST endpoints honour "stream": true with server-sent events as the real APIs send them
(chunked transfer encoding):
    Anthropic: message_start, ping, content_block_start / content_block_delta /
               content_block_stop per block, message_delta (stop_reason, usage), message_stop.
    OpenAI:    chat.completion.chunk objects with deltas (role, content, tool_calls), a final
               chunk with finish_reason, a usage chunk (empty choices) when the request sets
               stream_options.include_usage, then "data: [DONE]".

Usage numbers are realistic by default: input tokens ~ request characters / 4, output tokens
~ answer characters / 4 (at least 1 each).

--require-key KEY: requests without that key (x-api-key for /v1/messages, "Authorization:
Bearer" for the others) get 401 in the provider's error shape.

The script (--script) is a JSON list of entries, consumed in order by the POST requests of
both endpoints together; once exhausted, the last entry repeats. Without a script every
answer echoes the last user message: "echo: <text>". Each entry is an object:

    {"text": "Hello"}                       a text answer
    {"tool_use": {"name": "send_message", "input": {"text": "hi"}, "id": "toolu_1"}}
                                            a tool call (also a list of them; "id" optional;
                                            "text" may come along as a preface)
    {"error": {"status": 529, "body": {...} or "text", "retry_after": 3}}
                                            an error status; without "body", an error in the
                                            provider's shape ("message" and "type" optional)
    {"delay": 1.5}                          alone: the echo answer after 1.5 s
    {"drop": true}                          closes the connection without answering

    "repeat_until_file": "/path"            on any entry: it answers every request until the
                                            file exists (an outage of a chosen length), and
                                            only then does the script move on

Optional fields of an answer entry:
    "delay": seconds        wait before sending the response headers
    "event_delay": seconds  wait between SSE events
    "hold": {"after_events": 2, "until_file": "/path", "timeout": 30}
                            streaming: after that many events, wait until the file exists
                            (or the timeout passes) before sending the rest. The log then
                            gets a line {"kind": "hold", "result": "released" | "timed_out"}.
    "drop_after_events": N  streaming: close the connection abruptly after N events
    "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0}
                            replaces the computed numbers (OpenAI: prompt_tokens =
                            input + cache fields, completion_tokens = output)
    "model": "name"         the model named in the response (default: the request's)
    "stop_reason": "end_turn" | "tool_use" | "max_tokens"
                            (OpenAI: stop | tool_calls | length); default from the content

The log (--log) gets one JSON line per request, written before the answer:
    {"kind": "request", "method": "POST", "path": "/v1/messages",
     "headers": {"lower-case-name": "value", ...}, "body": <JSON or null>,
     "raw_body": "<only when the body is not JSON>", "entry": <script index or null>,
     "t": <time.time() when the request had been read>}
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20
REASONS = {529: "Overloaded"}  # statuses http.server has no phrase for


class Script:
    def __init__(self, entries):
        self.entries = entries
        self.next = 0
        self.lock = threading.Lock()

    def take(self):
        """The next entry and its index, or (None, None) without a script."""
        with self.lock:
            if not self.entries:
                return None, None
            index = min(self.next, len(self.entries) - 1)
            entry = self.entries[index]
            until = entry.get("repeat_until_file") if isinstance(entry, dict) else None
            if not until or os.path.exists(until):
                self.next += 1
            return entry, index


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, record):
        if not self.path:
            return
        line = json.dumps(record, sort_keys=True)
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


def estimate_tokens(text):
    return max(1, len(text) // 4)


def words(text):
    """Splits text into pieces the way streamed deltas arrive: a word and its spaces."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]


def last_user_text(body, provider):
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [b.get("text", "") for b in content
                     if isinstance(b, dict) and b.get("type") == "text"]
            if texts:
                return "\n".join(texts)
            results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if results:
                return "tool result received"
        return ""
    return ""


class Answer:
    """What one POST answers, in provider-neutral form."""

    def __init__(self, entry, body, provider, default_model):
        entry = entry or {}
        self.entry = entry
        self.provider = provider
        self.model = entry.get("model") or body.get("model") or default_model
        tool_use = entry.get("tool_use")
        if isinstance(tool_use, dict):
            tool_use = [tool_use]
        self.tools = []
        for i, call in enumerate(tool_use or []):
            prefix = "toolu_" if provider == "anthropic" else "call_"
            self.tools.append({
                "id": call.get("id") or f"{prefix}{uuid.uuid4().hex[:20]}",
                "name": call.get("name", "tool"),
                "input": call.get("input", {}),
            })
        if "text" in entry:
            self.text = entry["text"]
        elif self.tools:
            self.text = None
        else:
            self.text = "echo: " + last_user_text(body, provider)
        stop = entry.get("stop_reason") or ("tool_use" if self.tools else "end_turn")
        self.stop_reason = stop
        self.finish_reason = {"end_turn": "stop", "tool_use": "tool_calls",
                              "max_tokens": "length"}.get(stop, stop)

        request_text = json.dumps([body.get("system"), body.get("messages"), body.get("tools")])
        answer_text = (self.text or "") + "".join(json.dumps(t["input"]) for t in self.tools)
        usage = entry.get("usage") or {}
        self.input_tokens = usage.get("input_tokens", estimate_tokens(request_text))
        self.output_tokens = usage.get("output_tokens", estimate_tokens(answer_text))
        self.cache_creation = usage.get("cache_creation_input_tokens", 0)
        self.cache_read = usage.get("cache_read_input_tokens", 0)

    # Anthropic ------------------------------------------------------------------------------

    def anthropic_usage(self, output_tokens):
        return {"input_tokens": self.input_tokens,
                "cache_creation_input_tokens": self.cache_creation,
                "cache_read_input_tokens": self.cache_read,
                "output_tokens": output_tokens}

    def anthropic_blocks(self):
        blocks = []
        if self.text is not None:
            blocks.append({"type": "text", "text": self.text})
        for t in self.tools:
            blocks.append({"type": "tool_use", "id": t["id"], "name": t["name"],
                           "input": t["input"]})
        return blocks

    def anthropic_message(self):
        return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
                "model": self.model, "content": self.anthropic_blocks(),
                "stop_reason": self.stop_reason, "stop_sequence": None,
                "usage": self.anthropic_usage(self.output_tokens)}

    def anthropic_events(self):
        message = self.anthropic_message()
        start = dict(message, content=[], stop_reason=None, usage=self.anthropic_usage(1))
        yield "message_start", {"type": "message_start", "message": start}
        yield "ping", {"type": "ping"}
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield "content_block_start", {"type": "content_block_start", "index": index,
                                              "content_block": {"type": "text", "text": ""}}
                for piece in words(block["text"]):
                    yield "content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": piece}}
            else:
                yield "content_block_start", {
                    "type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"],
                                      "name": block["name"], "input": {}}}
                arguments = json.dumps(block["input"])
                for i in range(0, len(arguments), 16):
                    yield "content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta",
                                  "partial_json": arguments[i:i + 16]}}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield "message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": self.stop_reason,
                                          "stop_sequence": None},
                                "usage": {"output_tokens": self.output_tokens}}
        yield "message_stop", {"type": "message_stop"}

    # OpenAI ---------------------------------------------------------------------------------

    def openai_usage(self):
        prompt = self.input_tokens + self.cache_creation + self.cache_read
        return {"prompt_tokens": prompt, "completion_tokens": self.output_tokens,
                "total_tokens": prompt + self.output_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cache_read}}

    def openai_tool_calls(self):
        return [{"id": t["id"], "type": "function",
                 "function": {"name": t["name"], "arguments": json.dumps(t["input"])}}
                for t in self.tools]

    def openai_completion(self):
        message = {"role": "assistant", "content": self.text}
        if self.tools:
            message["tool_calls"] = self.openai_tool_calls()
        return {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion",
                "created": int(time.time()), "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": self.finish_reason}],
                "usage": self.openai_usage()}

    def openai_events(self, include_usage):
        base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.model}

        def chunk(delta, finish_reason=None):
            c = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish_reason}])
            if include_usage:
                c["usage"] = None
            return c

        yield None, chunk({"role": "assistant", "content": ""})
        if self.text is not None:
            for piece in words(self.text):
                yield None, chunk({"content": piece})
        for index, call in enumerate(self.openai_tool_calls()):
            yield None, chunk({"tool_calls": [{
                "index": index, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}]})
            arguments = call["function"]["arguments"]
            for i in range(0, len(arguments), 16):
                yield None, chunk({"tool_calls": [{
                    "index": index, "function": {"arguments": arguments[i:i + 16]}}]})
        yield None, chunk({}, self.finish_reason)
        if include_usage:
            yield None, dict(base, choices=[], usage=self.openai_usage())
        yield None, "[DONE]"


def error_body(provider, status, message, error_type=None):
    if provider == "anthropic":
        default_type = {400: "invalid_request_error", 401: "authentication_error",
                        403: "permission_error", 404: "not_found_error",
                        413: "request_too_large", 429: "rate_limit_error",
                        529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": error_type or default_type,
                                           "message": message}}
    default_type = {400: "invalid_request_error", 401: "invalid_request_error",
                    429: "rate_limit_exceeded"}.get(status, "server_error")
    return {"error": {"message": message, "type": error_type or default_type, "param": None,
                      "code": None}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-model-server/1"

    # Plumbing -------------------------------------------------------------------------------

    def log_message(self, fmt, *args):
        if self.server.options.verbose:
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    raise ValueError("body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status, REASONS.get(status))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def provider(self):
        return "anthropic" if self.path.split("?")[0] == "/v1/messages" else "openai"

    def record(self, body, raw, index):
        record = {"kind": "request", "t": time.time(), "method": self.command,
                  "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                  "body": body, "entry": index}
        if body is None and raw:
            record["raw_body"] = raw.decode("utf-8", "replace")
        self.server.log.write(record)

    # Requests -------------------------------------------------------------------------------

    def do_GET(self):
        self.record(None, b"", None)
        if self.path.split("?")[0] != "/v1/models":
            self.send_json(404, error_body(self.provider(), 404, f"no route {self.path}"))
            return
        anthropic = "anthropic-version" in self.headers
        provider = "anthropic" if anthropic else "openai"
        if not self.key_ok_for(provider):
            self.send_json(401, error_body(provider, 401, "invalid x-api-key"))
            return
        model = self.server.options.model
        if anthropic:
            self.send_json(200, {"data": [{"type": "model", "id": model, "display_name": model,
                                           "created_at": "2025-01-01T00:00:00Z"}],
                                 "has_more": False, "first_id": model, "last_id": model})
        else:
            self.send_json(200, {"object": "list", "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "mock"}]})

    def key_ok_for(self, provider):
        required = self.server.options.require_key
        if not required:
            return True
        if provider == "anthropic":
            return self.headers.get("x-api-key") == required
        return self.headers.get("Authorization") == "Bearer " + required

    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            raw = self.read_body()
        except ValueError:
            self.close_connection = True
            self.send_json(413, error_body(self.provider(), 413, "request body too large"))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if path not in ("/v1/messages", "/v1/chat/completions"):
            self.record(body, raw, None)
            self.send_json(404, error_body(self.provider(), 404, f"no route {self.path}"))
            return
        provider = self.provider()
        if not self.key_ok_for(provider):
            self.record(body, raw, None)
            self.send_json(401, error_body(provider, 401, "invalid API key"))
            return
        if not isinstance(body, dict):
            self.record(body, raw, None)
            self.send_json(400, error_body(provider, 400, "the body must be a JSON object"))
            return
        entry, index = self.server.script.take()
        self.record(body, raw, index)
        entry = entry or {}
        if entry.get("delay"):
            time.sleep(float(entry["delay"]))
        if entry.get("drop"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "error" in entry:
            self.answer_error(provider, entry["error"])
            return
        answer = Answer(entry, body, provider, self.server.options.model)
        if body.get("stream") is True:
            self.answer_stream(provider, answer, entry, body)
        elif provider == "anthropic":
            self.send_json(200, answer.anthropic_message(), {"request-id": "req_mock"})
        else:
            self.send_json(200, answer.openai_completion())

    def answer_error(self, provider, error):
        status = int(error.get("status", 500))
        body = error.get("body")
        if body is None:
            body = error_body(provider, status, error.get("message", f"mock error {status}"),
                              error.get("type"))
        headers = {}
        if "retry_after" in error:
            headers["Retry-After"] = str(error["retry_after"])
        if isinstance(body, str):
            data = body.encode()
            self.send_response(status, REASONS.get(status))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        else:
            self.send_json(status, body, headers)

    def answer_stream(self, provider, answer, entry, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if provider == "anthropic":
            events = answer.anthropic_events()
        else:
            options = body.get("stream_options") or {}
            events = answer.openai_events(bool(options.get("include_usage")))
        hold = entry.get("hold") or {}
        drop_after = entry.get("drop_after_events")
        event_delay = float(entry.get("event_delay") or 0)
        sent = 0
        for name, data in events:
            if sent and event_delay:
                time.sleep(event_delay)
            if hold and sent == hold.get("after_events", 1):
                self.wait_for_release(hold)
            payload = data if isinstance(data, str) else json.dumps(data)
            text = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
            self.write_chunk(text.encode())
            sent += 1
            if drop_after is not None and sent >= int(drop_after):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def wait_for_release(self, hold):
        path = hold.get("until_file")
        deadline = time.monotonic() + float(hold.get("timeout", 30))
        result = "timed_out"
        while time.monotonic() < deadline:
            if path and os.path.exists(path):
                result = "released"
                break
            time.sleep(0.01)
        self.server.log.write({"kind": "hold", "result": result})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--script")
    parser.add_argument("--log")
    parser.add_argument("--require-key")
    parser.add_argument("--model", default="mock-model")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args()

    entries = []
    if options.script:
        with open(options.script, encoding="utf-8") as f:
            entries = json.load(f)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            sys.exit(f"{options.script}: the script must be a JSON list of objects")

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.options = options
    server.script = Script(entries)
    server.log = Log(options.log)
    port = server.server_address[1]
    if options.port_file:
        temporary = options.port_file + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(temporary, options.port_file)
    if options.verbose:
        sys.stderr.write(f"mock: listening on 127.0.0.1:{port}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
