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

mod scratch;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use scratch::{bdf, changes, pair, PciFn, Scratch};
use xenpci::host::{BlockUse, Domain, Host, ManagedFile, NetUse, PciDevice};

#[test]
fn listing_reads_every_attribute_sorted_and_skips_non_bdfs() {
    let s = Scratch::dom0();
    let devices = s.host().pci_devices().expect("devices");
    let dev = |b: &str, vendor, device, class, driver: Option<&str>, group| PciDevice {
        bdf: bdf(b),
        vendor,
        device,
        subsystem_vendor: 0,
        subsystem_device: 0,
        class,
        driver: driver.map(str::to_string),
        is_bridge: class >> 16 == 0x06,
        conventional_bridge: false,
        parent: None,
        boot_vga: false,
        iommu_group: group,
        physfn: None,
        virtfns: vec![],
        sriov: None,
    };
    let mut expected = vec![
        dev("0000:00:00.0", 0x8086, 0x29c0, 0x060000, None, Some(0)),
        dev(
            "0000:00:02.0",
            0x8086,
            0x46a6,
            0x030000,
            Some("i915"),
            Some(1),
        ),
        dev(
            "0000:00:19.0",
            0x8086,
            0x153a,
            0x020000,
            Some("e1000"),
            Some(2),
        ),
        dev(
            "0000:00:1c.0",
            0x8086,
            0x8c10,
            0x060400,
            Some("pcieport"),
            Some(7),
        ),
        dev(
            "0000:00:1d.0",
            0x8086,
            0x8c18,
            0x060400,
            Some("pcieport"),
            Some(8),
        ),
        dev(
            "0000:03:00.0",
            0x144d,
            0xa808,
            0x010802,
            Some("nvme"),
            Some(12),
        ),
        dev(
            "0000:04:00.0",
            0x8086,
            0x1521,
            0x020000,
            Some("igb"),
            Some(13),
        ),
        dev(
            "0000:04:10.0",
            0x8086,
            0x1520,
            0x020000,
            Some("pciback"),
            Some(14),
        ),
        dev("0000:04:10.4", 0x8086, 0x1520, 0x020000, None, Some(15)),
    ];
    expected[1].boot_vga = true;
    expected[6].virtfns = vec![bdf("0000:04:10.0"), bdf("0000:04:10.4")];
    expected[7].physfn = Some(bdf("0000:04:00.0"));
    expected[8].physfn = Some(bdf("0000:04:00.0"));
    // The bridge above each, from where its sysfs folder sits.
    expected[5].parent = Some(bdf("0000:00:1d.0"));
    for d in &mut expected[6..=8] {
        d.parent = Some(bdf("0000:00:1c.0"));
    }
    assert_eq!(devices, expected);
    assert_eq!(
        s.host().pci_device(&bdf("00:19.0")).expect("read"),
        Some(expected[2].clone())
    );
    assert_eq!(s.host().pci_device(&bdf("00:09.0")).expect("read"), None);
}

#[test]
fn a_bridge_header_type_counts_even_with_another_class() {
    let s = Scratch::dom0();
    let mut odd = PciFn::new("pci0000:00/0000:00:1e.0", 0x8086, 0x244e, 0x0b4000);
    odd.header_type = 0x01;
    s.add_fn(&odd);
    let dev = s
        .host()
        .pci_device(&bdf("00:1e.0"))
        .expect("read")
        .expect("present");
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
    s.write(
        "sys/devices/pci0000:00/0000:00:1c.0/0000:04:10.4/driver_override",
        "pciback\n",
    );
    assert_eq!(
        changes(&s, |h| h.dev_reprobe(&vf).expect("reprobe")),
        [
            pair("bus/pci/drivers_probe", "0000:04:10.4"),
            pair(
                "devices/pci0000:00/0000:00:1c.0/0000:04:10.4/driver_override",
                "\n"
            ),
        ]
    );
}

#[test]
fn slots_are_read_from_pciback() {
    let s = Scratch::dom0();
    s.write(
        "sys/bus/pci/drivers/pciback/slots",
        "0000:04:10.0\n0000:00:19.0\n",
    );
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
    let err = host
        .dev_unbind(&bdf("04:00.0"), "e1000")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "write 0000:04:00.0 to {}: No such device (0000:04:00.0 is bound to igb)",
            sys.join("bus/pci/drivers/e1000/unbind").display()
        )
    );
    let err = host
        .dev_unbind(&bdf("04:10.4"), "igb")
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("No such device (0000:04:10.4 has no driver)"),
        "{err}"
    );
    let err = host
        .dev_bind(&bdf("00:19.0"), "vfio-pci")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "write 0000:00:19.0 to {}: No such file or directory",
            sys.join("bus/pci/drivers/vfio-pci/bind").display()
        )
    );
    let err = host
        .dev_bind(&bdf("00:19.0"), "broken")
        .unwrap_err()
        .to_string();
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
    assert!(
        err.ends_with("0000:00:19.0/vendor: No such file or directory"),
        "{err}"
    );
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
    assert_eq!(
        s.host().dom0_use(&bdf("00:1d.0")).expect("use").block,
        expected
    );
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
    assert_eq!(
        s.host().dom0_use(&bdf("00:1c.0")).expect("use").net.len(),
        1
    );
    assert_eq!(
        s.host().dom0_use(&bdf("04:10.4")).expect("use"),
        Default::default()
    );
}

