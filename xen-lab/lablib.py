"""Shared code of the lab's python tools (seed-sim, scenarios).

- talking to the running lab dom0 through xen-lab/run and xen-lab/copy-in;
- turning the dom0's state (xen-lab/dom0/collect) into a simulator snapshot
  in the format of src/host/sim/snapshot.rs (playbooks-examples/hosts/*.json);
- a normal form of a snapshot for comparing a real end state with the
  simulator's.
"""

import base64
import json
import os
import re
import subprocess
import time

LAB = os.path.dirname(os.path.abspath(__file__))
DOM0_BIN = "/opt/xenpci"          # the modules, in the dom0
DOM0_TOOLS = "/opt/xenpci-lab"    # collect, restore, in the dom0
NO_OVERRIDE = ("", "(null)")


class LabError(Exception):
    pass


def run(cmd, input_text=None, timeout=600):
    """Runs a shell command line in the dom0: (rc, stdout, stderr)."""
    try:
        p = subprocess.run([os.path.join(LAB, "run"), "sh", "-c", cmd],
                           input=input_text if input_text is not None else "",
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout}s: {cmd}"
    return p.returncode, p.stdout, p.stderr


def copy_in(files, dest):
    p = subprocess.run([os.path.join(LAB, "copy-in"), *files, dest],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise LabError(f"copy-in {files} {dest}: {p.stderr.strip()}")


def install_tools():
    copy_in([os.path.join(LAB, "dom0", n) for n in ("collect", "restore")], DOM0_TOOLS)


# --- the dom0's state ----------------------------------------------------

def collect_text():
    rc, out, err = run(f"{DOM0_TOOLS}/collect")
    if rc != 0 or "@@@ end" not in out:
        raise LabError(f"collect failed (rc {rc}): {err.strip()[-500:]}")
    return out


def parse_sections(text):
    """[(name, [args], body)] from the "@@@ name args" blocks."""
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("@@@ "):
            words = line[4:].split()
            cur = (words[0], words[1:], [])
            out.append(cur)
        elif cur is not None:
            cur[2].append(line)
    return [(n, a, "\n".join(b)) for n, a, b in out]


def _json_tail(body):
    """The JSON value in a body that may hold other lines before it."""
    i = min([k for k in (body.find("{"), body.find("[")) if k >= 0], default=-1)
    if i < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(body[i:])[0]
    except ValueError:
        return None


def _xs_lines(body):
    res = {}
    for line in body.splitlines():
        m = re.match(r'^(/\S*) = "(.*)"$', line)
        if m:
            res[m.group(1)] = m.group(2).encode().decode("unicode_escape")
    return res


def _xen_owners(body):
    """BDF -> owner as `xl debug-keys Q` printed it last ("d0", "d1",
    "DomIO:8003")."""
    blocks = body.split("==== PCI devices ====")
    owners = {}
    for line in blocks[-1].splitlines():
        m = re.match(r"^\(XEN\)\s+([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) - (\S+) ", line)
        if m:
            owners[m.group(1)] = m.group(2)
    return owners


def _is_quarantine_owner(owner):
    return owner.startswith("DomIO") or owner in ("d[IO]", "d32753")


def snapshot_from_text(text):
    """A simulator snapshot (dict) from xen-lab/dom0/collect's output."""
    secs = parse_sections(text)
    one = {n: b for n, a, b in secs if not a}
    xl_info = dict(
        (k.strip(), v.strip()) for k, _, v in
        (line.partition(":") for line in one.get("xl_info", "").splitlines()) if v)

    sysdev = {}
    for n, a, b in secs:
        if n != "device":
            continue
        d = {"net": [], "block": [], "match": []}
        for line in b.splitlines():
            key, _, rest = line.partition(" ")
            if key in ("driver", "vendor", "device", "subsystem_vendor", "subsystem_device",
                       "class", "iommu_group", "physfn") or key.startswith("sriov_"):
                d[key] = rest.strip() or None
                if key == "sriov_vf_match":
                    d[key] = list(dict.fromkeys(rest.split()))
            elif key == "driver_override":
                d["override"] = rest.strip()
            elif key == "boot_vga":
                d["boot_vga"] = rest.strip() == "1"
            elif key == "reset":
                d["reset"] = rest.strip() == "yes"
            elif key == "match":
                d["match"] = list(dict.fromkeys(rest.split()))
            elif key == "net":
                d["net"].append(rest.strip())
            elif key == "block":
                w = rest.split()
                d["block"].append({"name": w[0], "dev": w[1], "holders": w[2:]})
        sysdev[a[0]] = d

    for line in one.get("iommu_groups", "").splitlines():
        m = re.search(r"/devices/([0-9a-f:.]+)/iommu_group -> .*/(\d+)$", line)
        if m and m.group(1) in sysdev:
            sysdev[m.group(1)]["iommu_group"] = m.group(2)
    mountinfo = [line.split() for line in one.get("mountinfo", "").splitlines() if line]
    swaps = [line.split()[0] for line in one.get("swaps", "").splitlines()[1:] if line.split()]
    ip_addr = json.loads(one.get("ip_addr") or "[]")
    ip_link = json.loads(one.get("ip_link") or "[]")
    routes = json.loads(one.get("ip_route") or "[]") + json.loads(one.get("ip6_route") or "[]")

    def net_use(name):
        link = next((l for l in ip_link if l.get("ifname") == name), {})
        addr = next((l for l in ip_addr if l.get("ifname") == name), {})
        use = {"name": name, "up": "UP" in link.get("flags", [])}
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in addr.get("addr_info", [])
                 if a.get("scope") != "link"]
        rts = []
        for r in routes:
            if r.get("dev") != name or r.get("dst", "").startswith("fe80::"):
                continue
            s = r["dst"] + (f" via {r['gateway']}" if r.get("gateway") else "")
            if s not in rts:
                rts.append(s)
        if addrs:
            use["addresses"] = addrs
        if rts:
            use["routes"] = rts
        if link.get("master"):
            use["master"] = link["master"]
        return use

    def block_use(b):
        use = {"name": b["name"],
               "mounts": [m[4] for m in mountinfo if len(m) > 4 and m[2] == b["dev"]],
               "swap": f"/dev/{b['name']}" in swaps,
               "holders": b["holders"]}
        return use

    owners = _xen_owners(one.get("owners", ""))
    devices = []
    for bdf, s in sorted(sysdev.items()):
        driver = s.get("driver")
        dev = {"bdf": bdf, "vendor": s["vendor"], "device": s["device"]}
        for k in ("subsystem_vendor", "subsystem_device"):
            if s.get(k):
                dev[k] = s[k]
        dev["class"] = s["class"]
        if driver:
            dev["driver"] = driver
        match = s.get("match", [])
        if match and match != [driver]:
            dev["drivers_that_match"] = match
        if s.get("iommu_group"):
            dev["iommu_group"] = int(s["iommu_group"])
        if s.get("physfn"):
            dev["physfn"] = s["physfn"].rsplit("/", 1)[-1]
        if s.get("sriov_totalvfs"):
            dev["sriov"] = _sriov(bdf, s, sysdev)
        if s.get("boot_vga"):
            dev["boot_vga"] = True
        use = {}
        nets = [net_use(n) for n in s.get("net", [])]
        blocks = [block_use(b) for b in s.get("block", [])]
        if blocks:
            use["block"] = blocks
        if nets:
            use["net"] = nets
        if use:
            dev["dom0_use"] = use
        if _is_quarantine_owner(owners.get(bdf, "")):
            dev["quarantined"] = True
        if s.get("reset") is False:
            dev["reset"] = False
        if s.get("override", "") not in NO_OVERRIDE + ("pciback",):
            # A driver_override naming another driver makes the driver core
            # refuse a bind to pciback with ENODEV.
            dev["bind_fails"] = ["pciback"]
        devices.append(dev)

    xs = _xs_lines(one.get("xenstore", ""))
    if len(xs) > 1:
        xs.pop("/libxl/pci", None)

    dom0 = {"memory_mb": 768, "vcpus": 2}
    domains = []
    listing = one.get("xl_list", "").splitlines()[1:]
    for line in listing:
        w = line.split()
        if len(w) >= 4 and w[0] == "Domain-0":
            dom0 = {"memory_mb": int(w[2]), "vcpus": int(w[3])}
    by_name = {}
    for n, a, b in secs:
        if n in ("domain", "pci_list", "backend"):
            by_name.setdefault(a[0], {"domid": int(a[1])})[n] = b
    for name, d in by_name.items():
        w = next((line.split() for line in listing if line.split()[:1] == [name]), None)
        cfg = _json_tail(d.get("domain", "")) or [{}]
        c_info = (cfg[0].get("config") or {}).get("c_info", {}) if cfg else {}
        backend = _xs_lines(d.get("backend", ""))
        opts = {}
        for k, v in backend.items():
            m = re.search(r"/dev-(\d+)$", k)
            if m:
                opts[v] = backend.get(k[: -len(m.group(0))] + f"/opts-{m.group(1)}")
        devs = []
        for line in d.get("pci_list", "").splitlines()[1:]:
            lw = line.split()
            if len(lw) == 2:
                att = {"bdf": lw[1], "vslot": int(lw[0].split(".")[0], 16)}
                if opts.get(lw[1]):
                    att["opts"] = opts[lw[1]]
                devs.append(att)
        dom = {"domid": d["domid"], "name": name, "type": c_info.get("type", "pv")}
        if c_info.get("passthrough"):
            dom["passthrough"] = c_info["passthrough"]
        if w and len(w) >= 4:
            dom["memory_mb"] = int(w[2])
            dom["vcpus"] = int(w[3])
        dom["devices"] = devs
        domains.append(dom)

    files = {}
    for n, a, b in secs:
        if n == "file":
            files[a[0]] = base64.b64decode(b.strip()).decode()

    snap = {
        "description": "Seeded from the xenpci lab dom0 (Xen under QEMU) on "
                       + time.strftime("%Y-%m-%d %H:%M:%S"),
        "toolstack": True,
        "iommu": "directio" in xl_info.get("virt_caps", ""),
        "xl_version": xl_info.get("xen_version"),
        "drivers": one.get("drivers", "").split(),
        "pciback": {
            "slots": one.get("slots", "").split(),
            "permissive": one.get("permissive", "").split(),
        },
        "devices": devices,
        "xenstore": xs,
        "dom0": dom0,
        "domains": domains,
        "kernel_log": [],
    }
    if files:
        snap["files"] = files
    boot = boot_from_sections(one)
    if boot:
        snap["boot"] = boot
    return snap


