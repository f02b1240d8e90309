# bench/fleet/xenpci_timing.py: an Ansible callback for bench/run. For each
# task it records when it started and ended on the controller (epoch
# seconds: from its start to the start of the next task or the end of the
# play), on how many hosts it was ok and changed, and on how many the
# xen.pci action installed the binary (xenpci_installed in the result);
# failures and unreachable hosts are collected.
#
# Bytes: when $XENPCI_BENCH_SSH_PORT is set, it reads the TCP counters of the
# controller's connections to that port (`ss -tinH`: the ControlPersist
# masters, one a host) at each task's start and end, and records per task
# and peer address the bytes the controller sent (bytes_acked) and received
# (bytes_received) in that time: the SSH stream as it is on the wire
# (encrypted packets, their framing and MACs, channel messages and window
# adjustments), without IP or TCP headers. A connection opened during a task
# counts from zero. One sample serves as the end of a task and the start of
# the next, and is taken outside both tasks' times.
#
# At the end it writes {"tasks": [{name, start, end, ok, changed,
# installed, tx: {addr: bytes}, rx: {addr: bytes}}], "failures": [...]} as
# JSON to $XENPCI_BENCH_TIMES.
import json
import os
import re
import subprocess
import time

from ansible.plugins.callback import CallbackBase

COUNTER = re.compile(r"\b(bytes_acked|bytes_received):(\d+)")


def connections(port):
    """{(local, peer): (bytes_acked, bytes_received)} of the established TCP
    connections to `port` (the client side only: dport)."""
    p = subprocess.run(["ss", "-tinH", "state", "established", f"dport = :{port}"],
                       capture_output=True, text=True)
    out, key = {}, None
    for line in p.stdout.splitlines():
        if not line[:1].isspace():  # local peer on the first line, counters on the next
            words = line.split()
            key = (words[-2], words[-1]) if len(words) >= 2 else None
            continue
        counters = dict(COUNTER.findall(line))
        if key and "bytes_acked" in counters:
            out[key] = (int(counters["bytes_acked"]), int(counters.get("bytes_received", 0)))
    return out


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "xenpci_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []
        self.current = None
        self.failures = []
        self.port = os.environ.get("XENPCI_BENCH_SSH_PORT")
        self.counters = {}

    def _sample(self):
        """Ends the current task (if any) and reads the byte counters."""
        end = time.time()
        now = connections(self.port) if self.port else {}
        if self.current:
            self.current["end"] = end
            tx, rx = {}, {}
            for key, (sent, received) in now.items():
                s0, r0 = self.counters.get(key, (0, 0))
                addr = key[1].rsplit(":", 1)[0]
                tx[addr] = tx.get(addr, 0) + sent - s0
                rx[addr] = rx.get(addr, 0) + received - r0
            self.current.update(tx=tx, rx=rx)
            self.tasks.append(self.current)
            self.current = None
        self.counters = now

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._sample()
        self.current = {"name": task.get_name(), "start": time.time(), "ok": 0, "changed": 0, "installed": 0}

    def v2_playbook_on_play_start(self, play):
        self._sample()

    def v2_runner_on_ok(self, result):
        if self.current:
            self.current["ok"] += 1
            self.current["changed"] += bool(result._result.get("changed"))
            self.current["installed"] += "xenpci_installed" in result._result

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.failures.append(f"{result._host}: {result._task.get_name()}: {result._result.get('msg', '')}")

    def v2_runner_on_unreachable(self, result):
        self.failures.append(f"{result._host}: unreachable: {result._result.get('msg', '')}")

    def v2_playbook_on_stats(self, stats):
        self._sample()
        with open(os.environ["XENPCI_BENCH_TIMES"], "w") as f:
            json.dump({"tasks": self.tasks, "failures": self.failures}, f)
