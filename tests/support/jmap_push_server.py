#!/usr/bin/python3
"""A scripted JMAP server (RFC 8620 core, RFC 8621 mail) for the receiver tests, with the
event-source push that Debian's Cyrus lacks. Standard library only; run it with
/usr/bin/python3.

Usage:
    jmap_push_server.py --port 0 --port-file F [--user U --password P] [--account ID]

It listens on 127.0.0.1 (--port 0 picks a free port; the port is written to --port-file,
atomically and with a trailing newline, once it accepts connections) and logs to stderr.

What it serves (Basic authentication with --user/--password is required when given):
    GET  /.well-known/jmap             301 to /jmap/session
    GET  /jmap/session                 the session; apiUrl, downloadUrl, uploadUrl and
                                       eventSourceUrl are relative
    POST /jmap/api/                    Mailbox/get, Identity/get, Email/query, Email/get,
                                       Email/changes, Email/set (update and destroy), with
                                       result references (#ids)
    GET  /jmap/download/{acct}/{blob}/{name}   the raw message
    GET  /jmap/eventsource/?types=&closeafter=&ping=
        text/event-stream, chunked: "event: state" with "id: e<n>" and
        data {"@type":"StateChange","changed":{"<acct>":{"Email":"s<n>","EmailDelivery":…}}};
        "event: ping" every ping seconds (data {"interval": N}). On connect a state event
        is sent unless Last-Event-ID names the current state. closeafter=state closes the
        stream after the first state event.
Email states are "s<n>", advanced by every change; Email/changes answers
cannotCalculateChanges for a state older than the last /_control/forget-changes.

Control interface for the test (no authentication):
    POST /_control/deliver[?mailbox=inbox|sent|drafts&seen=1]   body: the raw message
        adds an email, advances the state, pushes; answers {"id", "state"}
    POST /_control/drop-streams        cuts every open event stream; {"dropped": n}
    POST /_control/forget-changes      Email/changes from any state before now fails
    POST /_control/pause-push?on=1|0   while on, changes are not pushed (streams stay open)
    GET  /_control/log                 {"entries": [...]}: one per request, in order, with
        "kind" (session, api, download, stream, stream-end, auth-failed), "path",
        "calls" (method names, api), "last_event_id" and "query" (stream)
    GET  /_control/emails              every email with id, mailbox roles, keywords,
                                       messageId
"""

import argparse
import base64
import copy
import ctypes
import email
import email.policy
import email.utils
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("jmap_push_server")

MAX_BODY = 32 * 1024 * 1024
MAILBOXES = [
    ("mb-inbox", "Inbox", "inbox"),
    ("mb-drafts", "Drafts", "drafts"),
    ("mb-sent", "Sent", "sent"),
    ("mb-trash", "Trash", "trash"),
]
ROLE_TO_ID = {role: mid for mid, _, role in MAILBOXES}
ID_TO_ROLE = {mid: role for mid, _, role in MAILBOXES}


class MethodError(Exception):
    def __init__(self, kind, description=""):
        super().__init__(kind)
        self.kind = kind
        self.description = description


def addresses(value):
    if value is None:
        return None
    return [{"name": name or None, "email": addr}
            for name, addr in email.utils.getaddresses([str(value)])]


def message_ids(value):
    if value is None:
        return None
    ids = [part.strip().strip("<>") for part in str(value).replace(",", " ").split()]
    return [i for i in ids if i] or None


