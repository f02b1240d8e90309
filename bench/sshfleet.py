"""The fleet section of bench/run: ansible-playbook over SSH to N inventory
hosts, each an address 127.0.0.x of an sshd of our own, with its own
simulated dom0 and configs.

The sshd (root login with a key generated for the run, its own config and
port: scripts/sshlab.py) runs each client command through scripts/sshlab-command, which logs
when it ran and for which address: the time spent on the hosts and the
number of SSH sessions of each task come from that log, beside the task
times of the controller (the xenpci_timing callback)."""
import json
import os
import shutil
import statistics
import subprocess
import sys

from benchlib import BENCH, BUDGETS, HOSTS, MODULES, ROOT, XL_STUB, apt_install, log, module, one_line_config

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import sshlab  # noqa: E402

FLEET = os.path.join(BENCH, "fleet")
OURS = ["ours pci_assignable", "ours pci_attach", "ours domain_pci_config"]
BUILTIN = ["builtin command xl pci-assignable-add", "builtin command xl pci-attach", "builtin lineinfile"]
class Fleet:
    """An SshLab (scripts/sshlab.py) on 127.0.0.2..N+1 and one inventory host
    per address, each with its own simulated dom0 and configs. Use as a
    context manager: the sshd and every SSH connection end with it."""

    def __init__(self, work, venv_dir, hosts, figures):
        self.dir = d = os.path.join(work, f"fleet-{hosts}")
        os.makedirs(d)
        self.venv, self.n, self.figures = venv_dir, hosts, figures
        self.lab = sshlab.SshLab(d, hosts, on_command=lambda argv: figures.command("fleet", argv))
        self.addrs, self.port = self.lab.addrs, self.lab.port
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True,
                                                        text=True).stdout.strip()
        lib = f"{d}/library"
        os.makedirs(lib)
        for m in MODULES:
            shutil.copy2(module(m), lib)
        interp = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else f"{venv_dir}/bin/python"
        with open(f"{d}/inventory.ini", "w") as f:
            f.write("[bench]\n")
            for i, a in enumerate(self.addrs):
                f.write(f"h{i + 1:02d} ansible_host={a} bench_dir={d}/hosts/h{i + 1:02d}\n")
            f.write(f"[bench:vars]\nansible_port={self.port}\nansible_user={user}\n"
                    f"ansible_ssh_private_key_file={self.lab.key}\nxl={XL_STUB}\n"
                    f"ansible_python_interpreter={interp}\n")
        with open(f"{d}/ansible.cfg", "w") as f:
            f.write(f"[defaults]\ninventory = {d}/inventory.ini\nlibrary = {lib}\n"
                    f"callback_plugins = {FLEET}\ncallbacks_enabled = xenpci_timing\n"
                    "host_key_checking = False\ngathering = explicit\nforks = 10\n"
                    f"remote_tmp = {d}/remote-tmp\nlocal_tmp = {d}/local-tmp\nretry_files_enabled = False\n"
                    "[ssh_connection]\npipelining = True\n"
                    f"control_path_dir = {d}/cp\n"
                    # A short ControlPersist: connections left by a killed run end soon.
                    f"ssh_args = {self.lab.ssh_args()}\n")
        for order in ("ours", "builtin"):
            other = "builtin" if order == "ours" else "ours"
            with open(f"{d}/{order}-first.yml", "w") as f:
                f.write(f"- import_playbook: {FLEET}/warmup.yml\n"
                        f"- import_playbook: {FLEET}/{order}.yml\n"
                        f"- import_playbook: {FLEET}/{other}.yml\n")

    def __enter__(self):
        self.lab.__enter__()
        return self

    def __exit__(self, *exc):
        self.lab.__exit__(*exc)

    def reset(self):
        """Fresh state on every host: typical dom0, configs, xl stub state."""
        cfg = one_line_config(f"{self.dir}/vm1.cfg")
        for i in range(self.n):
            h = f"{self.dir}/hosts/h{i + 1:02d}"
            os.makedirs(f"{h}/xl", exist_ok=True)
            shutil.copyfile(os.path.join(HOSTS, "typical.json"), f"{h}/dom0.json")
            shutil.copyfile(cfg, f"{h}/vm1.cfg")
            shutil.copyfile(cfg, f"{h}/vm1-builtin.cfg")
            with open(f"{h}/xl/assignable", "w") as f:
                f.write("0000:07:00.0\n")
            open(f"{h}/xl/dom-vm1", "w").close()

    def play(self, order, changed):
        """One ansible-playbook run; every task must report `changed` on
        every host. Returns {task: (controller s, host s, SSH sessions)},
        each per host."""
        times = f"{self.dir}/times.json"
        if os.path.exists(times):
            os.unlink(times)
        open(self.lab.log, "w").close()
        env = dict(os.environ, ANSIBLE_CONFIG=f"{self.dir}/ansible.cfg", XENPCI_BENCH_TIMES=times,
                   PATH=f"{self.venv}/bin:{os.environ['PATH']}")
        argv = [f"{self.venv}/bin/ansible-playbook", f"{self.dir}/{order}-first.yml"]
        self.figures.command("fleet", argv, {"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"]})
        p = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        res = json.load(open(times)) if os.path.exists(times) else {"failures": ["no timings written"]}
        if p.returncode != 0 or res["failures"]:
            sys.exit(f"fleet: ansible-playbook failed ({p.returncode}): {res.get('failures')}\n"
                     f"{p.stdout[-3000:]}{p.stderr[-2000:]}")
        out = {}
        sessions = self.sessions()
        for t in res["tasks"]:
            if t["name"] not in OURS + BUILTIN:
                continue
            want = self.n if changed else 0
            if t["changed"] != want or t["ok"] != self.n:
                sys.exit(f"fleet: task {t['name']!r}: changed on {t['changed']} hosts, ok on {t['ok']}; "
                         f"want changed on {want}, ok on {self.n}")
            mine = [s for s in sessions if t["start"] <= s[0] < t["end"]]
            out[t["name"]] = ((t["end"] - t["start"]) / self.n, sum(s[1] for s in mine) / self.n,
                              len(mine) / self.n)
        return out

    def sessions(self):
        """[(start, seconds)] of each SSH session on the hosts."""
        return [(x.start, x.seconds) for x in self.lab.sessions() if x.addr in self.addrs]


