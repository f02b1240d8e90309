# bench/fleet/xenpci_timing.py: an Ansible callback for bench/run. For each
# task it records when it started and ended on the controller (epoch
# seconds: from its start to the start of the next task or the end of the
# play) and on how many hosts it was ok and changed; failures and
# unreachable hosts are collected. At the end it writes
# {"tasks": [{name, start, end, ok, changed}], "failures": [...]} as JSON to
# $XENPCI_BENCH_TIMES.
import json
import os
import time

from ansible.plugins.callback import CallbackBase


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

    def _close(self):
        if self.current:
            self.current["end"] = time.time()
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = {"name": task.get_name(), "start": time.time(), "ok": 0, "changed": 0}

    def v2_playbook_on_play_start(self, play):
        self._close()

    def v2_runner_on_ok(self, result):
        if self.current:
            self.current["ok"] += 1
            self.current["changed"] += bool(result._result.get("changed"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.failures.append(f"{result._host}: {result._task.get_name()}: {result._result.get('msg', '')}")

    def v2_runner_on_unreachable(self, result):
        self.failures.append(f"{result._host}: unreachable: {result._result.get('msg', '')}")

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["XENPCI_BENCH_TIMES"], "w") as f:
            json.dump({"tasks": self.tasks, "failures": self.failures}, f)
