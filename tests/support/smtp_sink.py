#!/usr/bin/python3
"""An SMTP sink for the tests, built on aiosmtpd (Debian python3-aiosmtpd).

Run it with /usr/bin/python3: the python3 first on PATH may lack Debian's modules.

Usage:
    smtp_sink.py --port 0 --port-file F --out DIR
                 [--tls-cert C --tls-key K [--implicit-tls]]
                 [--auth USER:PASS] [--auth-mechanisms PLAIN,LOGIN]
                 [--script "451,250"] [--rcpt-script "250,550"] [--size-limit N]

It listens on 127.0.0.1 (--port 0 picks a free port; the port is written to --port-file,
atomically and with a trailing newline, once the server accepts connections) and logs to
stderr.

Every message it accepts becomes one JSON file in --out, named 000001.json, 000002.json ...
in order of arrival and written atomically:
    {"mail_from": "...", "rcpt_tos": [...], "mail_options": [...], "rcpt_options": [...],
     "data": "<the message, UTF-8 decoded with replacement>",
     "data_base64": "<the exact bytes, dot-stuffing undone, base64>",
     "tls": true|false, "auth_user": "..." or null, "auth_mechanism": "PLAIN" or null}

--tls-cert/--tls-key: STARTTLS is offered and required before anything but EHLO/HELO/NOOP/
    QUIT; with --implicit-tls the connection is TLS from the first byte instead.
--auth USER:PASS: AUTH is offered (only after STARTTLS unless the sink is plain or implicit
    TLS) and required before MAIL. A wrong password gets "535 5.7.8 Authentication
    credentials invalid". --auth-mechanisms limits the mechanisms offered.
--script: the answers to the end of DATA, in turn over all connections; the last repeats.
--rcpt-script: the same for RCPT TO. An entry is a code ("451") with a standard text, or a
    code and a text ("550 5.1.1 no such user"); "|" in the text makes a multi-line answer
    ("550 first|second" is "550-first" then "550 second"). Only 2xx answers accept.
--size-limit N: the SIZE advertised and enforced (default 33554432, 0: none).
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("smtp_sink")

DEFAULT_TEXTS = {
    "data": {
        250: "250 2.0.0 OK",
        421: "421 4.3.2 Service shutting down",
        451: "451 4.3.0 Temporary failure, try again later",
        452: "452 4.3.1 Insufficient system storage",
        550: "550 5.7.1 Message rejected",
        552: "552 5.3.4 Message too big",
        554: "554 5.6.0 Message refused",
    },
    "rcpt": {
        250: "250 2.1.5 OK",
        450: "450 4.2.1 Mailbox busy, try again later",
        451: "451 4.3.0 Temporary failure, try again later",
        452: "452 4.2.2 Mailbox full",
        550: "550 5.1.1 <{address}>: user unknown",
        553: "553 5.1.3 <{address}>: bad address",
    },
}


class Script:
    """Answers handed out in turn; the last one repeats. Empty: always 250."""

    def __init__(self, text, kind):
        self.entries = [e.strip() for e in text.split(",") if e.strip()] if text else []
        self.kind = kind
        self.next = 0

    def answer(self, address=""):
        if not self.entries:
            return DEFAULT_TEXTS[self.kind][250], True
        entry = self.entries[min(self.next, len(self.entries) - 1)]
        self.next += 1
        code_text, _, text = entry.partition(" ")
        code = int(code_text)
        if text:
            lines = text.split("|")
            answer = "\r\n".join(
                f"{code}{'-' if i + 1 < len(lines) else ' '}{line}" for i, line in enumerate(lines)
            )
        else:
            answer = DEFAULT_TEXTS[self.kind].get(code, f"{code} Scripted answer")
        return answer.format(address=address), 200 <= code < 300


class Sink:
    def __init__(self, out, data_script, rcpt_script):
        self.out = out
        self.data_script = data_script
        self.rcpt_script = rcpt_script
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer, accepted = self.rcpt_script.answer(address)
        if accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        log.info("RCPT %s: %s", address, answer.replace("\r\n", " / "))
        return answer

    async def handle_DATA(self, server, session, envelope):
        answer, accepted = self.data_script.answer()
        log.info("DATA from %s to %s: %s", envelope.mail_from, envelope.rcpt_tos,
                 answer.replace("\r\n", " / "))
        if not accepted:
            return answer
        self.count += 1
        auth = session.auth_data if isinstance(session.auth_data, dict) else {}
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "data": envelope.original_content.decode("utf-8", errors="replace"),
            "data_base64": base64.b64encode(envelope.original_content).decode("ascii"),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": auth.get("user"),
            "auth_mechanism": auth.get("mechanism"),
        }
        path = os.path.join(self.out, f"{self.count:06d}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return answer


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
                and auth_data.password == password.encode()):
            log.info("AUTH %s as %s: accepted", mechanism, user)
            return AuthResult(success=True, auth_data={"user": user, "mechanism": mechanism})
        log.info("AUTH %s: refused", mechanism)
        # handled=False makes aiosmtpd answer 535; handled=True would leave the client waiting.
        return AuthResult(success=False, handled=False)

    return authenticate


def write_port_file(path, port):
    with open(path + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.replace(path + ".tmp", path)


async def main():
    parser = argparse.ArgumentParser(description="SMTP sink for tests (aiosmtpd)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--auth-mechanisms", default="PLAIN,LOGIN")
    parser.add_argument("--script", default="")
    parser.add_argument("--rcpt-script", default="")
    parser.add_argument("--size-limit", type=int, default=33554432)
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s smtp_sink %(levelname)s %(message)s")
    os.makedirs(args.out, exist_ok=True)

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    if args.implicit_tls and tls is None:
        parser.error("--implicit-tls needs --tls-cert and --tls-key")

    handler = Sink(args.out, Script(args.script, "data"), Script(args.rcpt_script, "rcpt"))
    smtp_options = dict(hostname="sink.test", data_size_limit=args.size_limit or None)
    if tls is not None and not args.implicit_tls:
        smtp_options.update(tls_context=tls, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        offered = {m.strip().upper() for m in args.auth_mechanisms.split(",") if m.strip()}
        smtp_options.update(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS: on an implicit-TLS or plain sink it must
            # not insist on it, or it would never offer AUTH.
            auth_require_tls=tls is not None and not args.implicit_tls,
            auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in offered],
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **smtp_options),
        host="127.0.0.1",
        port=args.port,
        ssl=tls if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    log.info("listening on 127.0.0.1:%d (%s)", port,
             "implicit TLS" if args.implicit_tls else "STARTTLS" if tls else "plain")
    write_port_file(args.port_file, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
