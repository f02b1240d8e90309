# bench/fleet/xenpci_timing.py: an Ansible callback for bench/run that
# records how long each task took over all hosts (start of the task to the
# start of the next task or the end of the play) and, at the end, writes
# {task name: seconds} as JSON to $XENPCI_BENCH_TIMES.
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
        self.times = {}
        self.current = None
        self.failures = []

    def _close(self):
        if self.current:
            name, t0 = self.current
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = (task.get_name(), time.perf_counter())

    def v2_playbook_on_play_start(self, play):
        self._close()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.failures.append(f"{result._host}: {result._task.get_name()}: {result._result.get('msg', '')}")

    def v2_runner_on_unreachable(self, result):
        self.failures.append(f"{result._host}: unreachable: {result._result.get('msg', '')}")

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["XENPCI_BENCH_TIMES"], "w") as f:
            json.dump({"tasks": self.times, "failures": self.failures}, f)
