# An Ansible callback for scripts/ssh-tier: every task's result on every host
# (its status and the keys the tier checks), with the task's start time on
# the controller, written as JSON to $XENPCI_RESULTS at the end of the run:
# [{"task", "host", "status", "start", "result"}], status one of ok,
# changed, failed, skipped, unreachable.
import json
import os
import time

from ansible.plugins.callback import CallbackBase

KEYS = ("changed", "failed", "msg", "xenpci_installed", "rc", "cmd", "stderr", "ansible_job_id",
        "finished", "censored", "devices", "ansible_facts", "diff")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "xenpci_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results, self.starts = [], {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.starts[task._uuid] = time.time()

    def _add(self, result, status):
        r = result._result
        if status == "ok" and r.get("changed"):
            status = "changed"
        self.results.append({"task": result._task.get_name(), "host": result._host.get_name(),
                             "status": status, "start": self.starts.get(result._task._uuid, 0.0),
                             "result": {k: r[k] for k in KEYS if k in r}})

    def v2_runner_on_ok(self, result):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["XENPCI_RESULTS"], "w") as f:
            json.dump(self.results, f, default=str)
