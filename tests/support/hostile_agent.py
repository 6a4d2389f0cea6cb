#!/usr/bin/python3
# hostile_agent: an agent that speaks switchboard's agent protocol (docs/agent-protocol.md)
# and does its worst, for the escape suite (tests/integration/escape_test.cpp). It runs the
# attack named by each message, reports what happened as one result, and reads follow-ups
# from $SWITCHBOARD_IPC_DIR/input until "_close" (or `linger` seconds pass).
#
# A message's content is "<attack> <json arguments>". Outcomes are strings: "blocked: <why>"
# when the system refused, anything else when the attack got through, so the test can say
# which defence failed. Only the Python standard library: the sandbox has /usr, nothing more.

import ctypes
import errno
import html
import json
import os
import re
import shutil
import signal
import socket
import sys
import time

IPC = os.environ.get("SWITCHBOARD_IPC_DIR", "/workspace/ipc")
GROUP = os.environ.get("SWITCHBOARD_WORKSPACE", "/workspace/group")
LIBC = ctypes.CDLL(None, use_errno=True)


def emit(result, status="success"):
    out = {"status": status, "result": result}
    sys.stdout.write("---SWITCHBOARD_OUTPUT_START---\n" + json.dumps(out) +
                     "\n---SWITCHBOARD_OUTPUT_END---\n")
    sys.stdout.flush()


def attempt(action):
    """Runs action(); "blocked: <error>" if it raised, else what it returned (or "done")."""
    try:
        value = action()
        return "done" if value is None else str(value)
    except Exception as error:  # noqa: BLE001 - every refusal is an outcome
        return "blocked: " + (error.strerror if isinstance(error, OSError) and error.strerror
                              else type(error).__name__ + " " + str(error))[:200]


def read(path):
    with open(path, "rb") as f:
        return "read %d bytes" % len(f.read())


def write(path, data=b"pwned"):
    with open(path, "wb") as f:
        f.write(data)


def syscall_errno(number, *args):
    result = LIBC.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return "blocked: " + os.strerror(ctypes.get_errno()) if result == -1 else "returned %d" % result


def http_over_unix(path, request):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    sock.sendall(request.encode())
    reply = sock.recv(4096).decode(errors="replace")
    sock.close()
    return reply.split("\r\n", 1)[0]


def fork_bomb(limit):
    children, failure = [], "none"
    for _ in range(limit):
        try:
            pid = os.fork()
        except OSError as error:
            failure = error.strerror
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return "started %d, then: %s" % (len(children), failure)