def _sriov(pf, s, sysdev):
    """The snapshot's `sriov` of a physical function (src/host/sim/snapshot.rs:
    Sriov) from its sriov_* lines. Its VFs are listed in `devices` too, each
    with `physfn` and its own state, so these fields matter for the VFs a
    later sriov_numvfs write makes: their driver and matching drivers are
    those the existing VFs share, else what would match a new one (nvme
    for QEMU's nvme: it probes it and fails, leaving it driverless)."""
    sriov = {"num_vfs": int(s.get("sriov_numvfs") or 0),
             "total_vfs": int(s["sriov_totalvfs"])}
    for k in ("offset", "stride"):
        v = int(s.get(f"sriov_{k}") or 1)
        if v != 1:
            sriov[k] = v
    # sysfs prints the VF device id in hex without 0x ("10").
    sriov["vf_device"] = f"0x{int(s.get('sriov_vf_device') or '0', 16):04x}"
    vfs = [v for b, v in sorted(sysdev.items())
           if (v.get("physfn") or "").rsplit("/", 1)[-1] == pf]
    drivers = {v.get("driver") for v in vfs}
    driver = drivers.pop() if len(drivers) == 1 else None
    # A VF on pciback does not say what a new VF would get.
    if driver and driver != "pciback":
        sriov["vf_driver"] = driver
    else:
        driver = None
    match = s.get("sriov_vf_match") or []
    if match and match != [driver]:
        sriov["vf_drivers_that_match"] = match
    # QEMU's nvme VFs (1b36:0010): nvme probes each and gives up ("Device
    # not ready", FACTS.md), so a new VF stays driverless.
    if (s.get("vendor"), s.get("device")) == ("0x1b36", "0x0010") and "nvme" in match:
        sriov["vf_bind_fails"] = ["nvme"]
    groups = [v.get("iommu_group") for v in vfs]
    if groups and groups[0] is not None:
        sriov["vf_iommu_group_first"] = int(groups[0])
    if s.get("sriov_drivers_autoprobe") == "0":
        sriov["drivers_autoprobe"] = False
    return sriov


