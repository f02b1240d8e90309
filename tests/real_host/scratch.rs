//! The scratch dom0 of the real-host tests: a sysfs-like tree in a
//! temporary folder laid out as Linux lays it out, a scratch `/proc` and
//! `/dev/kmsg`, and the fake tools of `bin/` answering from `canned/`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;
use xenpci::bdf::Bdf;
use xenpci::host::real::{RealHost, Roots};

pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_host")
}

pub(super) fn bdf(text: &str) -> Bdf {
    text.parse().expect("a BDF")
}

/// `to` as a link target relative to the folder `from`, as sysfs has them.
pub(super) fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

/// One PCI function to put in the tree.
pub(super) struct PciFn {
    /// Its folder under `sys/devices`.
    pub(super) path: &'static str,
    pub(super) vendor: u16,
    pub(super) device: u16,
    pub(super) class: u32,
    pub(super) driver: Option<&'static str>,
    pub(super) iommu_group: Option<u32>,
    pub(super) boot_vga: Option<bool>,
    /// Byte 0x0e of configuration space.
    pub(super) header_type: u8,
}

impl PciFn {
    pub(super) fn new(path: &'static str, vendor: u16, device: u16, class: u32) -> Self {
        PciFn {
            path,
            vendor,
            device,
            class,
            driver: None,
            iommu_group: None,
            boot_vga: None,
            header_type: 0,
        }
    }
    pub(super) fn driver(mut self, d: &'static str) -> Self {
        self.driver = Some(d);
        self
    }
    pub(super) fn group(mut self, g: u32) -> Self {
        self.iommu_group = Some(g);
        self
    }
    pub(super) fn bdf(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// A scratch dom0 in a temporary folder: `sys/`, `proc/`, `dev/`,
/// `files/` (the root of managed files), `bin/` (fake tools), `xs/` (the
/// fake xenstore), `argv.log` (what the fake tools were run with).
pub(super) struct Scratch {
    dir: TempDir,
}

impl Scratch {
    pub(super) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn sys(&self, rel: &str) -> PathBuf {
        self.root().join("sys").join(rel)
    }

    pub(super) fn write(&self, rel: &str, contents: &str) {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, contents).expect("write");
    }

    /// A relative symlink at `link` to `target`, both under the root.
    pub(super) fn link(&self, link: &str, target: &str) {
        let link = self.root().join(link);
        let target = self.root().join(target);
        let parent = link.parent().expect("a parent");
        fs::create_dir_all(parent).expect("mkdir");
        symlink(relative(parent, &target), &link).expect("symlink");
    }

    pub(super) fn add_fn(&self, f: &PciFn) {
        let dir = format!("sys/devices/{}", f.path);
        let bdf = f.bdf();
        self.write(&format!("{dir}/vendor"), &format!("0x{:04x}\n", f.vendor));
        self.write(&format!("{dir}/device"), &format!("0x{:04x}\n", f.device));
        self.write(&format!("{dir}/class"), &format!("0x{:06x}\n", f.class));
        self.write(&format!("{dir}/driver_override"), "(null)\n");
        self.write(&format!("{dir}/enable"), "1\n");
        let mut config = vec![0u8; 64];
        config[..2].copy_from_slice(&f.vendor.to_le_bytes());
        config[2..4].copy_from_slice(&f.device.to_le_bytes());
        config[0x0e] = f.header_type;
        fs::write(self.root().join(&dir).join("config"), config).expect("config");
        if let Some(vga) = f.boot_vga {
            self.write(&format!("{dir}/boot_vga"), if vga { "1\n" } else { "0\n" });
        }
        if let Some(d) = f.driver {
            self.link(
                &format!("{dir}/driver"),
                &format!("sys/bus/pci/drivers/{d}"),
            );
            self.link(&format!("sys/bus/pci/drivers/{d}/{bdf}"), &dir);
        }
        if let Some(g) = f.iommu_group {
            fs::create_dir_all(self.sys(&format!("kernel/iommu_groups/{g}/devices")))
                .expect("mkdir");
            self.link(
                &format!("{dir}/iommu_group"),
                &format!("sys/kernel/iommu_groups/{g}"),
            );
            self.link(&format!("sys/kernel/iommu_groups/{g}/devices/{bdf}"), &dir);
        }
        self.link(&format!("sys/bus/pci/devices/{bdf}"), &dir);
    }

    pub(super) fn add_driver(&self, name: &str, pciback: bool) {
        for file in ["bind", "unbind", "new_id", "remove_id"] {
            self.write(&format!("sys/bus/pci/drivers/{name}/{file}"), "");
        }
        if pciback {
            for file in [
                "new_slot",
                "remove_slot",
                "permissive",
                "quirks",
                "irq_handlers",
            ] {
                self.write(&format!("sys/bus/pci/drivers/{name}/{file}"), "");
            }
        }
    }

    /// A block device node: `dev`, `size`, empty `holders/`.
    pub(super) fn add_block(&self, dir: &str, dev: &str, partition: Option<u32>) {
        self.write(&format!("{dir}/dev"), &format!("{dev}\n"));
        self.write(&format!("{dir}/size"), "1000215216\n");
        fs::create_dir_all(self.root().join(dir).join("holders")).expect("mkdir");
        if let Some(n) = partition {
            self.write(&format!("{dir}/partition"), &format!("{n}\n"));
        }
    }

    /// The root every test starts from.
    pub(super) fn dom0() -> Self {
        let s = Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for d in ["e1000", "nvme", "i915", "igb", "pcieport", "pciback"] {
            s.add_driver(d, d == "pciback");
        }
        s.write("sys/bus/pci/drivers/pciback/slots", "0000:04:10.0\n");
        s.write("sys/bus/pci/drivers_probe", "");
        s.write("sys/bus/pci/rescan", "");
        // A driver whose `bind` cannot be written: a folder in its place.
        fs::create_dir_all(s.sys("bus/pci/drivers/broken/bind")).expect("mkdir");

        let mut host_bridge =
            PciFn::new("pci0000:00/0000:00:00.0", 0x8086, 0x29c0, 0x060000).group(0);
        host_bridge.header_type = 0;
        s.add_fn(&host_bridge);
        let mut vga = PciFn::new("pci0000:00/0000:00:02.0", 0x8086, 0x46a6, 0x030000)
            .driver("i915")
            .group(1);
        vga.boot_vga = Some(true);
        s.add_fn(&vga);
        s.add_fn(
            &PciFn::new("pci0000:00/0000:00:19.0", 0x8086, 0x153a, 0x020000)
                .driver("e1000")
                .group(2),
        );
        let mut root_port = PciFn::new("pci0000:00/0000:00:1c.0", 0x8086, 0x8c10, 0x060400)
            .driver("pcieport")
            .group(7);
        root_port.header_type = 0x81;
        s.add_fn(&root_port);
        let mut nvme_port = PciFn::new("pci0000:00/0000:00:1d.0", 0x8086, 0x8c18, 0x060400)
            .driver("pcieport")
            .group(8);
        nvme_port.header_type = 0x01;
        s.add_fn(&nvme_port);
        s.add_fn(
            &PciFn::new(
                "pci0000:00/0000:00:1d.0/0000:03:00.0",
                0x144d,
                0xa808,
                0x010802,
            )
            .driver("nvme")
            .group(12),
        );
        // SR-IOV: a physical function and two virtual ones beside it.
        s.add_fn(
            &PciFn::new(
                "pci0000:00/0000:00:1c.0/0000:04:00.0",
                0x8086,
                0x1521,
                0x020000,
            )
            .driver("igb")
            .group(13),
        );
        s.add_fn(
            &PciFn::new(
                "pci0000:00/0000:00:1c.0/0000:04:10.0",
                0x8086,
                0x1520,
                0x020000,
            )
            .driver("pciback")
            .group(14),
        );
        s.add_fn(
            &PciFn::new(
                "pci0000:00/0000:00:1c.0/0000:04:10.4",
                0x8086,
                0x1520,
                0x020000,
            )
            .group(15),
        );
        let pf = "sys/devices/pci0000:00/0000:00:1c.0/0000:04:00.0";
        s.link(
            &format!("{pf}/virtfn0"),
            "sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.0",
        );
        s.link(
            &format!("{pf}/virtfn1"),
            "sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.4",
        );
        for vf in ["0000:04:10.0", "0000:04:10.4"] {
            s.link(
                &format!("sys/devices/pci0000:00/0000:00:1c.0/{vf}/physfn"),
                pf,
            );
        }
        // An Intel VMD domain: a name xl cannot express, so not a BDF here.
        s.add_fn(&PciFn::new(
            "pci10000:00/10000:00:02.0",
            0x8086,
            0x09ab,
            0x010400,
        ));

        // The NVMe disk: partitions 1 (/boot/efi), 2 (/), 3 (LVM: vg0-home
        // mounted on /home, vg0-swap as swap), 4 (swap).
        let disk = "sys/devices/pci0000:00/0000:00:1d.0/0000:03:00.0/nvme/nvme0/nvme0n1";
        s.add_block(disk, "259:0", None);
        for n in 1..=4 {
            s.add_block(&format!("{disk}/nvme0n1p{n}"), &format!("259:{n}"), Some(n));
        }
        s.link("sys/block/nvme0n1", disk);
        for (dm, name, minor) in [("dm-0", "vg0-home", 0), ("dm-1", "vg0-swap", 1)] {
            let dir = format!("sys/devices/virtual/block/{dm}");
            s.add_block(&dir, &format!("254:{minor}"), None);
            s.write(&format!("{dir}/dm/name"), &format!("{name}\n"));
            s.link(
                &format!("{dir}/slaves/nvme0n1p3"),
                &format!("{disk}/nvme0n1p3"),
            );
            s.link(&format!("{disk}/nvme0n1p3/holders/{dm}"), &dir);
            s.link(&format!("sys/block/{dm}"), &dir);
        }
        s.add_block("sys/devices/virtual/block/loop0", "7:0", None);
        s.link("sys/block/loop0", "sys/devices/virtual/block/loop0");

        // Network: eno1 on 00:19.0 (up, addressed, default route); enp4s0
        // on the PF 04:00.0 (down, a port of br0); lo and br0 virtual.
        let eno1 = "sys/devices/pci0000:00/0000:00:19.0/net/eno1";
        s.write(&format!("{eno1}/flags"), "0x1003\n");
        s.write(&format!("{eno1}/operstate"), "up\n");
        s.link(
            &format!("{eno1}/device"),
            "sys/devices/pci0000:00/0000:00:19.0",
        );
        s.link("sys/class/net/eno1", eno1);
        let enp = format!("{pf}/net/enp4s0");
        s.write(&format!("{enp}/flags"), "0x1002\n");
        s.write(&format!("{enp}/operstate"), "down\n");
        s.link(&format!("{enp}/device"), pf);
        s.link(&format!("{enp}/master"), "sys/devices/virtual/net/br0");
        s.link("sys/class/net/enp4s0", &enp);
        for v in ["lo", "br0"] {
            s.write(&format!("sys/devices/virtual/net/{v}/flags"), "0x1003\n");
            s.link(
                &format!("sys/class/net/{v}"),
                &format!("sys/devices/virtual/net/{v}"),
            );
        }

        // /proc, /dev/kmsg, the fake tools and their answers.
        for f in ["mountinfo", "mounts"] {
            fs::create_dir_all(s.root().join("proc/self")).expect("mkdir");
            fs::copy(
                fixtures().join("proc").join(f),
                s.root().join("proc/self").join(f),
            )
            .expect("copy");
        }
        fs::copy(fixtures().join("proc/swaps"), s.root().join("proc/swaps")).expect("copy");
        fs::create_dir_all(s.root().join("dev")).expect("mkdir");
        fs::copy(fixtures().join("canned/kmsg"), s.root().join("dev/kmsg")).expect("copy");
        fs::create_dir_all(s.root().join("canned")).expect("mkdir");
        for entry in fs::read_dir(fixtures().join("canned")).expect("canned") {
            let entry = entry.expect("entry");
            fs::copy(
                entry.path(),
                s.root().join("canned").join(entry.file_name()),
            )
            .expect("copy");
        }
        fs::create_dir_all(s.root().join("bin")).expect("mkdir");
        for tool in ["xl", "ip", "modprobe", "update-initramfs"] {
            s.install_tool(tool, tool);
        }
        for verb in ["read", "write", "rm", "list"] {
            s.install_tool("xenstore", &format!("xenstore-{verb}"));
        }
        fs::create_dir_all(s.root().join("xs")).expect("mkdir");
        fs::create_dir_all(s.root().join("files")).expect("mkdir");
        s
    }

    pub(super) fn install_tool(&self, fixture: &str, name: &str) {
        let to = self.root().join("bin").join(name);
        fs::copy(fixtures().join("bin").join(fixture), &to).expect("copy");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    pub(super) fn roots(&self) -> Roots {
        Roots {
            sys: self.root().join("sys"),
            proc: self.root().join("proc"),
            dev: self.root().join("dev"),
            files: self.root().join("files"),
            xl: self.root().join("bin/xl"),
            xenstore: self.root().join("bin/xenstore"),
            ip: self.root().join("bin/ip"),
            modprobe: self.root().join("bin/modprobe"),
            update_initramfs: self.root().join("bin/update-initramfs"),
        }
    }

    pub(super) fn host(&self) -> RealHost {
        RealHost::with_roots(self.roots())
    }

    /// Every regular file under `sys/`, with its bytes.
    pub(super) fn sys_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).expect("read_dir") {
                let entry = entry.expect("entry");
                let kind = entry.file_type().expect("type");
                if kind.is_dir() {
                    walk(&entry.path(), out);
                } else if kind.is_file() {
                    out.insert(entry.path(), fs::read(entry.path()).expect("read"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root().join("sys"), &mut out);
        out
    }

    /// The invocations of the fake tools: each the tool's name, then its
    /// arguments exactly as received.
    pub(super) fn runs(&self) -> Vec<Vec<String>> {
        let Ok(log) = fs::read(self.root().join("argv.log")) else {
            return Vec::new();
        };
        let mut fields = log
            .split(|b| *b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let mut out = Vec::new();
        while let Some(count) = fields.next() {
            let Ok(n) = count.parse::<usize>() else { break };
            let run: Vec<String> = fields.by_ref().take(n + 1).collect();
            out.push(run);
        }
        out
    }

    /// Sets a xenstore node in the fake store.
    pub(super) fn xs_set(&self, path: &str, value: &str) {
        self.write(&format!("xs{path}/.value"), value);
    }
}

/// Runs `op` and returns the files under `sys/` it changed, with their new
/// bytes.
pub(super) fn changes(s: &Scratch, op: impl FnOnce(&mut RealHost)) -> Vec<(String, String)> {
    let before = s.sys_files();
    let mut host = s.host();
    op(&mut host);
    let after = s.sys_files();
    after
        .iter()
        .filter(|(p, bytes)| before.get(*p) != Some(bytes))
        .map(|(p, bytes)| {
            let rel = p.strip_prefix(s.root().join("sys")).expect("under sys");
            (
                rel.display().to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
            )
        })
        .collect()
}

pub(super) fn pair(path: &str, bytes: &str) -> (String, String) {
    (path.to_string(), bytes.to_string())
}
