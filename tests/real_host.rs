//! The real host ([`RealHost`]) against a scratch dom0: a sysfs-like tree
//! built in a temporary folder the way Linux lays it out (device folders
//! under `devices/pci0000:00`, relative symlinks for `driver`,
//! `iommu_group`, `physfn`, `virtfnN`, `/sys/block` and `/sys/class/net`,
//! holders), a scratch `/proc`, and fake `xl`, `ip` and `xenstore-*`
//! programs (fixtures in `tests/real_host/bin`) that answer from
//! `tests/real_host/canned` and record their argv.
//!
//! What a scratch tree cannot show: the kernel's side of a write. Writing
//! a BDF to a plain `unbind` file unbinds nothing, `new_slot` adds no line
//! to `slots`, and no write can fail with `ENODEV` or `EBUSY` as the
//! kernel's would. The tests check what we control: which file gets which
//! bytes, in one write, and the errors we can provoke (missing files,
//! directories in the way, our own driver check).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;
use xenpci::bdf::Bdf;
use xenpci::host::real::{RealHost, Roots};
use xenpci::host::{BlockUse, Domain, Host, ManagedFile, NetUse, PciDevice};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_host")
}

fn bdf(text: &str) -> Bdf {
    text.parse().expect("a BDF")
}

/// `to` as a link target relative to the folder `from`, as sysfs has them.
fn relative(from: &Path, to: &Path) -> PathBuf {
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
struct PciFn {
    /// Its folder under `sys/devices`.
    path: &'static str,
    vendor: u16,
    device: u16,
    class: u32,
    driver: Option<&'static str>,
    iommu_group: Option<u32>,
    boot_vga: Option<bool>,
    header_type: u8,
}

impl PciFn {
    fn new(path: &'static str, vendor: u16, device: u16, class: u32) -> Self {
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
    fn driver(mut self, d: &'static str) -> Self {
        self.driver = Some(d);
        self
    }
    fn group(mut self, g: u32) -> Self {
        self.iommu_group = Some(g);
        self
    }
    fn bdf(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// A scratch dom0 in a temporary folder: `sys/`, `proc/`, `dev/`,
/// `files/` (the root of managed files), `bin/` (fake tools), `xs/` (the
/// fake xenstore), `argv.log` (what the fake tools were run with).
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.root().join("sys").join(rel)
    }

    fn write(&self, rel: &str, contents: &str) {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, contents).expect("write");
    }

    /// A relative symlink at `link` to `target`, both under the root.
    fn link(&self, link: &str, target: &str) {
        let link = self.root().join(link);
        let target = self.root().join(target);
        let parent = link.parent().expect("a parent");
        fs::create_dir_all(parent).expect("mkdir");
        symlink(relative(parent, &target), &link).expect("symlink");
    }

    fn add_fn(&self, f: &PciFn) {
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
            self.link(&format!("{dir}/driver"), &format!("sys/bus/pci/drivers/{d}"));
            self.link(&format!("sys/bus/pci/drivers/{d}/{bdf}"), &dir);
        }
        if let Some(g) = f.iommu_group {
            fs::create_dir_all(self.sys(&format!("kernel/iommu_groups/{g}/devices"))).expect("mkdir");
            self.link(&format!("{dir}/iommu_group"), &format!("sys/kernel/iommu_groups/{g}"));
            self.link(&format!("sys/kernel/iommu_groups/{g}/devices/{bdf}"), &dir);
        }
        self.link(&format!("sys/bus/pci/devices/{bdf}"), &dir);
    }

    fn add_driver(&self, name: &str, pciback: bool) {
        for file in ["bind", "unbind", "new_id", "remove_id"] {
            self.write(&format!("sys/bus/pci/drivers/{name}/{file}"), "");
        }
        if pciback {
            for file in ["new_slot", "remove_slot", "permissive", "quirks", "irq_handlers"] {
                self.write(&format!("sys/bus/pci/drivers/{name}/{file}"), "");
            }
        }
    }

    /// A block device node: `dev`, `size`, empty `holders/`.
    fn add_block(&self, dir: &str, dev: &str, partition: Option<u32>) {
        self.write(&format!("{dir}/dev"), &format!("{dev}\n"));
        self.write(&format!("{dir}/size"), "1000215216\n");
        fs::create_dir_all(self.root().join(dir).join("holders")).expect("mkdir");
        if let Some(n) = partition {
            self.write(&format!("{dir}/partition"), &format!("{n}\n"));
        }
    }

    /// The root every test starts from.
    fn dom0() -> Self {
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

        let mut host_bridge = PciFn::new("pci0000:00/0000:00:00.0", 0x8086, 0x29c0, 0x060000).group(0);
        host_bridge.header_type = 0;
        s.add_fn(&host_bridge);
        let mut vga = PciFn::new("pci0000:00/0000:00:02.0", 0x8086, 0x46a6, 0x030000)
            .driver("i915")
            .group(1);
        vga.boot_vga = Some(true);
        s.add_fn(&vga);
        s.add_fn(&PciFn::new("pci0000:00/0000:00:19.0", 0x8086, 0x153a, 0x020000).driver("e1000").group(2));
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
        s.add_fn(&PciFn::new("pci0000:00/0000:00:1d.0/0000:03:00.0", 0x144d, 0xa808, 0x010802).driver("nvme").group(12));
        // SR-IOV: a physical function and two virtual ones beside it.
        s.add_fn(&PciFn::new("pci0000:00/0000:00:1c.0/0000:04:00.0", 0x8086, 0x1521, 0x020000).driver("igb").group(13));
        s.add_fn(&PciFn::new("pci0000:00/0000:00:1c.0/0000:04:10.0", 0x8086, 0x1520, 0x020000).driver("pciback").group(14));
        s.add_fn(&PciFn::new("pci0000:00/0000:00:1c.0/0000:04:10.4", 0x8086, 0x1520, 0x020000).group(15));
        let pf = "sys/devices/pci0000:00/0000:00:1c.0/0000:04:00.0";
        s.link(&format!("{pf}/virtfn0"), "sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.0");
        s.link(&format!("{pf}/virtfn1"), "sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.4");
        for vf in ["0000:04:10.0", "0000:04:10.4"] {
            s.link(&format!("sys/devices/pci0000:00/0000:00:1c.0/{vf}/physfn"), pf);
        }
        // An Intel VMD domain: a name xl cannot express, so not a BDF here.
        s.add_fn(&PciFn::new("pci10000:00/10000:00:02.0", 0x8086, 0x09ab, 0x010400));

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
            s.link(&format!("{dir}/slaves/nvme0n1p3"), &format!("{disk}/nvme0n1p3"));
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
        s.link(&format!("{eno1}/device"), "sys/devices/pci0000:00/0000:00:19.0");
        s.link("sys/class/net/eno1", eno1);
        let enp = format!("{pf}/net/enp4s0");
        s.write(&format!("{enp}/flags"), "0x1002\n");
        s.write(&format!("{enp}/operstate"), "down\n");
        s.link(&format!("{enp}/device"), pf);
        s.link(&format!("{enp}/master"), "sys/devices/virtual/net/br0");
        s.link("sys/class/net/enp4s0", &enp);
        for v in ["lo", "br0"] {
            s.write(&format!("sys/devices/virtual/net/{v}/flags"), "0x1003\n");
            s.link(&format!("sys/class/net/{v}"), &format!("sys/devices/virtual/net/{v}"));
        }

        // /proc, /dev/kmsg, the fake tools and their answers.
        for f in ["mountinfo", "mounts"] {
            fs::create_dir_all(s.root().join("proc/self")).expect("mkdir");
            fs::copy(fixtures().join("proc").join(f), s.root().join("proc/self").join(f)).expect("copy");
        }
        fs::copy(fixtures().join("proc/swaps"), s.root().join("proc/swaps")).expect("copy");
        fs::create_dir_all(s.root().join("dev")).expect("mkdir");
        fs::copy(fixtures().join("canned/kmsg"), s.root().join("dev/kmsg")).expect("copy");
        fs::create_dir_all(s.root().join("canned")).expect("mkdir");
        for entry in fs::read_dir(fixtures().join("canned")).expect("canned") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), s.root().join("canned").join(entry.file_name())).expect("copy");
        }
        fs::create_dir_all(s.root().join("bin")).expect("mkdir");
        for tool in ["xl", "ip"] {
            s.install_tool(tool, tool);
        }
        for verb in ["read", "write", "rm", "list"] {
            s.install_tool("xenstore", &format!("xenstore-{verb}"));
        }
        fs::create_dir_all(s.root().join("xs")).expect("mkdir");
        fs::create_dir_all(s.root().join("files")).expect("mkdir");
        s
    }

    fn install_tool(&self, fixture: &str, name: &str) {
        let to = self.root().join("bin").join(name);
        fs::copy(fixtures().join("bin").join(fixture), &to).expect("copy");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn roots(&self) -> Roots {
        Roots {
            sys: self.root().join("sys"),
            proc: self.root().join("proc"),
            dev: self.root().join("dev"),
            files: self.root().join("files"),
            xl: self.root().join("bin/xl"),
            xenstore: self.root().join("bin/xenstore"),
            ip: self.root().join("bin/ip"),
        }
    }

    fn host(&self) -> RealHost {
        RealHost::with_roots(self.roots())
    }

    /// Every regular file under `sys/`, with its bytes.
    fn sys_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
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
    fn runs(&self) -> Vec<Vec<String>> {
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
    fn xs_set(&self, path: &str, value: &str) {
        self.write(&format!("xs{path}/.value"), value);
    }
}

/// Runs `op` and returns the files under `sys/` it changed, with their new
/// bytes.
fn changes(s: &Scratch, op: impl FnOnce(&mut RealHost)) -> Vec<(String, String)> {
    let before = s.sys_files();
    let mut host = s.host();
    op(&mut host);
    let after = s.sys_files();
    after
        .iter()
        .filter(|(p, bytes)| before.get(*p) != Some(bytes))
        .map(|(p, bytes)| {
            let rel = p.strip_prefix(s.root().join("sys")).expect("under sys");
            (rel.display().to_string(), String::from_utf8_lossy(bytes).into_owned())
        })
        .collect()
}

fn pair(path: &str, bytes: &str) -> (String, String) {
    (path.to_string(), bytes.to_string())
}

#[test]
fn listing_reads_every_attribute_sorted_and_skips_non_bdfs() {
    let s = Scratch::dom0();
    let devices = s.host().pci_devices().expect("devices");
    let dev = |b: &str, vendor, device, class, driver: Option<&str>, group| PciDevice {
        bdf: bdf(b),
        vendor,
        device,
        class,
        driver: driver.map(str::to_string),
        is_bridge: class >> 16 == 0x06,
        boot_vga: false,
        iommu_group: group,
        physfn: None,
        virtfns: vec![],
    };
    let mut expected = vec![
        dev("0000:00:00.0", 0x8086, 0x29c0, 0x060000, None, Some(0)),
        dev("0000:00:02.0", 0x8086, 0x46a6, 0x030000, Some("i915"), Some(1)),
        dev("0000:00:19.0", 0x8086, 0x153a, 0x020000, Some("e1000"), Some(2)),
        dev("0000:00:1c.0", 0x8086, 0x8c10, 0x060400, Some("pcieport"), Some(7)),
        dev("0000:00:1d.0", 0x8086, 0x8c18, 0x060400, Some("pcieport"), Some(8)),
        dev("0000:03:00.0", 0x144d, 0xa808, 0x010802, Some("nvme"), Some(12)),
        dev("0000:04:00.0", 0x8086, 0x1521, 0x020000, Some("igb"), Some(13)),
        dev("0000:04:10.0", 0x8086, 0x1520, 0x020000, Some("pciback"), Some(14)),
        dev("0000:04:10.4", 0x8086, 0x1520, 0x020000, None, Some(15)),
    ];
    expected[1].boot_vga = true;
    expected[6].virtfns = vec![bdf("0000:04:10.0"), bdf("0000:04:10.4")];
    expected[7].physfn = Some(bdf("0000:04:00.0"));
    expected[8].physfn = Some(bdf("0000:04:00.0"));
    assert_eq!(devices, expected);
    assert_eq!(s.host().pci_device(&bdf("00:19.0")).expect("read"), Some(expected[2].clone()));
    assert_eq!(s.host().pci_device(&bdf("00:09.0")).expect("read"), None);
}

#[test]
fn a_bridge_header_type_counts_even_with_another_class() {
    let s = Scratch::dom0();
    let mut odd = PciFn::new("pci0000:00/0000:00:1e.0", 0x8086, 0x244e, 0x0b4000);
    odd.header_type = 0x01;
    s.add_fn(&odd);
    let dev = s.host().pci_device(&bdf("00:1e.0")).expect("read").expect("present");
    assert!(dev.is_bridge);
}

#[test]
fn drivers_are_loaded_when_their_folder_exists() {
    let s = Scratch::dom0();
    let host = s.host();
    assert!(host.driver_loaded("pciback").expect("check"));
    assert!(!host.driver_loaded("vfio-pci").expect("check"));
    assert!(host.driver_loaded("../drivers").is_err());
}

#[test]
fn unbind_bind_and_slots_write_the_bdf_once_into_the_right_file() {
    let s = Scratch::dom0();
    let nic = bdf("00:19.0");
    assert_eq!(
        changes(&s, |h| h.dev_unbind(&nic, "e1000").expect("unbind")),
        [pair("bus/pci/drivers/e1000/unbind", "0000:00:19.0")]
    );
    assert_eq!(
        changes(&s, |h| h.pciback_new_slot(&nic).expect("new_slot")),
        [pair("bus/pci/drivers/pciback/new_slot", "0000:00:19.0")]
    );
    assert_eq!(
        changes(&s, |h| h.dev_bind(&nic, "pciback").expect("bind")),
        [pair("bus/pci/drivers/pciback/bind", "0000:00:19.0")]
    );
    assert_eq!(
        changes(&s, |h| h.pciback_remove_slot(&nic).expect("remove_slot")),
        [pair("bus/pci/drivers/pciback/remove_slot", "0000:00:19.0")]
    );
    assert_eq!(
        changes(&s, |h| h.dev_reprobe(&nic).expect("reprobe")),
        [pair("bus/pci/drivers_probe", "0000:00:19.0")]
    );
}

#[test]
fn reprobe_clears_a_driver_override_first() {
    let s = Scratch::dom0();
    let vf = bdf("04:10.4");
    s.write("sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.4/driver_override", "pciback\n");
    assert_eq!(
        changes(&s, |h| h.dev_reprobe(&vf).expect("reprobe")),
        [
            pair("bus/pci/drivers_probe", "0000:04:10.4"),
            pair("devices/pci0000:00/0000:00:1c.0/0000:04:10.4/driver_override", "\n"),
        ]
    );
}

#[test]
fn slots_are_read_from_pciback() {
    let s = Scratch::dom0();
    s.write("sys/bus/pci/drivers/pciback/slots", "0000:04:10.0\n0000:00:19.0\n");
    assert_eq!(
        s.host().pciback_slots().expect("slots"),
        [bdf("00:19.0"), bdf("04:10.0")]
    );
}

#[test]
fn errors_name_the_exact_path() {
    let s = Scratch::dom0();
    let sys = s.root().join("sys");
    let mut host = s.host();
    let err = host.dev_unbind(&bdf("04:00.0"), "e1000").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "write 0000:04:00.0 to {}: No such device (0000:04:00.0 is bound to igb)",
            sys.join("bus/pci/drivers/e1000/unbind").display()
        )
    );
    let err = host.dev_unbind(&bdf("04:10.4"), "igb").unwrap_err().to_string();
    assert!(err.ends_with("No such device (0000:04:10.4 has no driver)"), "{err}");
    let err = host.dev_bind(&bdf("00:19.0"), "vfio-pci").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "write 0000:00:19.0 to {}: No such file or directory",
            sys.join("bus/pci/drivers/vfio-pci/bind").display()
        )
    );
    let err = host.dev_bind(&bdf("00:19.0"), "broken").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "write 0000:00:19.0 to {}: Is a directory",
            sys.join("bus/pci/drivers/broken/bind").display()
        )
    );
    fs::remove_file(sys.join("bus/pci/drivers/pciback/slots")).expect("rm");
    let err = host.pciback_slots().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "read {}: No such file or directory",
            sys.join("bus/pci/drivers/pciback/slots").display()
        )
    );
    fs::remove_file(sys.join("devices/pci0000:00/0000:00:19.0/vendor")).expect("rm");
    let err = host.pci_device(&bdf("00:19.0")).unwrap_err().to_string();
    assert!(err.starts_with("read "), "{err}");
    assert!(err.ends_with("0000:00:19.0/vendor: No such file or directory"), "{err}");
}