def fill(directory, chunk, total):
    written = 0
    try:
        for index in range(total // chunk + 1):
            with open(os.path.join(directory, "fill-%d" % index), "wb") as f:
                f.write(b"x" * chunk)
            written += chunk
    except OSError as error:
        return "blocked: %s after %d MiB" % (error.strerror, written >> 20)
    return "wrote %d MiB" % (written >> 20)


def scan_for(needle):
    """Where `needle` appears in the environment or any /proc/<pid>/{environ,cmdline}."""
    found = [k for k, v in os.environ.items() if needle in v]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for name in ("environ", "cmdline"):
            try:
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    if needle.encode() in f.read():
                        found.append("/proc/%s/%s" % (pid, name))
            except OSError:
                pass
    return "found in " + ", ".join(found) if found else "absent"


def battery(args):
    outside, api_port = args["outside"], args["api_port"]
    r = {}
    r["core_pattern"] = attempt(lambda: write("/proc/sys/kernel/core_pattern",
                                              b"|" + GROUP.encode() + b"/evil.sh"))
    r["sysrq"] = attempt(lambda: write("/proc/sysrq-trigger", b"h"))
    r["shadow"] = attempt(lambda: read("/etc/shadow"))
    r["other_group"] = attempt(lambda: read(args["other_secret"]))
    r["database"] = attempt(lambda: read(args["database"]))
    r["outside_dir"] = attempt(lambda: os.listdir(outside))
    r["key"] = scan_for(args["key"])
    r["cmdline_paths"] = "host path visible" if args["data_dir"].encode() in open(
        "/proc/1/cmdline", "rb").read() else "absent"
    for target in ("/usr/evil", "/etc/evil", "/evil", "/workspace/evil",
                   "/workspace/snapshots/evil", "/run/switchboard/evil"):
        r["write " + target] = attempt(lambda t=target: write(t))
    r["loopback"] = attempt(lambda: socket.create_connection(("127.0.0.1", api_port), 2).close())
    r["uid"] = "uid %d euid %d" % (os.getuid(), os.geteuid())
    r["processes"] = fork_bomb(args.get("forks", 2000))
    r["memory"] = attempt(lambda: len(bytearray(args.get("memory", 1 << 30))))
    r["file_size"] = attempt(lambda: write(GROUP + "/big", b"x" * args.get("file", 64 << 20)))
    r["tmp"] = fill("/tmp", 8 << 20, args.get("tmp", 512 << 20))
    shutil.rmtree("/tmp", ignore_errors=True)
    r["shm"] = fill("/dev/shm", 8 << 20, args.get("tmp", 512 << 20))
    for name in os.listdir("/dev/shm"):
        os.remove("/dev/shm/" + name)
    CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
    r["unshare user"] = "blocked: " + os.strerror(ctypes.get_errno()) if LIBC.unshare(
        CLONE_NEWUSER) != 0 else "unshared"
    r["unshare mount"] = "blocked: " + os.strerror(ctypes.get_errno()) if LIBC.unshare(
        CLONE_NEWNS) != 0 else "unshared"
    r["keyctl"] = syscall_errno(250, 0, 0, 0, 0)  # x86_64 keyctl(KEYCTL_GET_KEYRING_ID, …)
    r["bpf"] = syscall_errno(321, 0, 0, 0)
    r["af_packet"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
    sock = "/run/switchboard/model.sock"
    for name, request in (
        ("proxy CONNECT", "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\n\r\n"),
        ("proxy BREW", "BREW /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("proxy dotdot", "POST /v1/../../other/v1/messages HTTP/1.1\r\nHost: x\r\n"
                         "Content-Length: 2\r\n\r\n{}"),
        ("proxy absolute", "GET http://example.org/v1/models HTTP/1.1\r\nHost: x\r\n\r\n"),
    ):
        r[name] = attempt(lambda req=request: http_over_unix(sock, req))
    return r


def plant(args):
    """Symlinks where the host writes, for the test to check after the next host action."""
    kind, outside = args["kind"], args["outside"]
    r = {}
    if kind == "input_dir":
        shutil.rmtree(IPC + "/input")
        os.symlink(outside, IPC + "/input")
    elif kind == "close_link":
        os.symlink(args["victim"], IPC + "/input/_close")
    elif kind == "logs_link":
        os.symlink(outside, GROUP + "/logs")
    elif kind == "claude_link":
        os.remove(GROUP + "/CLAUDE.md")
        os.symlink(outside + "/created-by-host", GROUP + "/CLAUDE.md")
    elif kind == "request_link":
        os.symlink(args["victim"], IPC + "/messages/0000000000000-000000-deadbeef.json")
        os.symlink(args["victim"], IPC + "/tasks/0000000000000-000000-deadbeef.json")
    elif kind == "bad_requests":
        for index in range(args["count"]):
            with open(IPC + "/messages/.t%d" % index, "w") as f:
                f.write("not json %d" % index)
            os.rename(IPC + "/messages/.t%d" % index, IPC + "/messages/bad-%06d.json" % index)
    r["planted"] = kind
    return r


def run(text):
    name, _, rest = text.strip().partition(" ")
    args = json.loads(rest) if rest.strip() else {}
    if name == "reply":
        emit(args.get("text", "ok"))
    elif name == "battery":
        emit(json.dumps(battery(args)))
    elif name == "plant":
        emit(json.dumps(plant(args)))
    elif name == "flood":  # stdout until the host stops it
        chunk = "x" * 65536 + "\n"
        for _ in range(args.get("bytes", 2 << 30) // len(chunk)):
            sys.stdout.write(chunk)
        emit("flood survived")
    elif name == "disk":  # the group folder beyond max_disk, under the file size limit
        os.makedirs(GROUP + "/hoard", exist_ok=True)
        emit(fill(GROUP + "/hoard", args.get("chunk", 8 << 20), args.get("total", 256 << 20)))
        time.sleep(args.get("stay", 30))
    else:
        emit("unknown command " + name, "error")


def scripts(prompt):
    found = re.findall(r"<message(?:\s[^>]*)?>(.*?)</message>", prompt, re.S)
    return [html.unescape(m) for m in found] if found else [prompt]


def main():
    request = json.load(sys.stdin)
    for text in scripts(request.get("prompt", "")):
        run(text)
    deadline = time.time() + float(os.environ.get("HOSTILE_LINGER", "20"))
    while time.time() < deadline:
        try:
            names = sorted(os.listdir(IPC + "/input"))
        except OSError:
            names = []
        if "_close" in names:
            try:
                os.remove(IPC + "/input/_close")
            except OSError:
                pass
            return
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                path = IPC + "/input/" + name
                try:
                    with open(path) as f:
                        text = json.load(f).get("text", "")
                    os.remove(path)
                except (OSError, ValueError):
                    continue
                for script in scripts(text):
                    run(script)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
