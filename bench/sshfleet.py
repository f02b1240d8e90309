"""The fleet section of bench/run: ansible-playbook over SSH to N inventory
hosts, each an address 127.0.0.x of an sshd of our own, with its own
simulated dom0 and configs.

The same job (make the spare NIC assignable, hot-plug it into vm1, list it
in vm1's config) is done four ways in the same ansible-playbook run, each
host acting on its own copies (bench_dir, set by the inventory), each job on
its own simulated dom0 and config file (dom0-JOB.json and vm1-JOB.cfg; the
builtin job's dom0 is the xl stub's state folder), so no job sees another's
changes:

  collection  the xen.pci collection (FQCN tasks): text modules that
              ansible-core pipelines, running the host's cached copy of the
              binary; the action installs that copy on a host's first task
              (each host its own XENPCI_CACHE_DIR, emptied before each first
              run, so a first run includes one install per host);
  binary      the binary as binary modules (its module names in the
              `library` folder of ansible.cfg): ansible-core never
              pipelines a binary module, it copies the binary and its
              arguments to the host for every task (the modules before the
              collection);
  builtin     ansible.builtin: command with changed_when for each xl call
              (xl is bench/xl-stub, which only keeps text state: cheaper
              than real xl, so this favours this side), and lineinfile for
              the pci line of the config (a one-line list, which lineinfile
              can edit; it could not keep a multi-line list intact);
  passthrough the whole job as one xen.pci.passthrough task (vm1 holds the
              NIC, now and in its config; `unlisted` is left at keep, so
              the dom0's other assignable device stays as it is). It shares
              the host's cached binary with the collection job and runs in
              the second step, after the collection's first task has
              installed it: its figures are those of a host whose binary is
              in place (the install is the collection's first task's).

The play interleaves the jobs task by task (each job's first task, then
each job's second, ...; the passthrough task among the second tasks), in
an order that rotates from step to step and from run to run, so a change of
the machine's load falls on every job. Each repetition does a first run
(every task changes every host) and a rerun (no task changes anything),
with pipelining on and, on the fewest hosts only, with pipelining off (two
ansible.cfg files that differ only in [ssh_connection] pipelining): the
runs without pipelining take the longest, and what they show (sessions and
bytes a task) does not depend on the number of hosts.

The sshd (root login with a key generated for the run, its own config and
port: scripts/sshlab.py) runs each client command through
scripts/sshlab-command, which logs when it ran and for which address: the
time spent on the hosts and the number of SSH sessions of each task come
from that log. The controller's task times and the bytes it sent come from
the xenpci_timing callback (bench/fleet/xenpci_timing.py): bytes are the
TCP counters of the ControlPersist connections (ss), read at each task's
start and end: the SSH stream the controller sent, encrypted and framed,
without IP and TCP headers."""
import json
import os
import shutil
import statistics
import subprocess
import sys

from benchlib import BENCH, BUDGETS, HOSTS, MODULES, ROOT, XL_STUB, apt_install, log, module, one_line_config, sh

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import sshlab  # noqa: E402