class Store:
    """The account's emails and their change log; every method holds the lock."""

    def __init__(self, account):
        self.account = account
        self.lock = threading.Condition()
        self.emails = {}  # id -> dict
        self.state = 0
        self.changes = []  # (state, id, "created"|"updated"|"destroyed")
        self.min_valid_state = 0
        self.next_id = 1
        self.push_paused = False
        self.log = []

    def state_string(self):
        return f"s{self.state}"

    def record(self, entry):
        entry["t"] = time.time()
        with self.lock:
            self.log.append(entry)

    def add(self, raw, mailbox_role, seen):
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            eid = f"M{self.next_id:04d}"
            self.next_id += 1
            self.state += 1
            self.emails[eid] = {
                "id": eid,
                "blobId": f"B{eid}",
                "threadId": f"T{eid}",
                "raw": raw,
                "parsed": parsed,
                "mailboxIds": {ROLE_TO_ID[mailbox_role]: True},
                "keywords": {"$seen": True} if seen else {},
                "receivedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "order": self.next_id,
            }
            self.changes.append((self.state, eid, "created"))
            self.lock.notify_all()
            return eid, self.state_string()

    def update(self, eid, patch):
        target = self.emails.get(eid)
        if target is None:
            return {"type": "notFound"}
        new = {"keywords": dict(target["keywords"]), "mailboxIds": dict(target["mailboxIds"])}
        for path, value in patch.items():
            head, _, rest = path.partition("/")
            if head not in ("keywords", "mailboxIds"):
                return {"type": "invalidProperties", "properties": [path]}
            if rest:
                rest = rest.replace("~1", "/").replace("~0", "~")
                if value is None or value is False:
                    new[head].pop(rest, None)
                elif value is True:
                    new[head][rest] = True
                else:
                    return {"type": "invalidProperties", "properties": [path]}
            elif isinstance(value, dict):
                new[head] = {k: True for k, v in value.items() if v is True}
            else:
                return {"type": "invalidProperties", "properties": [path]}
        if not new["mailboxIds"]:
            return {"type": "invalidProperties", "properties": ["mailboxIds"]}
        target["keywords"] = new["keywords"]
        target["mailboxIds"] = new["mailboxIds"]
        self.state += 1
        self.changes.append((self.state, eid, "updated"))
        self.lock.notify_all()
        return None

    def destroy(self, eid):
        if self.emails.pop(eid, None) is None:
            return {"type": "notFound"}
        self.state += 1
        self.changes.append((self.state, eid, "destroyed"))
        self.lock.notify_all()
        return None


def email_property(e, prop):
    parsed = e["parsed"]
    if prop in ("id", "blobId", "threadId", "mailboxIds", "keywords", "receivedAt"):
        return copy.deepcopy(e[prop])
    if prop == "size":
        return len(e["raw"])
    if prop == "subject":
        return parsed.get("Subject")
    if prop in ("from", "to", "cc", "replyTo", "sender"):
        header = {"replyTo": "Reply-To"}.get(prop, prop.capitalize())
        return addresses(parsed.get(header))
    if prop == "messageId":
        return message_ids(parsed.get("Message-ID"))
    if prop == "inReplyTo":
        return message_ids(parsed.get("In-Reply-To"))
    if prop == "references":
        return message_ids(parsed.get("References"))
    if prop == "sentAt":
        return parsed.get("Date")
    if prop.startswith("header:"):
        parts = prop.split(":")
        value = parsed.get(parts[1])
        form = parts[2] if len(parts) > 2 else "raw"
        if value is None:
            return None
        if form == "asMessageIds":
            return message_ids(value)
        if form == "asAddresses":
            return addresses(value)
        return str(value)
    return None


DEFAULT_EMAIL_PROPERTIES = ["id", "blobId", "threadId", "mailboxIds", "keywords", "size",
                            "receivedAt", "messageId", "inReplyTo", "references", "subject",
                            "from", "to", "cc"]


def json_pointer(value, path):
    """RFC 6901 with the "*" extension of RFC 8620 3.7 (maps over arrays, flattening)."""
    if path in ("", "/"):
        return value
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]

    def walk(v, i):
        if i == len(parts):
            return v
        p = parts[i]
        if isinstance(v, list):
            if p == "*":
                out = []
                for item in v:
                    r = walk(item, i + 1)
                    out.extend(r if isinstance(r, list) else [r])
                return out
            return walk(v[int(p)], i + 1)
        if isinstance(v, dict) and p in v:
            return walk(v[p], i + 1)
        raise MethodError("invalidResultReference", f"no {path}")

    return walk(value, 0)