#[test]
fn dom0_use_of_an_unused_or_missing_device_is_empty() {
    let s = Scratch::dom0();
    assert_eq!(
        s.host().dom0_use(&bdf("00:02.0")).expect("use"),
        Default::default()
    );
    assert_eq!(
        s.host().dom0_use(&bdf("00:09.0")).expect("use"),
        Default::default()
    );
    // No /sys/block, no /sys/class/net, no /proc files at all.
    fs::remove_dir_all(s.sys("block")).expect("rm");
    fs::remove_dir_all(s.sys("class")).expect("rm");
    fs::remove_dir_all(s.root().join("proc")).expect("rm");
    assert_eq!(
        s.host().dom0_use(&bdf("03:00.0")).expect("use"),
        Default::default()
    );
}

#[test]
fn xs_read_tells_absent_from_present_and_from_failure() {
    let s = Scratch::dom0();
    s.xs_set(
        "/libxl/pci/0000-00-19-0/driver_path",
        "/sys/bus/pci/drivers/e1000",
    );
    let mut host = s.host();
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/driver_path")
            .expect("read")
            .as_deref(),
        Some("/sys/bus/pci/drivers/e1000")
    );
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/name").expect("read"),
        None
    );
    assert_eq!(
        host.xs_directory("/libxl/pci").expect("list"),
        ["0000-00-19-0"]
    );
    assert!(host
        .xs_directory("/libxl/nothing")
        .expect("list")
        .is_empty());
    // Written raw: a backslash and a newline survive the round trip.
    host.xs_write("/libxl/pci/0000-00-19-0/name", "nic\\0\nx")
        .expect("write");
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/name")
            .expect("read")
            .as_deref(),
        Some("nic\\0\nx")
    );
    host.xs_rm("/libxl/pci/0000-00-19-0").expect("rm");
    host.xs_rm("/libxl/pci/0000-00-19-0")
        .expect("rm of an absent node");
    host.xs_rm("/no/such/parent")
        .expect("rm under an absent parent");
    assert_eq!(
        host.xs_read("/libxl/pci/0000-00-19-0/driver_path")
            .expect("read"),
        None
    );
    let runs = s.runs();
    assert_eq!(
        runs[0],
        [
            "xenstore-read",
            "-R",
            "--",
            "/libxl/pci/0000-00-19-0/driver_path"
        ]
    );
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
    let args: Vec<String> = [
        "pci-attach",
        "0; reboot",
        "$(id)",
        "0000:00:19.0,permissive=1",
    ]
    .map(String::from)
    .to_vec();
    let out = host.xl(&args).expect("xl runs");
    assert_eq!(out.rc, 0);
    assert_eq!(out.argv[1..], args[..]);
    assert_eq!(
        s.runs(),
        [[
            "xl",
            "pci-attach",
            "0; reboot",
            "$(id)",
            "0000:00:19.0,permissive=1"
        ]]
    );
    let out = host.xl(&["fail".to_string()]).expect("xl runs");
    assert_eq!(out.rc, 3);
    assert_eq!(out.stderr, "libxl: error: libxl_pci.c:1234: it broke\n");
    let out = host
        .xl(&["pci-assignable-list".to_string()])
        .expect("xl runs");
    assert_eq!(out.stdout, "0000:04:10.0 \n");
    assert_eq!(
        host.domains().expect("domains"),
        [
            Domain {
                domid: 0,
                name: "Domain-0".into()
            },
            Domain {
                domid: 3,
                name: "guest1".into()
            },
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
    assert_eq!(
        s.runs(),
        [["xenstore-read", "-R", "--", "/local/domain/0/name"]]
    );
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
    assert_eq!(
        host.file_read(ManagedFile::DriverRecord).expect("read"),
        None
    );
    host.file_write(ManagedFile::DriverRecord, b"{}\n")
        .expect("write");
    host.file_write(
        ManagedFile::ModprobeHide,
        b"options xen-pciback hide=(0000:00:19.0)\n",
    )
    .expect("write");
    assert_eq!(
        host.file_read(ManagedFile::DriverRecord)
            .expect("read")
            .as_deref(),
        Some(&b"{}\n"[..])
    );
    let mode = |rel: &str| {
        fs::metadata(s.root().join("files").join(rel))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("var/lib/xenpci"), 0o755);
    assert_eq!(mode("var/lib/xenpci/drivers.json"), 0o644);
    assert_eq!(mode("etc/modprobe.d/xenpci-pciback.conf"), 0o644);
    host.commit().expect("commit");
}

#[test]
fn boot_drivers_resolve_the_modalias_and_name_builtins() {
    let s = Scratch::dom0();
    s.write(
        "sys/bus/pci/devices/0000:00:19.0/modalias",
        "pci:v00008086d0000153Asv00008086sd00002054bc02sc00i00\n",
    );
    s.write(
        "sys/bus/pci/devices/0000:00:1c.0/modalias",
        "pci:v00008086d00008C10sv00000000sd00000000bc06sc04i00\n",
    );
    s.write(
        "sys/bus/pci/devices/0000:00:02.0/modalias",
        "pci:v00008086d000046A6sv00000000sd00000000bc03sc00i00\n",
    );
    s.write("proc/sys/kernel/osrelease", "6.1.0-28-amd64\n");
    s.write(
        "files/lib/modules/6.1.0-28-amd64/modules.builtin",
        "kernel/drivers/pci/pcie/pcieport.ko\nkernel/drivers/ata/libata.ko\n",
    );
    let host = s.host();
    let nic = host.boot_drivers(&bdf("00:19.0")).expect("boot drivers");
    assert_eq!(nic.modules, ["e1000e"]);
    assert!(nic.builtin.is_empty());
    let port = host.boot_drivers(&bdf("00:1c.0")).expect("boot drivers");
    assert_eq!(port.builtin, ["pcieport"]);
    // No module for the alias (modprobe fails): nothing to wait for.
    let vga = host.boot_drivers(&bdf("00:02.0")).expect("boot drivers");
    assert_eq!(vga, Default::default());
    // No modalias file at all: the same.
    let none = host.boot_drivers(&bdf("03:00.0")).expect("boot drivers");
    assert!(none.modules.is_empty());
    // kmod prints a module twice when its id and class aliases both match.
    s.write(
        "sys/bus/pci/devices/0000:03:00.0/modalias",
        "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02\n",
    );
    let nvme = host.boot_drivers(&bdf("03:00.0")).expect("boot drivers");
    assert_eq!(nvme.modules, ["nvme"]);
    let runs = s.runs();
    assert_eq!(
        runs[0],
        [
            "modprobe",
            "-R",
            "pci:v00008086d0000153Asv00008086sd00002054bc02sc00i00"
        ]
    );
}

#[test]
fn boot_files_are_written_with_their_modes_removed_and_the_initramfs_rebuilt() {
    let s = Scratch::dom0();
    let mut host = s.host();
    assert_eq!(
        host.initramfs_tool().expect("probe"),
        xenpci::host::InitramfsTool::InitramfsTools
    );
    host.file_write(ManagedFile::InitramfsHook, b"#!/bin/sh\n")
        .expect("write");
    let hook = s
        .root()
        .join("files/etc/initramfs-tools/hooks/xenpci-pciback");
    let mode = fs::metadata(&hook).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "initramfs-tools runs only executable hooks");
    host.file_remove(ManagedFile::InitramfsHook)
        .expect("remove");
    assert!(!hook.exists());
    host.file_remove(ManagedFile::InitramfsHook)
        .expect("removing an absent file is no error");
    let out = host.initramfs_rebuild().expect("run");
    assert_eq!(out.rc, 0);
    s.write("initramfs-fails", "");
    let failed = host.initramfs_rebuild().expect("run");
    assert_eq!(failed.rc, 1);
    assert_eq!(failed.error_line(), "E: mkinitramfs failure gzip 1");
    let runs = s.runs();
    assert_eq!(runs[0], ["update-initramfs", "-u", "-k", "all"]);
}

#[test]
fn xen_version_is_the_hypervisors() {
    let s = Scratch::dom0();
    assert_eq!(s.host().xen_version().expect("read"), None);
    s.write("sys/hypervisor/version/major", "4\n");
    s.write("sys/hypervisor/version/minor", "14\n");
    assert_eq!(s.host().xen_version().expect("read"), Some((4, 14)));
    let refused = xenpci::host::check_xen_version(&s.host()).expect_err("4.14 is refused");
    assert!(refused.to_string().contains("Xen 4.14"), "{refused}");
    s.write("sys/hypervisor/version/minor", "20\n");
    assert!(xenpci::host::check_xen_version(&s.host()).is_ok());
}

#[test]
fn an_initramfs_built_by_dracut_is_named_not_managed() {
    let s = Scratch::dom0();
    fs::remove_file(s.root().join("bin/update-initramfs")).expect("rm");
    assert_eq!(
        s.host().initramfs_tool().expect("probe"),
        xenpci::host::InitramfsTool::None
    );
    s.write("files/usr/bin/dracut", "#!/bin/sh\n");
    assert_eq!(
        s.host().initramfs_tool().expect("probe"),
        xenpci::host::InitramfsTool::Unmanaged("dracut".into())
    );
}
