#!/usr/bin/env python3
"""Dispatch overhead of switchboard's orchestrator: from a message's commit to its agent.

    dispatch_bench.py --switchboard BIN --agent TEST_AGENT --mock MOCK_MODEL_SERVER.py
                      [--runs 100] [--warmup 3] [--runtimes bwrap,none] [--keep DIR]

Usually run through bench/dispatch_bench.sh, which builds the binaries first. Python 3
standard library only.

For each runtime it starts the daemon (`switchboard run`) on a free loopback port in a
temporary directory, with `[agent] command` = the test agent (tests/support/test_agent.cpp)
and `[model] base_url` = the mock model server (tests/support/mock_model_server.py), also on
a free loopback port. It registers one group (chat http:bench, no trigger needed) and then,
one sample at a time, posts a message whose content is the script

    started                         -> a reply: the agent's start time (CLOCK_REALTIME, µs),
                                       read first thing in its main()
    model /v1/messages {...}        -> a POST through the daemon's model proxy to the mock,
                                       which logs the request with its arrival time ("t")
    exit 0                          -> the agent exits, so the next sample starts a new one

and waits (GET /messages/wait, a long-poll) for both replies in the chat and until the
daemon reports no active run (GET /health). Every sample is a fresh agent process: a new
sandbox with bwrap, a plain fork/exec with runtime "none".

Times, all on this machine's realtime clock:
    post     the client's clock just before it sends POST /messages
    ack      the client's clock when the 201 (sent after the commit) has been read
    start    the agent's own start time
    model    the mock's arrival time of the agent's model request (body read)
    reply    the client's clock when the long-poll returns the second reply (the model's
             answer, relayed by the agent, stored by the daemon's HTTP channel)
The commit happens between post and ack, so "from POST" figures are an upper bound of the
time from the commit and "from 201" figures a lower bound (they can be negative: the
dispatcher may start the agent before the 201 reaches the client).
"""

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CHAT = "http:bench"
FOLDER = "bench"
MODEL_KEY_ENV = "SB_BENCH_MODEL_KEY"
# The seed's documented design: its message loop polls the database every 2 s, then starts a
# container per run. A message committed at a uniformly random moment waits on average 1 s,
# p99 1.98 s, before the poll even sees it; the container start comes on top of that.
SEED_POLL_S = 2.0
SEED_WAIT_MEDIAN_S = SEED_POLL_S / 2
SEED_WAIT_P99_S = SEED_POLL_S * 0.99


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """Two keep-alive connections to the daemon: one for commands, one for long-polls."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.poll = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    @staticmethod
    def _call(conn, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else None

    def call(self, method, path, body=None):
        return self._call(self.conn, method, path, body)

    def wait(self, since, timeout="10s"):
        return self._call(self.poll, "GET",
                          f"/messages/wait?chat={CHAT}&since={since}&timeout={timeout}")

    def close(self):
        self.conn.close()
        self.poll.close()


def wait_until(predicate, timeout, what, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def percentile(values, p):
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def bwrap_works():
    if not shutil.which("bwrap"):
        return False
    probe = ["bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib",
             "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--",
             "/bin/true"]
    return subprocess.run(probe, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


class MockModel:
    def __init__(self, script, workdir):
        self.log_path = os.path.join(workdir, "mock-requests.jsonl")
        port_file = os.path.join(workdir, "mock.port")
        self.stderr = open(os.path.join(workdir, "mock.log"), "w")
        self.process = subprocess.Popen(
            [sys.executable, script, "--port", "0", "--port-file", port_file,
             "--log", self.log_path],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        wait_until(lambda: os.path.exists(port_file) or self.process.poll() is not None, 30,
                   "the mock model server")
        if self.process.poll() is not None:
            raise RuntimeError("the mock model server did not start; see mock.log")
        with open(port_file) as f:
            self.port = int(f.read())
        self.offset = 0
        self.arrived = {}  # first user message of a logged request -> its arrival time

    def arrival(self, marker):
        """The arrival time of the request whose user message is `marker`, or None (yet)."""
        self._read_log()
        return self.arrived.pop(marker, None)

    def _read_log(self):
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path, encoding="utf-8") as f:
            f.seek(self.offset)
            for line in f:
                if not line.endswith("\n"):
                    break
                self.offset += len(line.encode())
                record = json.loads(line)
                body = record.get("body") or {}
                for message in body.get("messages") or []:
                    if isinstance(message, dict) and isinstance(message.get("content"), str):
                        self.arrived.setdefault(message["content"], record["t"])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


class Daemon:
    """`command`: the agent's argv; `idle_timeout`: when an idle agent is asked to close."""

    def __init__(self, binary, command, runtime, mock_port, workdir, idle_timeout="5s"):
        self.workdir = workdir
        command_toml = ", ".join(json.dumps(part) for part in command)
        self.port = free_port()
        config = os.path.join(workdir, "switchboard.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'''data_dir = "{workdir}/data"
assistant_name = "Andy"

[api]
listen = "127.0.0.1:{self.port}"

[agent]
runtime = "{runtime}"
command = [{command_toml}]
timeout = "30s"
idle_timeout = "{idle_timeout}"
kill_grace = "1s"
shutdown_grace = "5s"
mount_allowlist = "{workdir}/no-mount-allowlist.json"

[model]
provider = "anthropic"
base_url = "http://127.0.0.1:{mock_port}"
api_key_env = "{MODEL_KEY_ENV}"
''')
        self.log_path = os.path.join(workdir, "switchboard.log")
        self.stderr = open(self.log_path, "w")
        env = dict(os.environ, **{MODEL_KEY_ENV: "sk-bench-not-a-real-key"})
        self.process = subprocess.Popen([binary, "run", "--config", config], env=env,
                                        stdout=self.stderr, stderr=subprocess.STDOUT)

        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"switchboard exited with {self.process.returncode}:\n" +
                                   self.log_tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(ready, 60, "switchboard to listen")
        self.api = Api(self.port)

    def log_tail(self, lines=30):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self):
        self.api.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.stderr.close()
        return code


def idle(api):
    status, health = api.call("GET", "/health")
    agents = (health or {}).get("agents") or {}
    if status != 200 or agents.get("active") or agents.get("runs"):
        return False
    return all(not g.get("active") and not g.get("pending_messages")
               for g in agents.get("queue") or [])


def one_sample(daemon, mock, marker):
    api = daemon.api
    request = json.dumps({"model": "claude-bench", "max_tokens": 16,
                          "messages": [{"role": "user", "content": marker}]})
    content = f"started\nmodel /v1/messages {request}\nexit 0"
    body = {"source": "http", "chat": CHAT, "sender": "bench", "content": content}
    t_post = time.time()
    status, stored = api.call("POST", "/messages", body)
    t_ack = time.time()
    if status != 201:
        raise RuntimeError(f"POST /messages answered {status}: {stored}")
    since = stored["id"]
    replies = []
    deadline = time.monotonic() + 30
    while len(replies) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"sample {marker}: got {len(replies)} of 2 replies in 30 s:\n" +
                               daemon.log_tail())
        status, page = api.wait(since)
        t_seen = time.time()
        if status != 200:
            raise RuntimeError(f"GET /messages/wait answered {status}: {page}")
        for message in page:
            since = max(since, message["id"])
            if message["from_assistant"]:
                replies.append((message["content"], t_seen))
    started_text, _ = replies[0]
    answer, t_reply = replies[1]
    if not started_text.isdigit():
        raise RuntimeError(f"sample {marker}: the agent's first reply is not its start time: "
                           f"{started_text[:300]!r}")
    if marker not in answer or answer.startswith("ERROR"):
        raise RuntimeError(f"sample {marker}: the model request failed: {answer[:300]!r}")
    t_start = int(started_text) / 1e6
    # The mock logs a request before it answers, so its line is there by now.
    t_model = mock.arrival(marker)
    if t_model is None:
        raise RuntimeError(f"sample {marker}: the mock model server logged no such request")
    wait_until(lambda: idle(api), 30, "the agent run to end")
    return {"post": t_post, "ack": t_ack, "start": t_start, "model": t_model, "reply": t_reply}


def run_runtime(args, runtime, mock, root):
    workdir = os.path.join(root, runtime)
    os.makedirs(workdir)
    log(f"-- runtime {runtime}: {args.warmup} warm-up + {args.runs} samples")
    daemon = Daemon(args.switchboard, [args.agent], runtime, mock.port, workdir)
    samples = []
    try:
        status, group = daemon.api.call("POST", "/groups", {
            "folder": FOLDER, "name": FOLDER, "chat": CHAT, "requires_trigger": False})
        if status != 201:
            raise RuntimeError(f"POST /groups answered {status}: {group}")
        for i in range(args.warmup + args.runs):
            sample = one_sample(daemon, mock, f"bench-{runtime}-{i}")
            if i >= args.warmup:
                samples.append(sample)
    finally:
        code = daemon.stop()
        if code != 0:
            log(f"   switchboard exited with {code} after SIGTERM")
        if args.keep:
            dest = os.path.join(args.keep, runtime)
            os.makedirs(dest, exist_ok=True)
            shutil.copy(daemon.log_path, dest)
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    runs = text.count(" started (")
    expected = args.warmup + args.runs
    if runs != expected:
        log(f"   WARNING: the daemon logged {runs} agent runs for {expected} messages")
    return samples


def figures(samples):
    """{(metric, origin): (median, p99)} in milliseconds."""
    out = {}
    for metric in ("ack", "start", "model", "reply"):
        for origin in ("post", "ack"):
            if metric == "ack" and origin == "ack":
                continue
            values = [(s[metric] - s[origin]) * 1000 for s in samples]
            out[(metric, origin)] = (statistics.median(values), percentile(values, 99),
                                     min(values), max(values))
    return out


def ms(value):
    return f"{value:.1f} ms" if abs(value) >= 10 else f"{value:.2f} ms"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {cpu}; {platform.system()} {platform.release()}; load {load}"


def report(results, args):
    print()
    print(f"== Dispatch overhead: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"   {machine()}")
    print(f"   {args.runs} samples per runtime (after {args.warmup} warm-up), each a fresh "
          "agent process; median / p99 (nearest rank) / max")
    print()
    row = "{:<10} {:<30} {:>10} {:>10} {:>10} {:>16}"
    print(row.format("runtime", "from POST sent to", "median", "p99", "max",
                     "median from 201"))
    labels = {"ack": "201 received (API + commit)", "start": "agent process started",
              "model": "first model request at mock", "reply": "reply in the chat"}
    for runtime, samples in results.items():
        f = figures(samples)
        for metric in ("ack", "start", "model", "reply"):
            median, p99, _, biggest = f[(metric, "post")]
            from_ack = "" if metric == "ack" else ms(f[(metric, "ack")][0])
            print(row.format(runtime, labels[metric], ms(median), ms(p99), ms(biggest),
                             from_ack))
        print()
    print(f"Seed (its documented design, NOT a measurement): the message loop polls the "
          f"database every {SEED_POLL_S:.0f} s")
    print(f"and starts a container per run, so a message waits {SEED_WAIT_MEDIAN_S * 1000:.0f} ms "
          f"on average (p99 {SEED_WAIT_P99_S * 1000:.0f} ms) before the")
    print("poll sees it, plus the container start. The ratios below compare against the poll wait")
    print("alone, so they understate the difference.")
    print()
    row = "{:<10} {:<30} {:>12} {:>12}"
    print(row.format("runtime", "seed poll wait / ours", "median", "p99"))
    for runtime, samples in results.items():
        f = figures(samples)
        for metric in ("start", "model"):
            median, p99, _, _ = f[(metric, "post")]
            print(row.format(runtime, labels[metric],
                             f"{SEED_WAIT_MEDIAN_S * 1000 / median:.0f}x",
                             f"{SEED_WAIT_P99_S * 1000 / p99:.0f}x"))
    print()
    print("\"from POST sent\" includes the API round trip and the commit (fdatasync), so it bounds")
    print("the time from the commit from above; \"median from 201\" bounds it from below.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--switchboard", required=True)
    parser.add_argument("--agent", required=True, help="tests/test_agent of a build")
    parser.add_argument("--mock", required=True, help="tests/support/mock_model_server.py")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runtimes", default="bwrap,none")
    parser.add_argument("--keep", help="copy the daemon logs and raw samples to this directory")
    args = parser.parse_args()
    args.switchboard = os.path.abspath(args.switchboard)
    args.agent = os.path.abspath(args.agent)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    runtimes = [r for r in args.runtimes.split(",") if r]
    if "bwrap" in runtimes and not bwrap_works():
        log("bwrap cannot create a sandbox on this machine (apt install bubblewrap, or allow "
            "user namespaces); skipping runtime bwrap")
        runtimes.remove("bwrap")
    if not runtimes:
        sys.exit("dispatch_bench: no runtime to measure")

    root = tempfile.mkdtemp(prefix="switchboard-dispatch.")
    # Run as root, the daemon starts agents as `nobody`; under runtime "none" they use the
    # data directory's host paths, which must be reachable for them.
    os.chmod(root, 0o755)
    results = {}
    mock = None
    try:
        mock = MockModel(args.mock, root)
        for runtime in runtimes:
            results[runtime] = run_runtime(args, runtime, mock, root)
    finally:
        if mock:
            mock.stop()
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            with open(os.path.join(args.keep, "samples.json"), "w") as f:
                json.dump(results, f, indent=1)
            if mock and os.path.exists(mock.log_path):
                shutil.copy(mock.log_path, args.keep)
        shutil.rmtree(root, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as e:
        sys.exit(f"dispatch_bench: {e}")
