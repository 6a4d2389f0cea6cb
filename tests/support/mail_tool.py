#!/usr/bin/python3
"""What the mail-server fixtures of the tests do to a server from the outside, independent
of the code under test: deliver by LMTP, and look at or change an account over JMAP.
Standard library only; run it with /usr/bin/python3.

Usage:
    mail_tool.py lmtp --port P --from ADDR --to ADDR [--to ADDR …] < message
        Delivers the message to 127.0.0.1:P; exit status 1 with the refusal on stderr.
    mail_tool.py jmap-emails --session URL --user U --password P --role ROLE
        Prints a JSON array: every email in the mailbox with that role (inbox, sent,
        drafts, trash), oldest first, as {"id", "blobId", "subject", "messageId",
        "inReplyTo", "references", "keywords", "mailboxRoles", "from", "to",
        "autoSubmitted", "receivedAt"}.
    mail_tool.py jmap-keyword --session URL --user U --password P (--id ID | --role ROLE)
                 --keyword K --value true|false
        Sets or clears one keyword on one email, or on every email in the mailbox with
        that role; exit status 1 when the server refuses.
    mail_tool.py jmap-call --session URL --user U --password P < {"methodCalls": [...]}
        Sends the calls (accountId filled in where missing) and prints the response.

The session URL may redirect (/.well-known/jmap); apiUrl may be relative. Errors go to
stderr with exit status 1.
"""

import argparse
import base64
import json
import smtplib
import sys
import urllib.error
import urllib.parse
import urllib.request

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
         "urn:ietf:params:jmap:submission"]
TIMEOUT = 15


class Jmap:
    def __init__(self, session_url, user, password):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        request = urllib.request.Request(session_url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            self.session = json.load(answer)
            final_url = answer.geturl()
        self.api_url = urllib.parse.urljoin(final_url, self.session["apiUrl"])
        self.account = self.session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    def call(self, calls):
        for _, args, _ in calls:
            if not any(k in args for k in ("accountId", "#accountId")):
                args["accountId"] = self.account
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        request = urllib.request.Request(
            self.api_url, data=body,
            headers={**self.headers, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return json.load(answer)

    def results(self, calls):
        """The method responses; raises on a method-level error."""
        out = self.call(calls)["methodResponses"]
        for name, args, call_id in out:
            if name == "error":
                raise RuntimeError(f"call {call_id}: {json.dumps(args)}")
        return out

    def mailboxes(self):
        (_, got, _), = self.results([["Mailbox/get", {"properties": ["name", "role"]}, "m"]])
        return {m["id"]: m.get("role") for m in got["list"]}


def emails(jmap, role):
    boxes = jmap.mailboxes()
    wanted = [mid for mid, r in boxes.items() if r == role]
    if not wanted:
        raise RuntimeError(f"no mailbox with role {role}")
    properties = ["blobId", "subject", "messageId", "inReplyTo", "references", "keywords",
                  "mailboxIds", "from", "to", "header:Auto-Submitted:asText", "receivedAt"]
    responses = jmap.results([
        ["Email/query", {"filter": {"inMailbox": wanted[0]},
                         "sort": [{"property": "receivedAt", "isAscending": True}]}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": properties}, "g"],
    ])
    out = []
    for item in responses[1][1]["list"]:
        out.append({
            "id": item["id"], "blobId": item.get("blobId"), "subject": item.get("subject"),
            "messageId": item.get("messageId"), "inReplyTo": item.get("inReplyTo"),
            "references": item.get("references"), "keywords": item.get("keywords") or {},
            "mailboxRoles": sorted(boxes.get(m) or m for m in item.get("mailboxIds") or {}),
            "from": item.get("from"), "to": item.get("to"),
            "autoSubmitted": (item.get("header:Auto-Submitted:asText") or "").strip() or None,
            "receivedAt": item.get("receivedAt"),
        })
    return out


def set_keyword(jmap, email_ids, keyword, value):
    patch = {f"keywords/{keyword}": True if value else None}
    (_, result, _), = jmap.results([
        ["Email/set", {"update": {email_id: patch for email_id in email_ids}}, "k"]])
    if result.get("notUpdated"):
        raise RuntimeError(f"not updated: {json.dumps(result.get('notUpdated'))}")


def lmtp(port, sender, recipients, message):
    client = smtplib.LMTP("127.0.0.1", port, timeout=TIMEOUT)
    try:
        refused = client.sendmail(sender, recipients, message)
    finally:
        client.quit()
    if refused:
        raise RuntimeError(f"refused: {refused}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    deliver = sub.add_parser("lmtp")
    deliver.add_argument("--port", type=int, required=True)
    deliver.add_argument("--from", dest="sender", required=True)
    deliver.add_argument("--to", action="append", required=True)
    for name in ("jmap-emails", "jmap-keyword", "jmap-call"):
        p = sub.add_parser(name)
        p.add_argument("--session", required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--password", required=True)
        if name == "jmap-emails":
            p.add_argument("--role", required=True)
        if name == "jmap-keyword":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--id")
            which.add_argument("--role")
            p.add_argument("--keyword", required=True)
            p.add_argument("--value", choices=["true", "false"], required=True)
    args = parser.parse_args()

    try:
        if args.command == "lmtp":
            lmtp(args.port, args.sender, args.to, sys.stdin.buffer.read())
            return 0
        jmap = Jmap(args.session, args.user, args.password)
        if args.command == "jmap-emails":
            json.dump(emails(jmap, args.role), sys.stdout)
        elif args.command == "jmap-keyword":
            ids = [args.id] if args.id else [e["id"] for e in emails(jmap, args.role)]
            if ids:
                set_keyword(jmap, ids, args.keyword, args.value == "true")
        else:
            json.dump(jmap.call(json.load(sys.stdin)["methodCalls"]), sys.stdout)
        return 0
    except (OSError, RuntimeError, ValueError, KeyError, smtplib.SMTPException) as error:
        detail = ""
        if isinstance(error, urllib.error.HTTPError):
            detail = " " + error.read(2000).decode(errors="replace")
        print(f"mail_tool {args.command}: {error}{detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
