#!/usr/bin/env python3
"""Whole-process timings of pci_assignable on simulated dom0s.

Runs the release binaries against copies of the shipped snapshots:
- a no-op run on the typical dom0 (a device already assignable);
- 64 and 256 SR-IOV virtual functions made assignable in one run.
Each figure is the median of several runs, each on a fresh copy of the
snapshot (so every run does the full work). Usage: bench/assignable.py [RUNS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
HOSTS = os.path.join(ROOT, "playbooks-examples", "hosts")


def run(module, args, host):
    env = dict(os.environ, XENPCI_HOST=host)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(args, f)
    t0 = time.perf_counter()
    out = subprocess.run([os.path.join(BIN, module), f.name], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    os.unlink(f.name)
    result = json.loads(out.stdout)
    if result.get("failed"):
        sys.exit(f"{module} failed: {result['msg']}")
    return elapsed, result


def sriov_host(dirname, vfs):
    snap = json.load(open(os.path.join(HOSTS, "sriov.json")))
    for d in snap["devices"]:
        if "sriov" in d:
            d["sriov"]["num_vfs"] = vfs
            d["sriov"]["total_vfs"] = max(vfs, d["sriov"].get("total_vfs", 0))
    path = os.path.join(dirname, f"sriov-{vfs}.json")
    json.dump(snap, open(path, "w"))
    return path


def median_ms(module, args, make_host, runs):
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            t, result = run(module, args, make_host(d))
            times.append(t)
    return statistics.median(times) * 1000, result


def vfs_of(host):
    _, facts = run("pci_info", {}, host)
    return [d["bdf"] for d in facts["ansible_facts"]["xen_pci"]["devices"] if d.get("physfn") == "0000:81:00.0"]


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    def typical(d):
        path = os.path.join(d, "typical.json")
        with open(os.path.join(HOSTS, "typical.json")) as src, open(path, "w") as dst:
            dst.write(src.read())
        return path

    ms, r = median_ms("pci_assignable", {"devices": ["0000:07:00.0"]}, typical, runs)
    assert not r["changed"]
    print(f"pci_assignable no-op on the typical dom0      {ms:8.2f} ms (median of {runs})")
    for n in (64, 256):
        with tempfile.TemporaryDirectory() as d:
            vfs = vfs_of(sriov_host(d, n))
        assert len(vfs) == n, (n, len(vfs))
        ms, r = median_ms("pci_assignable", {"devices": vfs}, lambda d, n=n: sriov_host(d, n), runs)
        assert r["changed"] and sum(x["changed"] for x in r["devices"]) == n
        print(f"pci_assignable, {n:3} SR-IOV VFs in one run      {ms:8.2f} ms (median of {runs}, {ms / n:.3f} ms per VF)")


if __name__ == "__main__":
    main()
