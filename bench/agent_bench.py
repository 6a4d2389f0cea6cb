#!/usr/bin/env python3
"""The built-in agent (`switchboard agent`): its own start-up and memory, and the time from a
message's commit to its first model request through the daemon.

    agent_bench.py --switchboard BIN --mock MOCK_MODEL_SERVER.py [--runs 30] [--warmup 2]
                   [--runtimes bwrap,none]

Usually run through bench/agent_bench.sh. Python 3 standard library only (node optional).

Part 1, the agent process alone (under GNU time, for its peak RSS). Each run starts the agent with an input object on stdin and
`input/_close` already waiting, so it answers one turn and exits. Its model is a small HTTP
server on a unix socket (as the daemon's proxy would be) that answers every request at once
with a one-line Anthropic Messages answer and notes when the request arrived. Measured per
run: process start -> model request read, process start -> exit, and peak RSS (ru_maxrss of
the child). Side by side, with the same server and input, the smallest agents one can write
in Python and in Node.js (read stdin, one POST over the socket, print the framed result):
what any agent on those runtimes pays before its SDK is even imported.

Part 2, through the daemon (like bench/dispatch_bench.py, whose helpers it uses): the daemon
runs `switchboard agent` (bwrap and none) against the mock model server; each sample posts a
message and measures POST -> the agent's first model request at the mock -> the reply in the
chat. idle_timeout is 1 s so each sample starts a fresh agent.
"""

import argparse
import http.server
import json
import os
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dispatch_bench as db  # noqa: E402

ANSWER = {"id": "msg_bench", "type": "message", "role": "assistant", "model": "bench",
          "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
          "usage": {"input_tokens": 10, "output_tokens": 1}}

PY_AGENT = r'''
import http.client, json, os, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(os.environ["SWITCHBOARD_MODEL_SOCKET"])
inp = json.load(sys.stdin)
c = C("model"); c.request("POST", "/v1/messages", json.dumps({"model": "bench", "max_tokens": 64,
    "messages": [{"role": "user", "content": inp["prompt"]}]}), {"content-type": "application/json"})
text = json.loads(c.getresponse().read())["content"][0]["text"]
print("---SWITCHBOARD_OUTPUT_START---"); print(json.dumps({"status": "success", "result": text}))
print("---SWITCHBOARD_OUTPUT_END---", flush=True)
'''

NODE_AGENT = r'''
const http = require("http"); let input = "";
process.stdin.on("data", d => input += d).on("end", () => {
  const body = JSON.stringify({model: "bench", max_tokens: 64,
    messages: [{role: "user", content: JSON.parse(input).prompt}]});
  const req = http.request({socketPath: process.env.SWITCHBOARD_MODEL_SOCKET, path: "/v1/messages",
    method: "POST", headers: {"content-type": "application/json"}}, res => {
    let data = ""; res.on("data", d => data += d).on("end", () => {
      const text = JSON.parse(data).content[0].text;
      process.stdout.write("---SWITCHBOARD_OUTPUT_START---\n" +
        JSON.stringify({status: "success", result: text}) + "\n---SWITCHBOARD_OUTPUT_END---\n");
    });
  });
  req.end(body);
});
'''


class SocketModel:
    """A Messages API stand-in on a unix socket; records when each request was read."""

    def __init__(self, path):
        self.arrivals = []
        arrivals = self.arrivals

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                arrivals.append(time.time())
                body = json.dumps(ANSWER).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def address_string(self):
                return "agent"

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def measure_process(name, argv, runs, warmup, root, model):
    starts, totals, rss = [], [], []
    for i in range(warmup + runs):
        work = os.path.join(root, f"{name}-{i}")
        os.makedirs(work)
        t_request, t_total, peak_kib = run_once(argv, work, model, i)
        if i >= warmup:
            starts.append(t_request * 1000)
            totals.append(t_total * 1000)
            rss.append(peak_kib)
    return {"start": starts, "total": totals, "rss_kib": rss}


def run_once(argv, work, model, index):
    """One run: (start -> model request, start -> exit, peak RSS in KiB)."""
    dirs = {name: os.path.join(work, name) for name in ("group", "ipc", "session", "global")}
    for d in dirs.values():
        os.makedirs(d)
    os.makedirs(os.path.join(dirs["ipc"], "input"))
    open(os.path.join(dirs["ipc"], "input", "_close"), "w").close()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": dirs["session"],
           "SWITCHBOARD_WORKSPACE": dirs["group"], "SWITCHBOARD_IPC_DIR": dirs["ipc"],
           "SWITCHBOARD_SESSION_DIR": dirs["session"], "SWITCHBOARD_GLOBAL_DIR": dirs["global"],
           "SWITCHBOARD_MODEL_SOCKET": model.server.server_address}
    stdin = json.dumps({"prompt": f"<messages><message sender=\"bench\">hello {index}</message>"
                                  "</messages>", "groupFolder": "bench", "chatJid": "http:bench",
                        "provider": "anthropic", "model": "bench", "runId": f"run-{index}"})
    # GNU time reports the agent's own peak RSS; a child forked from this Python process
    # would count the parent's pages it had before exec.
    rss_file = os.path.join(work, "rss")
    before = len(model.arrivals)
    t0 = time.time()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv,
                          input=stdin.encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=env, cwd=dirs["group"], timeout=60)
    t_exit = time.time()
    if b'"result":"ok"' not in done.stdout.replace(b" ", b""):
        raise RuntimeError(f"{argv[0]}: no result in its output: {done.stdout[:300]!r}")
    if len(model.arrivals) <= before:
        raise RuntimeError(f"{argv[0]}: no model request")
    with open(rss_file) as f:
        peak_kib = int(f.read().split()[-1])
    return model.arrivals[before] - t0, t_exit - t0, peak_kib