#[test]
fn dom0_use_finds_the_root_disk_swap_and_lvm() {
    let s = Scratch::dom0();
    let used = s.host().dom0_use(&bdf("03:00.0")).expect("use");
    let block = |name: &str, mounts: &[&str], swap, holders: &[&str]| BlockUse {
        name: name.into(),
        mounts: mounts.iter().map(|m| m.to_string()).collect(),
        swap,
        holders: holders.iter().map(|h| h.to_string()).collect(),
    };
    let expected = vec![
        block("nvme0n1", &[], false, &[]),
        block("nvme0n1p1", &["/boot/efi"], false, &[]),
        block("nvme0n1p2", &["/"], false, &[]),
        block("nvme0n1p3", &["/home"], true, &["dm-0", "dm-1"]),
        block("nvme0n1p4", &[], true, &[]),
    ];
    assert_eq!(used.block, expected);
    assert!(used.net.is_empty());
    // Behind a bridge counts too.
    assert_eq!(s.host().dom0_use(&bdf("00:1d.0")).expect("use").block, expected);
    // Without mountinfo, /proc/self/mounts is matched by name.
    fs::remove_file(s.root().join("proc/self/mountinfo")).expect("rm");
    let used = s.host().dom0_use(&bdf("03:00.0")).expect("use");
    assert_eq!(used.block[2].mounts, ["/"]);
    assert_eq!(used.block[3].mounts, ["/home"]);
    assert_eq!(used.block[1].mounts, Vec::<String>::new());
}