FLEET = os.path.join(BENCH, "fleet")
DEV = "0000:03:00.0"
STEPS = ("pci_assignable", "pci_attach", "domain_pci_config")
# job: (what the tables call it, its tasks' environment, [(task name, task)]);
# a task's name is its job's name, a space, and what the tables call it.
JOBS = {
    "collection": ("ours, collection", {"XENPCI_HOST": "{{ bench_dir }}/dom0-collection.json",
                                        "XENPCI_CACHE_DIR": "{{ bench_dir }}/cache"}, [
        ("collection pci_assignable", {"xen.pci.pci_assignable": {"devices": DEV}}),
        ("collection pci_attach", {"xen.pci.pci_attach": {"domain": "vm1", "devices": DEV}}),
        ("collection domain_pci_config", {"xen.pci.domain_pci_config": {
            "path": "{{ bench_dir }}/vm1-collection.cfg", "devices": DEV}}),
    ]),
    "binary": ("ours, binary modules", {"XENPCI_HOST": "{{ bench_dir }}/dom0-binary.json"}, [
        ("binary pci_assignable", {"pci_assignable": {"devices": DEV}}),
        ("binary pci_attach", {"pci_attach": {"domain": "vm1", "devices": DEV}}),
        ("binary domain_pci_config", {"domain_pci_config": {"path": "{{ bench_dir }}/vm1-binary.cfg",
                                                            "devices": DEV}}),
    ]),
    "builtin": ("ansible.builtin", {"XL_STUB_STATE": "{{ bench_dir }}/xl"}, [
        ("builtin command xl pci-assignable-add", {"ansible.builtin.command": f"{{{{ xl }}}} pci-assignable-add {DEV}",
                                                   "register": "add", "changed_when": "'already' not in add.stderr"}),
        ("builtin command xl pci-attach", {"ansible.builtin.command": f"{{{{ xl }}}} pci-attach vm1 {DEV}",
                                           "register": "attach", "changed_when": "'already' not in attach.stderr"}),
        ("builtin lineinfile", {"ansible.builtin.lineinfile": {
            "path": "{{ bench_dir }}/vm1-builtin.cfg", "regexp": r"^pci\s*=", "line": f"pci = [ '{DEV}' ]"}}),
    ]),
    "passthrough": ("ours, passthrough", {"XENPCI_HOST": "{{ bench_dir }}/dom0-passthrough.json",
                                          "XENPCI_CACHE_DIR": "{{ bench_dir }}/cache"}, [
        ("passthrough passthrough", {"xen.pci.passthrough": {"guests": {"vm1": {
            "devices": [DEV], "config": "{{ bench_dir }}/vm1-passthrough.cfg"}}}}),
    ]),
}
# The step of a job's first task (0 unless given): passthrough's one task
# runs among the second tasks, after the collection's first has installed
# the binary the two share.
FIRST_STEP = {"passthrough": 1}
TASKS = {job: [name for name, _ in steps] for job, (_, _, steps) in JOBS.items()}
LINEINFILE = "builtin lineinfile"
KINDS = ("first run", "rerun")
METRICS = ("ms", "host_ms", "sessions", "tx", "rx")  # each per task and host


def playbook(path, jobs, order):
    """The play of one run: a warm-up task that opens each host's SSH
    connection (ControlPersist), then the jobs' tasks interleaved step by
    step, the order of the jobs with a task in a step rotated by `order`
    plus the step. JSON is YAML."""
    tasks = [{"name": "warmup", "ansible.builtin.raw": "true", "changed_when": False}]
    for step in range(len(STEPS)):
        here = [j for j in jobs if 0 <= step - FIRST_STEP.get(j, 0) < len(JOBS[j][2])]
        k = (order + step) % len(here)
        for job in here[k:] + here[:k]:
            _, env, steps = JOBS[job]
            name, task = steps[step - FIRST_STEP.get(job, 0)]
            tasks.append(dict(name=name, environment=env, **task))
    play = {"name": f"bench/run fleet: {', '.join(jobs)}, task by task", "hosts": "all",
            "gather_facts": False, "tasks": tasks}
    with open(path, "w") as f:
        json.dump([play], f, indent=1)
    return path