class Api:
    def __init__(self, store):
        self.store = store

    def run(self, request):
        responses = []
        for call in request.get("methodCalls", []):
            name, args, call_id = call
            try:
                args = self.resolve(args, responses)
                if args.get("accountId") != self.store.account:
                    raise MethodError("accountNotFound")
                handler = {
                    "Mailbox/get": self.mailbox_get,
                    "Identity/get": self.identity_get,
                    "Email/query": self.email_query,
                    "Email/get": self.email_get,
                    "Email/changes": self.email_changes,
                    "Email/set": self.email_set,
                }.get(name)
                if handler is None:
                    raise MethodError("unknownMethod", name)
                with self.store.lock:
                    result = handler(args)
                result["accountId"] = self.store.account
                responses.append([name, result, call_id])
            except MethodError as error:
                body = {"type": error.kind}
                if error.description:
                    body["description"] = error.description
                responses.append(["error", body, call_id])
        return {"methodResponses": responses, "sessionState": "sess1"}

    @staticmethod
    def resolve(args, responses):
        out = {}
        for key, value in args.items():
            if key.startswith("#"):
                ref = value
                for name, result, call_id in responses:
                    if call_id == ref.get("resultOf") and name == ref.get("name"):
                        out[key[1:]] = json_pointer(result, ref.get("path", ""))
                        break
                else:
                    raise MethodError("invalidResultReference", json.dumps(ref))
            else:
                out[key] = value
        return out

    def mailbox_get(self, args):
        listed = [{"id": mid, "name": name, "role": role, "parentId": None}
                  for mid, name, role in MAILBOXES]
        ids = args.get("ids")
        if ids is not None:
            listed = [m for m in listed if m["id"] in ids]
        return {"state": "mb1", "list": listed, "notFound": []}

    def identity_get(self, args):
        return {"state": "id1", "notFound": [],
                "list": [{"id": "I1", "name": "", "email": self.store.account}]}

    def matches(self, e, flt):
        if not flt:
            return True
        if "inMailbox" in flt and flt["inMailbox"] not in e["mailboxIds"]:
            return False
        if "notKeyword" in flt and flt["notKeyword"] in e["keywords"]:
            return False
        if "hasKeyword" in flt and flt["hasKeyword"] not in e["keywords"]:
            return False
        if "operator" in flt:
            results = [self.matches(e, c) for c in flt.get("conditions", [])]
            op = flt["operator"]
            return all(results) if op == "AND" else any(results) if op == "OR" else not any(results)
        return True

    def email_query(self, args):
        found = [e for e in self.store.emails.values() if self.matches(e, args.get("filter"))]
        descending = False
        for comparator in args.get("sort") or []:
            if comparator.get("property") == "receivedAt":
                descending = comparator.get("isAscending", True) is False
        found.sort(key=lambda e: (e["receivedAt"], e["order"]), reverse=descending)
        ids = [e["id"] for e in found]
        position = max(0, int(args.get("position", 0)))
        limit = args.get("limit")
        page = ids[position:position + int(limit)] if limit is not None else ids[position:]
        return {"queryState": self.store.state_string(), "canCalculateChanges": False,
                "position": position, "ids": page, "total": len(ids)}

    def email_get(self, args):
        ids = args.get("ids")
        if ids is None:
            ids = list(self.store.emails)
        properties = args.get("properties") or DEFAULT_EMAIL_PROPERTIES
        listed, not_found = [], []
        for eid in ids:
            e = self.store.emails.get(eid)
            if e is None:
                not_found.append(eid)
                continue
            item = {"id": eid}
            for prop in properties:
                item[prop] = email_property(e, prop)
            listed.append(item)
        return {"state": self.store.state_string(), "list": listed, "notFound": not_found}

    def email_changes(self, args):
        since = args.get("sinceState", "")
        if not since.startswith("s") or not since[1:].isdigit():
            raise MethodError("cannotCalculateChanges", f"unknown state {since}")
        since_n = int(since[1:])
        if since_n < self.store.min_valid_state or since_n > self.store.state:
            raise MethodError("cannotCalculateChanges", f"state {since} is too old")
        max_changes = args.get("maxChanges")
        kinds = {}
        new_state = since_n
        has_more = False
        for state, eid, kind in self.store.changes:
            if state <= since_n:
                continue
            if max_changes and eid not in kinds and len(kinds) >= int(max_changes):
                has_more = True
                break
            previous = kinds.get(eid)
            if previous == "created" and kind == "destroyed":
                kinds.pop(eid)
            elif previous != "created":
                kinds[eid] = kind
            new_state = state
        return {"oldState": since, "newState": f"s{new_state}", "hasMoreChanges": has_more,
                "created": [i for i, k in kinds.items() if k == "created"],
                "updated": [i for i, k in kinds.items() if k == "updated"],
                "destroyed": [i for i, k in kinds.items() if k == "destroyed"]}

    def email_set(self, args):
        old = self.store.state_string()
        if args.get("ifInState") not in (None, old):
            raise MethodError("stateMismatch")
        result = {"oldState": old, "created": None, "updated": None, "destroyed": None,
                  "notCreated": None, "notUpdated": None, "notDestroyed": None}
        for cid in args.get("create") or {}:
            result["notCreated"] = result["notCreated"] or {}
            result["notCreated"][cid] = {"type": "forbidden",
                                         "description": "this test server does not create"}
        for eid, patch in (args.get("update") or {}).items():
            error = self.store.update(eid, patch)
            if error:
                result["notUpdated"] = result["notUpdated"] or {}
                result["notUpdated"][eid] = error
            else:
                result["updated"] = result["updated"] or {}
                result["updated"][eid] = None
        for eid in args.get("destroy") or []:
            error = self.store.destroy(eid)
            if error:
                result["notDestroyed"] = result["notDestroyed"] or {}
                result["notDestroyed"][eid] = error
            else:
                result["destroyed"] = (result["destroyed"] or []) + [eid]
        result["newState"] = self.store.state_string()
        return result