#[test]
fn dom0_use_finds_the_nic_up_with_address_and_default_route() {
    let s = Scratch::dom0();
    let used = s.host().dom0_use(&bdf("00:19.0")).expect("use");
    assert!(used.block.is_empty());
    assert_eq!(
        used.net,
        [NetUse {
            name: "eno1".into(),
            up: true,
            addresses: vec!["192.0.2.10/24".into()],
            routes: vec!["default via 192.0.2.1".into(), "192.0.2.0/24".into()],
            master: None,
        }]
    );
    let runs = s.runs();
    assert_eq!(
        runs,
        [
            vec!["ip", "-j", "addr", "show", "dev", "eno1"],
            vec!["ip", "-j", "route", "show", "dev", "eno1"],
            vec!["ip", "-j", "-6", "route", "show", "dev", "eno1"],
        ]
    );
    let used = s.host().dom0_use(&bdf("04:00.0")).expect("use");
    assert_eq!(
        used.net,
        [NetUse {
            name: "enp4s0".into(),
            master: Some("br0".into()),
            ..NetUse::default()
        }]
    );
    // The bridge sees the interface behind it; a VF beside the PF does not.
    assert_eq!(s.host().dom0_use(&bdf("00:1c.0")).expect("use").net.len(), 1);
    assert_eq!(s.host().dom0_use(&bdf("04:10.4")).expect("use"), Default::default());
}