def _module_names(text):
    """The module names of modules-load.d text (comments are # or ;)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            out.append(line.split()[0])
    return list(dict.fromkeys(out))


def boot_from_sections(one):
    """The snapshot's `boot` (src/host/sim/snapshot.rs: Boot) from collect's
    builtin, modules_load and initramfs sections."""
    boot = {}
    builtin = one.get("builtin", "").split()
    if builtin:
        boot["builtin_drivers"] = builtin
    loads = _module_names(one.get("modules_load", ""))
    if loads:
        boot["modules_load"] = loads
    if "initramfs" in one:
        modules, files = [], {}
        for line in one["initramfs"].splitlines():
            key, _, rest = line.partition(" ")
            if key == "module":
                modules.append(rest.strip())
            elif key == "modprobe_hide":
                files["modprobe_hide"] = base64.b64decode(rest.strip()).decode()
        initramfs = {"modules": sorted(set(modules))}
        if files:
            initramfs["files"] = files
        boot["initramfs"] = initramfs
    return boot


def assignable_from_text(text):
    one = {n: b for n, a, b in parse_sections(text) if not a}
    return [line.split()[0] for line in one.get("assignable", "").splitlines() if line.strip()]


# --- comparing states ----------------------------------------------------

def _canon_bdf(b):
    b = b.lower()
    return b if len(b) == 12 else "0000:" + b


def normal_form(snap):
    """What a scenario compares between the real dom0 and the simulator."""
    attached = set()
    domains = {}
    for d in snap.get("domains", []):
        devs = []
        for a in d.get("devices", []):
            attached.add(_canon_bdf(a["bdf"]))
            devs.append({"bdf": _canon_bdf(a["bdf"]),
                         "opts": a.get("opts", "msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict")})
        domains[d["name"]] = sorted(devs, key=lambda x: x["bdf"])
    devices = {}
    for d in snap.get("devices", []) + _generated_vfs(snap):
        bdf = _canon_bdf(d["bdf"])
        if bdf in devices:
            continue
        st = {"driver": d.get("driver")}
        # Xen's owner of an attached device is the guest, whatever the flag.
        st["quarantined"] = "attached" if bdf in attached else bool(d.get("quarantined"))
        devices[bdf] = st
    files = {}
    for k, v in (snap.get("files") or {}).items():
        try:
            files[k] = json.loads(v)
        except (ValueError, TypeError):
            files[k] = v
    # A folder with children exists implicitly: keep only leaves and
    # empty folders.
    keys = [k for k in (snap.get("xenstore") or {}) if k.startswith("/libxl/pci/")]
    xs = {k: snap["xenstore"][k] for k in keys
          if not any(o.startswith(k + "/") for o in keys)}
    return {
        "devices": devices,
        "pciback_slots": sorted(set(map(_canon_bdf, snap.get("pciback", {}).get("slots", [])))),
        "xenstore": xs,
        "domains": domains,
        "files": files,
        "initramfs": _initramfs_form(snap),
    }


def _generated_vfs(snap):
    """The VFs a simulator snapshot leaves to its PFs' `sriov` blocks (a
    VF in its generated state is not written out): each at routing id
    PF + offset + i * stride, with the block's vf_driver."""
    out = []
    for pf in snap.get("devices", []):
        sr = pf.get("sriov")
        if not sr:
            continue
        dom, bus, rest = _canon_bdf(pf["bdf"]).split(":")
        dev, fn = rest.split(".")
        rid = int(bus, 16) << 8 | int(dev, 16) << 3 | int(fn)
        for i in range(int(sr.get("num_vfs", 0))):
            r = rid + int(sr.get("offset", 1)) + i * int(sr.get("stride", 1))
            out.append({"bdf": f"{dom}:{r >> 8:02x}:{(r >> 3) & 0x1f:02x}.{r & 7}",
                        "driver": sr.get("vf_driver")})
    return out


def _initramfs_form(snap):
    """What of the initramfs counts at the next boot: whether it holds
    xen-pciback, and its copy of the project's modprobe.d file."""
    ird = (snap.get("boot") or {}).get("initramfs")
    if ird is None:
        return None
    names = [m.replace("_", "-") for m in ird.get("modules", [])]
    return {"xen-pciback": "xen-pciback" in names,
            "modprobe_hide": (ird.get("files") or {}).get("modprobe_hide")}


def diff(a, b, path=""):
    """Differences between two JSON values, as "path: real X, sim Y" lines."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in b:
                out.append(f"{p}: real {json.dumps(a[k])}, sim (absent)")
            elif k not in a:
                out.append(f"{p}: real (absent), sim {json.dumps(b[k])}")
            else:
                out.extend(diff(a[k], b[k], p))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff(x, y, f"{path}[{i}]"))
    elif a != b:
        out.append(f"{path}: real {json.dumps(a)}, sim {json.dumps(b)}")
    return out
