#!/usr/bin/python3
"""Reference peer for bench/api_bench.sh: the seed's message-store API, reimplemented small.

The seed's email layer ("Telepathy", described in telepathy-port-status.txt) serves its
message store with FastAPI under uvicorn (one process, port 8114). Its data is
messages.jsonl, one JSON object per line with the fields id, timestamp, source, subject,
content, read; the file is loaded into memory, and every new message is appended to both the
file and the in-memory list. This file rebuilds that API as the seed describes it, so that
switchboard's figures can be put side by side with the stack it replaces:

    POST /messages              store a message: append a line to messages.jsonl (no fsync,
                                as the seed) and to the in-memory list; 201 with the message
    GET  /messages?limit=&unread=
                                the newest `limit` messages (default 50), newest first;
                                unread=true keeps only unread ones
    GET  /messages/unread       the unread messages, newest first
    POST /messages/{id}/read    mark one read (rewrites messages.jsonl)
    GET  /health                status with total and unread counts

POST /email (sending through Fastmail's JMAP API) is left out: the benchmark does not use it.
Access logging is off (uvicorn logs every request by default), so the reference is not
slowed down by its log.

Run with Debian's python3-fastapi and python3-uvicorn:
    /usr/bin/python3 bench/reference/telepathy_app.py --data-dir DIR --port PORT
"""

import argparse
import json
import os
import uuid
from datetime import datetime, timezone
from typing import List, Optional

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MESSAGES_FILE = "messages.jsonl"

app = FastAPI(title="telepathy (reference)")
messages: List[dict] = []
messages_path = MESSAGES_FILE


class MessageIn(BaseModel):
    source: str
    content: str
    subject: Optional[str] = None


def load_messages(path: str) -> List[dict]:
    loaded = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    loaded.append(json.loads(line))
    return loaded


def append_message(msg: dict) -> None:
    with open(messages_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(msg) + "\n")


def rewrite_messages() -> None:
    tmp = messages_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for m in messages:
            f.write(json.dumps(m) + "\n")
    os.replace(tmp, messages_path)


def newest(items: List[dict], limit: int) -> List[dict]:
    return list(reversed(items[-limit:])) if limit > 0 else []


@app.post("/messages", status_code=201)
async def store_message(body: MessageIn):
    msg = {
        "id": uuid.uuid4().hex[:12],
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "source": body.source,
        "subject": body.subject,
        "content": body.content,
        "read": False,
    }
    append_message(msg)
    messages.append(msg)
    return msg


@app.get("/messages")
async def list_messages(limit: int = 50, unread: bool = False):
    items = [m for m in messages if not m.get("read")] if unread else messages
    return newest(items, limit)


@app.get("/messages/unread")
async def unread_messages():
    return newest([m for m in messages if not m.get("read")], len(messages))


@app.post("/messages/{message_id}/read")
async def mark_read(message_id: str):
    for m in messages:
        if m.get("id") == message_id:
            m["read"] = True
            rewrite_messages()
            return m
    raise HTTPException(status_code=404, detail="message not found")


@app.get("/health")
async def health():
    unread = sum(1 for m in messages if not m.get("read"))
    return {"status": "ok", "messages": {"total": len(messages), "unread": unread}}


def main() -> None:
    global messages, messages_path
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=".")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8114)
    args = parser.parse_args()
    messages_path = os.path.join(args.data_dir, MESSAGES_FILE)
    messages = load_messages(messages_path)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