#[test]
fn dom0_use_of_an_unused_or_missing_device_is_empty() {
    let s = Scratch::dom0();
    assert_eq!(s.host().dom0_use(&bdf("00:02.0")).expect("use"), Default::default());
    assert_eq!(s.host().dom0_use(&bdf("00:09.0")).expect("use"), Default::default());
    // No /sys/block, no /sys/class/net, no /proc files at all.
    fs::remove_dir_all(s.sys("block")).expect("rm");
    fs::remove_dir_all(s.sys("class")).expect("rm");
    fs::remove_dir_all(s.root().join("proc")).expect("rm");
    assert_eq!(s.host().dom0_use(&bdf("03:00.0")).expect("use"), Default::default());
}

#[test]
fn xs_read_tells_absent_from_present_and_from_failure() {
    let s = Scratch::dom0();
    s.xs_set("/libxl/pci/0000-00-19-0/driver_path", "/sys/bus/pci/drivers/e1000");
    let mut host = s.host();
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/driver_path").expect("read").as_deref(),
        Some("/sys/bus/pci/drivers/e1000")
    );
    assert_eq!(host.xs_read("/libxl/pci/0000-00-19-0/name").expect("read"), None);
    assert_eq!(host.xs_directory("/libxl/pci").expect("list"), ["0000-00-19-0"]);
    assert!(host.xs_directory("/libxl/nothing").expect("list").is_empty());
    // Written raw: a backslash and a newline survive the round trip.
    host.xs_write("/libxl/pci/0000-00-19-0/name", "nic\\0\nx").expect("write");
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/name").expect("read").as_deref(),
        Some("nic\\0\nx")
    );
    host.xs_rm("/libxl/pci/0000-00-19-0").expect("rm");
    host.xs_rm("/libxl/pci/0000-00-19-0").expect("rm of an absent node");
    host.xs_rm("/no/such/parent").expect("rm under an absent parent");
    assert_eq!(host.xs_read("/libxl/pci/0000-00-19-0/driver_path").expect("read"), None);
    let runs = s.runs();
    assert_eq!(runs[0], ["xenstore-read", "-R", "--", "/libxl/pci/0000-00-19-0/driver_path"]);
    assert!(runs.contains(&vec![
        "xenstore-write".to_string(),
        "-R".into(),
        "--".into(),
        "/libxl/pci/0000-00-19-0/name".into(),
        "nic\\0\nx".into(),
    ]));
    // A tool that cannot reach xenstored is a failure, not an absent node.
    s.write("xs-down", "");
    let err = host.xs_read("/libxl/pci").unwrap_err().to_string();
    assert!(err.contains("xs_open"), "{err}");
    assert!(host.xs_directory("/libxl/pci").is_err());
}