def collection_copy(work, figures):
    """scripts/build-collection --binaries, then a copy of collection/ as
    COPY/ansible_collections/xen/pci (a rebuild in the checkout while the
    fleet runs changes nothing here). Returns (COPY, the binary's path)."""
    argv = [os.path.join(ROOT, "scripts", "build-collection"), "--binaries"]
    log("== scripts/build-collection --binaries (the collection's binary and text modules)")
    sh(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    figures.command("fleet", argv)
    top = os.path.join(work, "collections")
    dst = os.path.join(top, "ansible_collections", "xen", "pci")
    shutil.copytree(os.path.join(ROOT, "collection"), dst, ignore=shutil.ignore_patterns("tests", ".*"))
    return top, os.path.join(dst, "files", "xenpci")


class Fleet:
    """An SshLab (scripts/sshlab.py) on 127.0.0.2..N+1 and one inventory host
    per address, each with its own simulated dom0 and configs. Use as a
    context manager: the sshd and every SSH connection end with it."""

    def __init__(self, work, venv_dir, hosts, figures, collections):
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
        for pipelining in (True, False):
            with open(self.config(pipelining), "w") as f:
                f.write(f"[defaults]\ninventory = {d}/inventory.ini\nlibrary = {lib}\n"
                        f"collections_path = {collections}\n"
                        f"callback_plugins = {FLEET}\ncallbacks_enabled = xenpci_timing\n"
                        "host_key_checking = False\ngathering = explicit\nforks = 10\n"
                        f"remote_tmp = {d}/remote-tmp\nlocal_tmp = {d}/local-tmp\nretry_files_enabled = False\n"
                        f"[ssh_connection]\npipelining = {pipelining}\n"
                        f"control_path_dir = {d}/cp\n"
                        # A short ControlPersist: connections left by a killed run end soon.
                        f"ssh_args = {self.lab.ssh_args()}\n")

    def config(self, pipelining):
        return f"{self.dir}/ansible-pipelining-{'on' if pipelining else 'off'}.cfg"

    def __enter__(self):
        self.lab.__enter__()
        return self

    def __exit__(self, *exc):
        self.lab.__exit__(*exc)

    def reset(self):
        """Fresh state on every host: typical dom0s, configs, xl stub state,
        and no cached copy of the collection's binary."""
        cfg = one_line_config(f"{self.dir}/vm1.cfg")
        for i in range(self.n):
            h = f"{self.dir}/hosts/h{i + 1:02d}"
            os.makedirs(f"{h}/xl", exist_ok=True)
            shutil.rmtree(f"{h}/cache", ignore_errors=True)
            for job in ("collection", "binary", "passthrough"):
                shutil.copyfile(os.path.join(HOSTS, "typical.json"), f"{h}/dom0-{job}.json")
            for job in JOBS:
                shutil.copyfile(cfg, f"{h}/vm1-{job}.cfg")
            with open(f"{h}/xl/assignable", "w") as f:
                f.write("0000:07:00.0\n")
            open(f"{h}/xl/dom-vm1", "w").close()

    def play(self, pipelining, jobs, order, changed):
        """One ansible-playbook run of `jobs`; every task must report
        `changed` on every host, and the collection's first task must
        install the binary on every host in a first run (and nowhere else).
        Returns {task: {metric: value per host}} (METRICS: controller ms,
        ms on the host, SSH sessions, bytes sent and received by the
        controller)."""
        times = f"{self.dir}/times.json"
        if os.path.exists(times):
            os.unlink(times)
        open(self.lab.log, "w").close()
        book = playbook(f"{self.dir}/play-{'-'.join(jobs)}-{order}.yml", jobs, order)
        env = dict(os.environ, ANSIBLE_CONFIG=self.config(pipelining), XENPCI_BENCH_TIMES=times,
                   XENPCI_BENCH_SSH_PORT=str(self.port), PATH=f"{self.venv}/bin:{os.environ['PATH']}")
        argv = [f"{self.venv}/bin/ansible-playbook", book]
        self.figures.command("fleet", argv, {k: env[k] for k in ("ANSIBLE_CONFIG", "XENPCI_BENCH_TIMES",
                                                                 "XENPCI_BENCH_SSH_PORT")})
        p = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        res = json.load(open(times)) if os.path.exists(times) else {"failures": ["no timings written"]}
        if p.returncode != 0 or res["failures"]:
            sys.exit(f"fleet: ansible-playbook failed ({p.returncode}): {res.get('failures')}\n"
                     f"{p.stdout[-3000:]}{p.stderr[-2000:]}")
        out = {}
        sessions = self.sessions()
        n = self.n
        for t in res["tasks"]:
            if t["name"] == "warmup":
                continue
            want = n if changed else 0
            installs = n if changed and t["name"] == TASKS["collection"][0] else 0
            if t["changed"] != want or t["ok"] != n or t["installed"] != installs:
                sys.exit(f"fleet: task {t['name']!r}: changed on {t['changed']} hosts, ok on {t['ok']}, "
                         f"installed the binary on {t['installed']}; want changed on {want}, ok on {n}, "
                         f"installed on {installs}")
            mine = [x for x in sessions if t["start"] <= x[0] < t["end"]]
            out[t["name"]] = {"ms": (t["end"] - t["start"]) * 1000 / n,
                              "host_ms": sum(x[1] for x in mine) * 1000 / n,
                              "sessions": len(mine) / n,
                              "tx": sum(t["tx"].get(a, 0) for a in self.addrs) / n,
                              "rx": sum(t["rx"].get(a, 0) for a in self.addrs) / n}
        missing = {x for j in jobs for x in TASKS[j]} - set(out)
        if missing:
            sys.exit(f"fleet: no timings for {sorted(missing)}")
        return out

    def sessions(self):
        """[(start, seconds)] of each SSH session on the hosts."""
        return [(x.start, x.seconds) for x in self.lab.sessions() if x.addr in self.addrs]


def fleet(figures, work, venv_dir, sizes, quick=False):
    """`sizes`: {hosts: repetitions}. Pipelining off on the smallest size
    only: its runs are the slowest, and a task's sessions and bytes are per
    host. ansible-core never pipelines a binary module (for the binary
    modules pipelining off is the same path as on): with `quick`, the runs
    without pipelining leave the binary modules out."""
    for tool in (sshlab.SSHD, sshlab.SFTP_SERVER):
        if not os.path.exists(tool):
            apt_install(*sshlab.PACKAGES)
    collections, binary = collection_copy(work, figures)
    size = os.path.getsize(binary)
    for n, reps in sizes.items():
        both = n == min(sizes)
        log(f"== fleet: ansible-playbook over SSH to {n} hosts, {reps} x (first run, rerun) with pipelining "
            f"{'on and off' if both else 'on'}; the {len(JOBS)} jobs in each run, task by task, their order rotating")
        # runs[(pipelining, kind)] = [{task: {metric: value}}], one per repetition
        pipelinings = (True, False) if both else (True,)
        runs = {(p, kind): [] for p in pipelinings for kind in KINDS}
        with Fleet(work, venv_dir, n, figures, collections) as f:
            for k in range(reps):
                for i, p in enumerate(pipelinings if k % 2 == 0 else pipelinings[::-1]):
                    jobs = [j for j in JOBS if p or not quick or j != "binary"]
                    order = k + i
                    f.reset()
                    runs[(p, "first run")].append(f.play(p, jobs, order, True))
                    runs[(p, "rerun")].append(f.play(p, jobs, order, False))
        for (p, kind), results in runs.items():
            per = {t: {m: statistics.median(r[t][m] for r in results) for m in METRICS}
                   for t in results[0]}
            report(figures, n, p, kind, per, size)
            task_rows(figures, n, p, kind, per)
    figures.tables["fleet"] = task_table(figures, quick)


def pipelining_word(on):
    return "pipelining on" if on else "pipelining off"


def mean(per, tasks, metric):
    return statistics.mean(per[t][metric] for t in tasks)


def report(F, n, p, kind, per, size):
    """The figures of one (hosts, pipelining, run) against their anchors and
    the budgets (BUDGETS; the time and sessions budgets with pipelining on
    only). A host's first collection task of a first run installs the
    binary: the budgets of time, sessions and bytes per task are for the
    tasks after it, the install's bytes have their own."""
    coll, binary = TASKS["collection"], TASKS["binary"]
    has_binary = binary[0] in per
    first = kind == "first run"
    later = coll[1:] if first else coll
    which = "after the install (mean of the 2)" if first else "(mean of the 3)"
    line = per[LINEINFILE]
    at = f"{n} hosts, {pipelining_word(p)}, {kind}"
    limit = BUDGETS["fleet_task_vs_lineinfile"]
    x = mean(per, later, "ms")
    F.add("fleet", f"{at}: collection task {which}, per host", x, "ms", "lineinfile task, per host", line["ms"],
          *((f"≤ {limit} × lineinfile", x <= limit * line["ms"]) if p else ("", None)))
    if first:
        F.add("fleet", f"{at}: a host's first collection task (with the install), per host", per[coll[0]]["ms"],
              "ms", "lineinfile task, per host", line["ms"])
    if has_binary:
        F.add("fleet", f"{at}: binary-module task (mean of the 3), per host", mean(per, binary, "ms"), "ms",
              "lineinfile task, per host", line["ms"])
        F.add("fleet", f"{at}: collection task {which} against binary-module task, per host", x, "ms",
              "binary-module task (mean of the 3)", mean(per, binary, "ms"))
    F.add("fleet", f"{at}: time on the host of a collection task {which}", mean(per, later, "host_ms"), "ms",
          "lineinfile's", line["host_ms"])
    limit = BUDGETS["fleet_sessions_per_task"]
    x = mean(per, later, "sessions")
    F.add("fleet", f"{at}: SSH sessions of a collection task {which}, per host", x, "", "lineinfile's",
          line["sessions"], *((f"≤ {limit:g}", x <= limit) if p else ("", None)))
    if first:
        F.add("fleet", f"{at}: SSH sessions of a host's first collection task (with the install)",
              per[coll[0]]["sessions"], "", "lineinfile's", line["sessions"])
    if has_binary:
        F.add("fleet", f"{at}: SSH sessions of a binary-module task, per host", mean(per, binary, "sessions"), "",
              "lineinfile's", line["sessions"])
    limit = BUDGETS["fleet_task_bytes"]
    x = mean(per, later, "tx")
    F.add("fleet", f"{at}: bytes sent for a collection task {which}, per host", x, "bytes", "the binary", size,
          f"no copy: ≤ {limit:g} × the binary", x <= limit * size)
    if first:
        lo, hi = BUDGETS["fleet_install_bytes"]
        x = per[coll[0]]["tx"]
        F.add("fleet", f"{at}: bytes sent for a host's first collection task (with the install)", x, "bytes",
              "the binary", size, f"one copy: {lo:g} to {hi:g} × the binary", lo * size <= x <= hi * size)
    if has_binary:
        F.add("fleet", f"{at}: bytes sent for a binary-module task, per host", mean(per, binary, "tx"), "bytes",
              "the binary", size)
    if TASKS["passthrough"][0] in per:
        passthrough(F, at, p, first, per, size)


def passthrough(F, at, p, first, per, size):
    """The passthrough job (one task) against the builtin job (its three
    tasks) and, in a rerun, the collection job, in the same run; its
    sessions and bytes as the collection's tasks after the install (the
    binary is on the host before the passthrough task runs: FIRST_STEP)."""
    task = per[TASKS["passthrough"][0]]
    builtin = {m: sum(per[t][m] for t in TASKS["builtin"]) for m in METRICS}
    coll = {m: sum(per[t][m] for t in TASKS["collection"]) for m in METRICS}
    limit = BUDGETS["fleet_passthrough_vs_builtin_job"]
    F.add("fleet", f"{at}: passthrough job (one task), per host", task["ms"], "ms",
          "builtin job (command, command, lineinfile), per host", builtin["ms"],
          *((f"≤ {limit} × the builtin job", task["ms"] <= limit * builtin["ms"]) if p else ("", None)))
    if not first:  # a first run's collection job holds the install
        F.add("fleet", f"{at}: passthrough job (one task) against the collection job (three tasks), per host",
              task["ms"], "ms", "collection job, per host", coll["ms"])
    F.add("fleet", f"{at}: time on the host of the passthrough task", task["host_ms"], "ms",
          "the builtin job's", builtin["host_ms"])
    limit = BUDGETS["fleet_sessions_per_task"]
    F.add("fleet", f"{at}: SSH sessions of the passthrough task, per host", task["sessions"], "",
          "the builtin job's", builtin["sessions"],
          *((f"≤ {limit:g}", task["sessions"] <= limit) if p else ("", None)))
    limit = BUDGETS["fleet_task_bytes"]
    F.add("fleet", f"{at}: bytes sent for the passthrough task, per host", task["tx"], "bytes", "the binary", size,
          f"no copy: ≤ {limit:g} × the binary", task["tx"] <= limit * size)


def task_rows(F, n, p, kind, per):
    """Every task's figures (and each job's, the sum of its tasks), kept in
    F.data["fleet_tasks"] (bench/run --json writes them)."""
    rows = F.data.setdefault("fleet_tasks", [])
    for job, (label, _, _) in JOBS.items():
        names = TASKS[job]
        if names[0] not in per:
            continue
        for t in names + ["job"]:
            vals = per[t] if t != "job" else {m: sum(per[x][m] for x in names) for m in METRICS}
            rows.append(dict(hosts=n, pipelining=p, job=label, task=t, run=kind, **vals))


def task_table(F, quick=False):
    """The per-task table printed under the fleet section's figures: one
    line per hosts, pipelining, job and task, first run and rerun."""
    one_task = {label for label, _, steps in JOBS.values() if len(steps) == 1}  # the task is the job
    by = {}
    for r in F.data.get("fleet_tasks", []):
        if r["task"] == "job" and r["job"] in one_task:
            continue
        by.setdefault((r["hosts"], r["pipelining"], r["job"], r["task"]), {})[r["run"]] = r
    out = ["", "Each task, per host (medians; KiB sent: by the controller on the host's SSH connection; "
           "the job: its tasks; passthrough's one task is its job):", "",
           "| hosts | pipelining | job | task | first run: ms | on host, ms | sessions | KiB sent "
           "| rerun: ms | on host, ms | sessions | KiB sent |",
           "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (n, p, label, t), runs in by.items():
        cells = []
        for kind in KINDS:
            v = runs.get(kind)
            cells += [f"{v['ms']:,.0f}", f"{v['host_ms']:,.0f}", f"{v['sessions']:.2f}",
                      f"{v['tx'] / 1024:,.1f}"] if v else [""] * 4
        name = "**the job**" if t == "job" else t.split(" ", 1)[1]
        out.append(f"| {n} | {'on' if p else 'off'} | {label} | {name} | " + " | ".join(cells) + " |")
    if len({r["hosts"] for r in F.data.get("fleet_tasks", [])}) > 1:
        out += ["", "Pipelining off on the fewest hosts only: a task's sessions and bytes are per host "
                "(ansible-core never pipelines a binary module: for the binary modules, the same as with "
                "pipelining on)."]
    if quick:
        out += ["", "--quick: no binary modules with pipelining off (ansible-core never pipelines a binary "
                "module: the same as with pipelining on)."]
    return out
