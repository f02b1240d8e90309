"""Helpers of bench/run: paths, tools, timing, inputs (simulated dom0s,
configs, argument files), the figures and their table."""
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
HOSTS = os.path.join(ROOT, "playbooks-examples", "hosts")
DOMAINS = os.path.join(ROOT, "playbooks-examples", "domains")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(TARGET, "release")
MODULES = ["domain_pci_config", "pci_assignable", "pci_attach", "pci_info"]
XL_STUB = os.path.join(BENCH, "xl-stub")
MiB = 1 << 20

BUDGETS = {
    "bare_noop_ms": 2.0,
    # fleet, with pipelining on: one collection task per host against one
    # lineinfile task per host (controller time, same run)
    "fleet_task_vs_lineinfile": 0.75,
    # fleet: SSH sessions of a collection task after a host's first
    "fleet_sessions_per_task": 1,
    # fleet: bytes the controller sends for a host's first collection task
    # (the install): one copy of the binary, as a range of its size
    "fleet_install_bytes": (1.0, 1.1),
    # fleet: bytes sent for a collection task after a host's first: no copy
    # of the binary (at most this fraction of its size)
    "fleet_task_bytes": 0.1,
    # fleet, with pipelining on: the whole job in one xen.pci.passthrough
    # task per host against the builtin job's three tasks (command, command,
    # lineinfile) per host (controller time, same run)
    "fleet_passthrough_vs_builtin_job": 0.25,
    "binary_bytes": 3 * MiB // 2,
    "edit512_ms": 10.0,
    "growth": 1.25,
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def module(name):
    return os.path.join(RELEASE, name)


def anchor_bin():
    return os.path.join(TARGET, "anchor", "release", "xenpci-bench-anchor")


# --------------------------------------------------------------- figures ---

class Figures:
    """The figures of one run, and the commands that reproduce them."""

    def __init__(self):
        self.rows = []
        self.commands = {}   # section -> [shell line]
        self.work = None     # the work folder, shown as $W in the commands
        self.names = {}      # other paths, shown as these words
        self.tables = {}     # section -> markdown lines printed under its figures
        self.data = {}       # more figures for --json, by name

    def add(self, section, figure, value, unit, anchor, anchor_value, budget="", ok=None):
        """One figure against its anchor; `ok` is the budget's verdict."""
        ratio = value / anchor_value if anchor_value else float("nan")
        self.rows.append(dict(section=section, figure=figure, value=value, unit=unit, anchor=anchor,
                              anchor_value=anchor_value, ratio=ratio, budget=budget,
                              verdict="" if ok is None else ("met" if ok else "MISSED")))

    def command(self, section, argv, env=None):
        """Records a command as a shell line (repository paths relative,
        the work folder as $W)."""
        words = [f"{k}={v}" for k, v in (env or {}).items()] + list(argv)
        line = " ".join(self.quote(str(w)) for w in words)
        lines = self.commands.setdefault(section, [])
        if line not in lines:
            lines.append(line)

    def quote(self, word):
        word = word.replace(ROOT + "/", "")
        for path, name in self.names.items():
            if word.startswith(path):
                return name + self.quote(word[len(path):])
        parts = word.split(self.work) if self.work else [word]
        return "$W".join(shlex.quote(p) if p else "" for p in parts)

    def table(self):
        out = []
        for section in dict.fromkeys(r["section"] for r in self.rows):
            out += [f"\n### {section}\n", "| figure | value | anchor | ratio | budget | verdict |",
                    "|---|---:|---|---:|---|---|"]
            for r in (r for r in self.rows if r["section"] == section):
                anchor = f"{r['anchor']}: {fmt(r['anchor_value'], r['unit'])}" if r["anchor_value"] else r["anchor"]
                out.append(f"| {cell(r['figure'])} | {fmt(r['value'], r['unit'])} | {cell(anchor)} | "
                           f"{ratio(r['ratio'])} | {cell(r['budget'])} | {r['verdict']} |")
            out += self.tables.get(section, [])
        return "\n".join(out)

    def reproduce(self, invocation, kept):
        out = ["\n### Reproduce\n", "From the repository root:\n", "```sh", invocation]
        if self.commands:
            where = "kept" if kept else "removed at the end: add --keep to keep it"
            out += ["", f"# the commands timed, with their inputs in W={self.work} ({where})"]
            for section, lines in self.commands.items():
                out.append(f"# {section}")
                out += lines
        out.append("```")
        return "\n".join(out)


def ratio(x):
    return "—" if x != x else f"{x:.3f}"


def cell(s):
    return str(s).replace("|", "\\|")


def fmt(v, unit):
    if unit == "bytes":
        return f"{v / 1024:,.{1 if v < 100 * 1024 else 0}f} KiB"
    if unit == "Ir":
        return f"{v / 1e6:,.2f} M Ir" if v >= 1e5 else f"{v / 1e3:,.1f} k Ir"
    if unit == "":
        return f"{v:,.2f}"
    return f"{v:,.2f} {unit}"


# ----------------------------------------------------------------- tools ---

def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def apt_install(*packages):
    """apt-get install, without starting services (policy-rc.d)."""
    if os.geteuid() != 0:
        sys.exit(f"bench/run: needs {' '.join(packages)} (run as root to install them)")
    log(f"== apt-get install {' '.join(packages)}")
    policy = "/usr/sbin/policy-rc.d"
    ours = not os.path.exists(policy)
    if ours:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
        if subprocess.run(argv, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sh(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
            sh(argv, env=env, stdout=subprocess.DEVNULL)
    finally:
        if ours:
            os.unlink(policy)


def build():
    log(f"== cargo build --release (target {TARGET})")
    sh(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT)
    sh([os.path.join(ROOT, "scripts", "module-links"), RELEASE])
    log("== cargo build --release bench/anchor (the serde_json-only anchor module)")
    sh(["cargo", "build", "--release", "--quiet", "--manifest-path",
        os.path.join(BENCH, "anchor", "Cargo.toml"), "--target-dir", os.path.join(TARGET, "anchor")])


def venv():
    """The virtualenv of scripts/ansible-venv (ansible-core)."""
    return subprocess.run([os.path.join(ROOT, "scripts", "ansible-venv")], check=True,
                          capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- timing ---

def spawn(argv, env, stdin=None):
    """Runs argv once: (wall ms, child CPU ms, exit code)."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    if stdin:
        actions.append((os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0))
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - t0) / 1e6
    return wall, (ru.ru_utime + ru.ru_stime) * 1000, os.waitstatus_to_exitcode(status)


class Case:
    """One command to time: prepare() runs before each run, untimed;
    check(completed process) once on a captured run before the timing."""

    def __init__(self, name, argv, env=None, prepare=None, check=None, stdin=None):
        self.name, self.argv, self.stdin, self.extra_env = name, argv, stdin, env or {}
        self.env = dict(os.environ, **self.extra_env)
        self.prepare = prepare or (lambda: None)
        self.check = check
        self.wall, self.cpu = [], []

    def verify(self):
        self.prepare()
        with open(self.stdin) if self.stdin else open(os.devnull) as stdin:
            p = subprocess.run(self.argv, env=self.env, capture_output=True, text=True, stdin=stdin)
        if self.check:
            self.check(self.name, p)
        elif p.returncode != 0:
            sys.exit(f"{self.name}: exit {p.returncode}: {p.stderr[-400:]}")

    def once(self):
        self.prepare()
        wall, cpu, rc = spawn(self.argv, self.env, self.stdin)
        if rc != 0:
            sys.exit(f"{self.name}: exit {rc} while timing")
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def ms(self):
        return statistics.median(self.wall)

    @property
    def cpu_ms(self):
        return statistics.median(self.cpu)


def measure(figures, section, cases, runs):
    """Times every case `runs` times, interleaved: each round runs every
    case once, in a rotated order. Returns {name: case}."""
    for c in cases:
        c.verify()
        figures.command(section, c.argv, c.extra_env)
    for r in range(runs):
        k = r % len(cases)
        for c in cases[k:] + cases[:k]:
            c.once()
    return {c.name: c for c in cases}


def callgrind(argv, env, prepare=None):
    """Instructions executed by one run (valgrind --tool=callgrind)."""
    if prepare:
        prepare()
    fd, out = tempfile.mkstemp(prefix="xenpci-cg-")
    os.close(fd)
    try:
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
                           env=dict(os.environ, **env), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
    finally:
        os.unlink(out)
    for line in p.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip())
    sys.exit(f"callgrind failed on {argv}: {p.stderr[-400:]}")


def growth(figures, section, what, sizes, counts, unit):
    """Cost must grow no faster than linearly: the marginal cost per item of
    the last doubling is at most BUDGETS["growth"] times that of the first
    (n log n passes; n^2 shows as about 2)."""
    (n1, n2, n3), (c1, c2, c3) = sizes, counts
    first, last = (c2 - c1) / (n2 - n1), (c3 - c2) / (n3 - n2)
    limit = BUDGETS["growth"]
    figures.add(section, f"{what}: marginal cost per item, {n2}→{n3}", last, unit,
                f"the same, {n1}→{n2}", first, f"linear: ratio ≤ {limit}",
                first > 0 and last / first <= limit)


# ---------------------------------------------------------------- inputs ---

def module_check(changed):
    """A check of Case: one JSON object, not failed, `changed` as given."""
    def check(name, p):
        try:
            r = json.loads(p.stdout)
        except ValueError:
            sys.exit(f"{name}: not one JSON object: {p.stdout[:300]} {p.stderr[-300:]}")
        if r.get("failed") or r.get("changed") != changed:
            sys.exit(f"{name}: unexpected result (want changed={changed}): {p.stdout[:400]}")
    return check


def args_file(path, args, python=False):
    """An arguments file as Ansible writes it for a binary module (or, for
    the Python anchor, as AnsibleModule reads one by hand)."""
    ansible = {"_ansible_check_mode": False, "_ansible_diff": False, "_ansible_no_log": False,
               "_ansible_verbosity": 0, "_ansible_version": "2.19.14", "_ansible_module_name": "x"}
    body = {"ANSIBLE_MODULE_ARGS": args} if python else dict(args, **ansible)
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def one_line_config(dst):
    """vm1.cfg with its pci list on one line (lineinfile can edit that)."""
    with open(os.path.join(DOMAINS, "vm1.cfg")) as f:
        text = f.read()
    if "pci = [\n]" not in text:
        sys.exit("playbooks-examples/domains/vm1.cfg: no empty 'pci = [\\n]' list to put on one line")
    return write(dst, text.replace("pci = [\n]", "pci = [ ]"))


def load_json(path):
    with open(path) as f:
        return json.load(f)


def sriov_snapshot(path, vfs):
    """sriov.json with `vfs` VFs on its PF."""
    snap = load_json(os.path.join(HOSTS, "sriov.json"))
    for d in snap["devices"]:
        if "sriov" in d:
            d["sriov"]["num_vfs"] = vfs
            d["sriov"]["total_vfs"] = max(vfs, d["sriov"].get("total_vfs", 0))
    return write(path, json.dumps(snap))


def big_snapshot(path, functions):
    """typical.json plus SR-IOV NICs (a PF and up to 255 VFs a bus) up to
    `functions` PCI functions in all."""
    snap = load_json(os.path.join(HOSTS, "typical.json"))
    snap["drivers"] += ["ice", "iavf"]
    left, bus, group = functions - len(snap["devices"]), 0x10, 100
    while left > 0:
        vfs = min(255, left - 1)
        snap["devices"].append({
            "bdf": f"0000:{bus:02x}:00.0", "vendor": "0x8086", "device": "0x1593",
            "class": "0x020000", "driver": "ice", "iommu_group": group,
            "sriov": {"num_vfs": vfs, "total_vfs": 255, "vf_device": "0x1889",
                      "vf_driver": "iavf", "vf_iommu_group_first": group + 1}})
        left -= vfs + 1
        bus += 1
        group += 256
    return write(path, json.dumps(snap))


def bdf(i):
    """The i-th generated device, as in benches/engine.rs."""
    return f"0000:{0x10 + i // 256:02x}:{(i // 8) % 32:02x}.{i % 8}"


def big_config(path, n):
    """The config of benches/engine.rs: a pci list of n entries, one a line."""
    lines = ["# generated by bench/run", 'name = "big"', 'type = "hvm"', "memory = 4096",
             "vcpus = 4", "disk = [ 'phy:/dev/vg0/big,xvda,w' ]", "vif = [ 'bridge=xenbr0' ]",
             "pci = ["] + [f"    '{bdf(i)}'," for i in range(n)] + ["]"]
    return write(path, "\n".join(lines) + "\n")


def copier(src, dst):
    return lambda: shutil.copyfile(src, dst)