#[test]
fn xl_arguments_arrive_intact_and_results_are_kept() {
    let s = Scratch::dom0();
    let mut host = s.host();
    let args: Vec<String> = ["pci-attach", "0; reboot", "$(id)", "0000:00:19.0,permissive=1"]
        .map(String::from)
        .to_vec();
    let out = host.xl(&args).expect("xl runs");
    assert_eq!(out.rc, 0);
    assert_eq!(out.argv[1..], args[..]);
    assert_eq!(s.runs(), [["xl", "pci-attach", "0; reboot", "$(id)", "0000:00:19.0,permissive=1"]]);
    let out = host.xl(&["fail".to_string()]).expect("xl runs");
    assert_eq!(out.rc, 3);
    assert_eq!(out.stderr, "libxl: error: libxl_pci.c:1234: it broke\n");
    let out = host.xl(&["pci-assignable-list".to_string()]).expect("xl runs");
    assert_eq!(out.stdout, "0000:04:10.0 \n");
    assert_eq!(
        host.domains().expect("domains"),
        [
            Domain { domid: 0, name: "Domain-0".into() },
            Domain { domid: 3, name: "guest1".into() },
        ]
    );
}

#[test]
fn toolstack_is_not_running_without_xen() {
    let s = Scratch::dom0();
    assert!(!s.host().toolstack_running().expect("probe"));
    assert!(s.runs().is_empty(), "nothing is run outside dom0");
    // A guest (no control_d) is not dom0 either.
    s.write("proc/xen/capabilities", "\n");
    assert!(!s.host().toolstack_running().expect("probe"));
    // dom0, but xenstored does not answer.
    s.write("proc/xen/capabilities", "control_d\n");
    s.write("xs-down", "");
    assert!(!s.host().toolstack_running().expect("probe"));
}