def fleet(figures, work, venv_dir, sizes, reps):
    for tool in (sshlab.SSHD, sshlab.SFTP_SERVER):
        if not os.path.exists(tool):
            apt_install(*sshlab.PACKAGES)
    for n in sizes:
        log(f"== fleet: ansible-playbook over SSH to {n} hosts, {reps} x (first run, second run), "
            "order of the two jobs alternating")
        runs = {"first run (changes)": [], "second run (no-op)": []}
        with Fleet(work, venv_dir, n, figures) as f:
            for k in range(reps):
                order = "ours" if k % 2 == 0 else "builtin"
                f.reset()
                runs["first run (changes)"].append(f.play(order, True))
                runs["second run (no-op)"].append(f.play(order, False))
        for kind, results in runs.items():
            per = {t: [statistics.median(r[t][i] * 1000 for r in results) for i in range(2)] +
                   [statistics.median(r[t][2] for r in results)] for t in OURS + BUILTIN}
            line, line_host, line_sessions = per["builtin lineinfile"]
            ours = statistics.mean(per[t][0] for t in OURS)
            limit = BUDGETS["host_task_vs_lineinfile"]
            figures.add("fleet", f"{n} hosts, {kind}: one of our tasks, per host (mean of the 3)", ours, "ms",
                        "lineinfile task, per host", line, f"≤ {limit} × lineinfile", ours <= limit * line)
            for t in OURS:
                figures.add("fleet", f"{n} hosts, {kind}: {t[5:]} task, per host", per[t][0], "ms",
                            "lineinfile task, per host", line)
            figures.add("fleet", f"{n} hosts, {kind}: the whole job (3 tasks), per host",
                        sum(per[t][0] for t in OURS), "ms", "the job with command + lineinfile, per host",
                        sum(per[t][0] for t in BUILTIN))
            figures.add("fleet", f"{n} hosts, {kind}: time on the host of one of our tasks (mean of the 3)",
                        statistics.mean(per[t][1] for t in OURS), "ms", "lineinfile's", line_host)
            figures.add("fleet", f"{n} hosts, {kind}: SSH sessions of one of our tasks, per host",
                        statistics.mean(per[t][2] for t in OURS), "", "lineinfile's", line_sessions)