class Streams:
    """The open event-source connections, so that the control interface can cut them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = {}  # id -> (socket, dropped flag list)
        self.next = 1

    def add(self, sock):
        with self.lock:
            sid = self.next
            self.next += 1
            self.open[sid] = (sock, [False])
            return sid, self.open[sid][1]

    def remove(self, sid):
        with self.lock:
            self.open.pop(sid, None)

    def drop_all(self):
        with self.lock:
            entries = list(self.open.values())
            self.open.clear()
        for sock, flag in entries:
            flag[0] = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(entries)


def make_handler(store, api, streams, user, password):
    expected_auth = None
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        expected_auth = f"Basic {token}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "jmap-push-test/1"

        def log_message(self, fmt, *args):
            log.info("%s %s", self.client_address[1], fmt % args)

        def send_body(self, status, body, content_type="application/json", headers=()):
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length)

        def authorized(self):
            if expected_auth is None or self.headers.get("Authorization") == expected_auth:
                return True
            store.record({"kind": "auth-failed", "path": self.path})
            self.send_body(401, {"type": "about:blank", "status": 401},
                           headers=[("WWW-Authenticate", 'Basic realm="jmap"')])
            return False

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            if path.startswith("/_control/"):
                return self.control_get(path)
            if path == "/.well-known/jmap":
                return self.send_body(301, b"", headers=[("Location", "/jmap/session")])
            if not self.authorized():
                return None
            if path == "/jmap/session":
                store.record({"kind": "session", "path": self.path})
                return self.send_body(200, self.session())
            if path.startswith("/jmap/download/"):
                return self.download(path)
            if path in ("/jmap/eventsource", "/jmap/eventsource/"):
                return self.event_stream(urllib.parse.parse_qs(url.query))
            return self.send_body(404, {"type": "about:blank", "status": 404})

        def do_POST(self):
            path = urllib.parse.urlsplit(self.path).path
            try:
                body = self.read_body()
            except ValueError:
                return self.send_body(413, {"type": "about:blank", "status": 413})
            if path.startswith("/_control/"):
                return self.control_post(body)
            if not self.authorized():
                return None
            if path != "/jmap/api/":
                return self.send_body(404, {"type": "about:blank", "status": 404})
            try:
                request = json.loads(body)
                calls = [c[0] for c in request.get("methodCalls", [])]
            except (ValueError, TypeError, IndexError, AttributeError):
                return self.send_body(400, {"type": "urn:ietf:params:jmap:error:notRequest",
                                            "status": 400})
            store.record({"kind": "api", "path": path, "calls": calls})
            return self.send_body(200, api.run(request))

        def session(self):
            acct = store.account
            return {
                "capabilities": {
                    "urn:ietf:params:jmap:core": {
                        "maxSizeUpload": 50000000, "maxConcurrentUpload": 4,
                        "maxSizeRequest": 10000000, "maxConcurrentRequests": 4,
                        "maxCallsInRequest": 16, "maxObjectsInGet": 500,
                        "maxObjectsInSet": 500, "collationAlgorithms": []},
                    "urn:ietf:params:jmap:mail": {},
                    "urn:ietf:params:jmap:submission": {},
                },
                "accounts": {acct: {"name": acct, "isPersonal": True, "isReadOnly": False,
                                    "accountCapabilities": {"urn:ietf:params:jmap:mail": {},
                                                            "urn:ietf:params:jmap:submission": {}}}},
                "primaryAccounts": {"urn:ietf:params:jmap:mail": acct,
                                    "urn:ietf:params:jmap:submission": acct},
                "username": acct,
                "apiUrl": "/jmap/api/",
                "downloadUrl": "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
                "uploadUrl": "/jmap/upload/{accountId}/",
                "eventSourceUrl": "/jmap/eventsource/?types={types}&closeafter={closeafter}"
                                  "&ping={ping}",
                "state": "sess1",
            }

        def download(self, path):
            parts = path.split("/")  # "", jmap, download, acct, blob, name
            store.record({"kind": "download", "path": path})
            if len(parts) < 6 or urllib.parse.unquote(parts[3]) != store.account:
                return self.send_body(404, {"type": "about:blank", "status": 404})
            blob = urllib.parse.unquote(parts[4])
            with store.lock:
                found = [e for e in store.emails.values() if e["blobId"] == blob]
            if not found:
                return self.send_body(404, {"type": "about:blank", "status": 404})
            return self.send_body(200, found[0]["raw"], content_type="message/rfc822")

        def write_chunk(self, text):
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def state_event(self, state_n):
            changed = {store.account: {"Email": f"s{state_n}", "EmailDelivery": f"s{state_n}"}}
            data = json.dumps({"@type": "StateChange", "changed": changed})
            return f"event: state\nid: e{state_n}\ndata: {data}\n\n"

        def event_stream(self, query):
            last_event_id = self.headers.get("Last-Event-ID")
            ping = 0
            try:
                ping = max(0, int((query.get("ping") or ["0"])[0]))
            except ValueError:
                pass
            close_after_state = (query.get("closeafter") or ["no"])[0] == "state"
            store.record({"kind": "stream", "path": self.path, "last_event_id": last_event_id,
                          "query": {k: v[0] for k, v in query.items()}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            sid, dropped = streams.add(self.connection)
            try:
                with store.lock:
                    sent = store.state
                    # A first connection, or a reconnect whose Last-Event-ID is behind, learns
                    # the current state at once: changes made while it was away are not lost.
                    initial = None
                    if not store.push_paused and last_event_id != f"e{sent}":
                        initial = self.state_event(sent)
                if initial:
                    self.write_chunk(initial)
                    if close_after_state:
                        self.write_chunk("")
                        return
                next_ping = time.monotonic() + ping if ping else None
                while not dropped[0]:
                    with store.lock:
                        timeout = max(0.0, next_ping - time.monotonic()) if next_ping else 5.0
                        if store.state == sent or store.push_paused:
                            store.lock.wait(timeout)
                        event = None
                        if not store.push_paused and store.state != sent and not dropped[0]:
                            sent = store.state
                            event = self.state_event(sent)
                    if dropped[0]:
                        break
                    if event:
                        self.write_chunk(event)
                        if close_after_state:
                            self.write_chunk("")
                            return
                    if next_ping and time.monotonic() >= next_ping:
                        self.write_chunk(f"event: ping\ndata: {json.dumps({'interval': ping})}\n\n")
                        next_ping = time.monotonic() + ping
            except OSError:
                pass
            finally:
                streams.remove(sid)
                store.record({"kind": "stream-end", "path": self.path})

        def control_get(self, path):
            if path == "/_control/log":
                with store.lock:
                    return self.send_body(200, {"entries": list(store.log)})
            if path == "/_control/emails":
                with store.lock:
                    listed = [{"id": e["id"],
                               "mailboxes": [ID_TO_ROLE.get(m, m) for m in e["mailboxIds"]],
                               "keywords": e["keywords"],
                               "messageId": email_property(e, "messageId")}
                              for e in store.emails.values()]
                return self.send_body(200, {"emails": listed, "state": store.state_string()})
            return self.send_body(404, {"error": "unknown control"})

        def control_post(self, body):
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path == "/_control/deliver":
                role = query.get("mailbox", "inbox")
                if role not in ROLE_TO_ID:
                    return self.send_body(400, {"error": f"no mailbox with role {role}"})
                eid, state = store.add(body, role, query.get("seen") == "1")
                log.info("delivered %s (%s) into %s", eid, state, role)
                return self.send_body(200, {"id": eid, "state": state})
            if url.path == "/_control/drop-streams":
                return self.send_body(200, {"dropped": streams.drop_all()})
            if url.path == "/_control/forget-changes":
                with store.lock:
                    store.min_valid_state = store.state
                return self.send_body(200, {"min_valid_state": store.state_string()})
            if url.path == "/_control/pause-push":
                with store.lock:
                    store.push_paused = query.get("on", "1") == "1"
                    store.lock.notify_all()
                return self.send_body(200, {"paused": store.push_paused})
            return self.send_body(404, {"error": "unknown control"})

    return Handler


def write_port_file(path, port):
    with open(path + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.replace(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser(description="scripted JMAP server with push, for tests")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password", default="")
    parser.add_argument("--account", default="bot@example.org")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s jmap_push_server %(levelname)s %(message)s")

    # Die with the test that started us, even when it crashes (PR_SET_PDEATHSIG).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

    store = Store(args.account)
    streams = Streams()
    handler = make_handler(store, Api(store), streams, args.user, args.password)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    log.info("listening on 127.0.0.1:%d", port)
    write_port_file(args.port_file, port)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