#[test]
fn toolstack_runs_in_dom0_when_xenstored_answers() {
    let s = Scratch::dom0();
    s.write("proc/xen/capabilities", "control_d\n");
    s.xs_set("/local/domain/0/name", "Domain-0");
    let host = s.host();
    assert!(host.toolstack_running().expect("probe"));
    assert!(host.toolstack_running().expect("probe"));
    assert_eq!(s.runs(), [["xenstore-read", "-R", "--", "/local/domain/0/name"]]);
}

#[test]
fn kernel_log_reads_like_dmesg() {
    let s = Scratch::dom0();
    let log = s.host().kernel_log().expect("log");
    assert_eq!(
        log,
        "[    5.140900] pciback 0000:04:10.0: seizing device\n\
         [   81.234567] pciback 0000:04:10.0: Driver tried to write to a read-only configuration \
         space field at offset 0x4c, size 2. This may be harmless, but if you have problems \
         with your device:\n1) see permissive attribute in sysfs\n"
    );
}

#[test]
fn managed_files_are_created_with_their_folders_and_modes() {
    let s = Scratch::dom0();
    let mut host = s.host();
    assert_eq!(host.file_read(ManagedFile::DriverRecord).expect("read"), None);
    host.file_write(ManagedFile::DriverRecord, b"{}\n").expect("write");
    host.file_write(ManagedFile::ModprobeHide, b"options xen-pciback hide=(0000:00:19.0)\n")
        .expect("write");
    assert_eq!(host.file_read(ManagedFile::DriverRecord).expect("read").as_deref(), Some(&b"{}\n"[..]));
    let mode = |rel: &str| {
        fs::metadata(s.root().join("files").join(rel)).expect("stat").permissions().mode() & 0o7777
    };
    assert_eq!(mode("var/lib/xenpci"), 0o755);
    assert_eq!(mode("var/lib/xenpci/drivers.json"), 0o644);
    assert_eq!(mode("etc/modprobe.d/xenpci-pciback.conf"), 0o644);
    host.commit().expect("commit");
}
