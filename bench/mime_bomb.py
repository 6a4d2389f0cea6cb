#!/usr/bin/env python3
"""Hostile mail for measuring the receiver's memory (issue 16): a message under the size cap
made of very many tiny MIME parts, or of deeply nested multiparts.

    bench/mime_bomb.py parts 450000 > bomb.eml      # ~20 MB, 450 000 parts
    bench/mime_bomb.py nested 100000 > deep.eml     # multiparts nested 100 000 deep
    bench/mime_bomb.py headers 2000000 > head.eml   # ~16 MB, 2 000 000 header fields
    bench/mime_bomb.py addresses 2000000 > to.eml   # ~20 MB, one To: of 2 000 000 addresses
    bench/mime_bomb.py attachment 15000000 > a.eml  # for comparison: one 15 MB attachment
    bench/mime_bomb.py send HOST:PORT FILE          # sends FILE over SMTP (to andy@example.test)

Lines end with CRLF, so the data can go over SMTP as it is.
"""
import smtplib
import sys


def parts(count):
    out = [b"From: alice@example.org\r\nTo: andy@example.test\r\nSubject: parts\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"]
    # Alternately a tiny text part and a tiny attachment: both kinds the parser keeps.
    for i in range(count):
        if i % 2:
            out.append(b"--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n")
        else:
            out.append(b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
    out.append(b"--b--\r\n")
    return b"".join(out)


def nested(depth):
    out = [b"From: alice@example.org\r\nTo: andy@example.test\r\nSubject: nested\r\n"
           b"MIME-Version: 1.0\r\n"]
    for i in range(depth):
        out.append(b"Content-Type: multipart/mixed; boundary=%d\r\n\r\n--%d\r\n" % (i, i))
    out.append(b"Content-Type: text/plain\r\n\r\ndeep\r\n")
    return b"".join(out)


def headers(count):
    out = [b"From: alice@example.org\r\nTo: andy@example.test\r\nSubject: headers\r\n"]
    out.append(b"X-A: b\r\n" * count)
    out.append(b"\r\nhello\r\n")
    return b"".join(out)


def addresses(count):
    out = [b"From: alice@example.org\r\nSubject: addresses\r\nTo: andy@example.test"]
    out.append(b",\r\n a@b.cd" * count)
    out.append(b"\r\n\r\nhello\r\n")
    return b"".join(out)


def attachment(size):
    import base64
    data = base64.encodebytes(bytes(range(256)) * (size // 256)).replace(b"\n", b"\r\n")
    return (b"From: alice@example.org\r\nTo: andy@example.test\r\nSubject: attachment\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=data.bin\r\n\r\n" + data + b"--b--\r\n")


def main():
    if len(sys.argv) == 3 and sys.argv[1] in ("parts", "nested", "headers", "addresses", "attachment"):
        make = {"parts": parts, "nested": nested, "headers": headers,
                "addresses": addresses, "attachment": attachment}[sys.argv[1]]
        sys.stdout.buffer.write(make(int(sys.argv[2])))
    elif len(sys.argv) == 4 and sys.argv[1] == "send":
        host, port = sys.argv[2].rsplit(":", 1)
        with open(sys.argv[3], "rb") as f:
            data = f.read()
        with smtplib.SMTP(host, int(port), timeout=600) as smtp:
            code, text = smtp.ehlo()
            smtp.mail("alice@example.org")
            smtp.rcpt("andy@example.test")
            code, text = smtp.data(data)
            print(code, text.decode(errors="replace"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
