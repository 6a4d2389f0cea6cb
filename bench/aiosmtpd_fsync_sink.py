#!/usr/bin/python3
"""The reference for bench/smtp_bench.sh: what the seed runs today, an aiosmtpd server whose
handler writes each accepted message to its own file and fsyncs it before answering 250.

    aiosmtpd_fsync_sink.py --port 0 --port-file F --dir D
"""

import argparse
import asyncio
import itertools
import os

from aiosmtpd.controller import Controller


class FsyncHandler:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.directory, f"{next(self.counter):08d}.eml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, envelope.original_content or envelope.content)
            os.fsync(fd)
        finally:
            os.close(fd)
        return "250 2.0.0 stored"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    port = args.port
    if port == 0:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    controller = Controller(FsyncHandler(args.dir), hostname="127.0.0.1", port=port,
                            data_size_limit=64 << 20)
    controller.start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
