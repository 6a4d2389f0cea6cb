#!/usr/bin/python3
"""Writes N messages in the seed's messages.jsonl format, for bench/api_bench.sh.

    gen_messages.py N FILE

Each line is {"id","timestamp","source","subject","content","read"} as the seed's email layer
stored them. The output is deterministic (fixed random seed): the same N gives the same file,
so runs compare. Contents are 60-600 characters of words, about a third of the messages are
unread, timestamps are one minute apart starting 2026-01-01.
"""

import json
import random
import sys
from datetime import datetime, timedelta, timezone

WORDS = (
    "the a meeting agent reply schedule report invoice project deadline tomorrow today "
    "please thanks update status review draft send email message team weekly notes call "
    "question answer follow up attached summary client server deploy build test release "
    "coffee lunch friday monday budget plan idea issue fix bug feature data backup"
).split()
SOURCES = ["email", "email", "email", "system", "reflection"]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: gen_messages.py N FILE")
    count = int(sys.argv[1])
    rng = random.Random(42)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        for i in range(1, count + 1):
            ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            subject = " ".join(rng.choices(WORDS, k=rng.randint(2, 6))).capitalize()
            content = " ".join(rng.choices(WORDS, k=rng.randint(10, 100)))[:600]
            record = {
                "id": f"m{i}",
                "timestamp": ts,
                "source": rng.choice(SOURCES),
                "subject": subject,
                "content": content,
                "read": i % 3 != 0,
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