def part_one(args, root):
    model = SocketModel(os.path.join(root, "model.sock"))
    agents = {"switchboard agent": [args.switchboard, "agent"],
              "python3 (minimal)": [sys.executable, "-c", PY_AGENT]}
    if shutil.which("node"):
        agents["node (minimal)"] = ["node", "-e", NODE_AGENT]
    results = {}
    try:
        for name, argv in agents.items():
            db.log(f"-- process: {name}, {args.warmup} warm-up + {args.runs} runs")
            results[name] = measure_process(name.split()[0], argv, args.runs, args.warmup, root,
                                            model)
    finally:
        model.stop()
    return results


def first_arrival(mock, marker):
    """When the mock read the first request whose body mentions `marker`."""
    if not os.path.exists(mock.log_path):
        return None
    with open(mock.log_path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and marker in line:
                return json.loads(line)["t"]
    return None


def part_two(args, root):
    results = {}
    runtimes = [r for r in args.runtimes.split(",") if r]
    if "bwrap" in runtimes and not db.bwrap_works():
        db.log("bwrap cannot create a sandbox here; skipping runtime bwrap")
        runtimes.remove("bwrap")
    mock = db.MockModel(args.mock, root)
    try:
        for runtime in runtimes:
            workdir = os.path.join(root, "daemon-" + runtime)
            os.makedirs(workdir)
            db.log(f"-- daemon, runtime {runtime}: {args.warmup} warm-up + {args.runs} samples")
            daemon = db.Daemon(args.switchboard, ["switchboard", "agent"], runtime, mock.port,
                               workdir, idle_timeout="1s")
            samples = []
            try:
                status, group = daemon.api.call("POST", "/groups", {
                    "folder": db.FOLDER, "name": db.FOLDER, "chat": db.CHAT,
                    "requires_trigger": False})
                if status != 201:
                    raise RuntimeError(f"POST /groups answered {status}: {group}")
                for i in range(args.warmup + args.runs):
                    marker = f"agentbench-{runtime}-{i}"
                    t_post = time.time()
                    status, stored = daemon.api.call("POST", "/messages", {
                        "source": "http", "chat": db.CHAT, "sender": "bench", "content": marker})
                    if status != 201:
                        raise RuntimeError(f"POST /messages answered {status}: {stored}")
                    since, t_reply = stored["id"], None
                    deadline = time.monotonic() + 30
                    while t_reply is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError("no reply in 30 s:\n" + daemon.log_tail())
                        _, page = daemon.api.wait(since)
                        for m in page or []:
                            since = max(since, m["id"])
                            if m["from_assistant"]:
                                t_reply = time.time()
                    t_model = first_arrival(mock, marker)
                    if t_model is None:
                        raise RuntimeError(f"sample {marker}: no model request logged")
                    db.wait_until(lambda: db.idle(daemon.api), 30, "the agent to exit")
                    if i >= args.warmup:
                        samples.append({"model": (t_model - t_post) * 1000,
                                        "reply": (t_reply - t_post) * 1000})
            finally:
                daemon.stop()
            results[runtime] = samples
    finally:
        mock.stop()
    return results


def report(one, two, args):
    print()
    print(f"== switchboard agent: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    print(f"   {db.machine()}")
    print(f"   {args.runs} runs each (after {args.warmup} warm-up); median / p99 (nearest rank)")
    print()
    print("Part 1: one agent process answering one turn (start -> model request -> exit)")
    row = "{:<20} {:>14} {:>12} {:>14} {:>12} {:>12}"
    print(row.format("agent", "to request med", "p99", "to exit med", "p99", "peak RSS"))
    ours = one["switchboard agent"]
    for name, r in one.items():
        print(row.format(name, db.ms(statistics.median(r["start"])),
                         db.ms(db.percentile(r["start"], 99)),
                         db.ms(statistics.median(r["total"])),
                         db.ms(db.percentile(r["total"], 99)),
                         f"{statistics.median(r['rss_kib']) / 1024:.1f} MiB"))
    print()
    for name, r in one.items():
        if name == "switchboard agent":
            continue
        print(f"{name} / switchboard agent: start-up to request "
              f"{statistics.median(r['start']) / statistics.median(ours['start']):.1f}x, "
              f"peak RSS {statistics.median(r['rss_kib']) / statistics.median(ours['rss_kib']):.1f}x"
              " (the reference agents import no SDK; real ones start slower)")
    print()
    print("Part 2: through the daemon, message POST -> first model request -> reply in the chat")
    row = "{:<10} {:<28} {:>10} {:>10}"
    print(row.format("runtime", "from POST sent to", "median", "p99"))
    for runtime, samples in two.items():
        for key, label in (("model", "first model request"), ("reply", "reply in the chat")):
            values = [s[key] for s in samples]
            print(row.format(runtime, label, db.ms(statistics.median(values)),
                             db.ms(db.percentile(values, 99))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--switchboard", required=True)
    parser.add_argument("--mock", required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runtimes", default="bwrap,none")
    args = parser.parse_args()
    args.switchboard = os.path.abspath(args.switchboard)
    root = tempfile.mkdtemp(prefix="switchboard-agent-bench.")
    try:
        one = part_one(args, root)
        two = part_two(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(one, two, args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as e:
        sys.exit(f"agent_bench: {e}")
