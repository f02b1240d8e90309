//! Tests of the simulated xl against what XEN-LAB.md recorded on a real
//! Xen 4.17.7 dom0 under QEMU, and against libxl's source where the lab
//! did not look.

use super::super::load::parse;
use super::super::snapshot::Snapshot;
use super::run;
use crate::bdf::Bdf;
use crate::host::{CommandOutput, HostError, PCIBACK};

/// The lab's dom0: q35, two e1000 candidates at 00:04.0 and 00:05.0 (no
/// sysfs reset under QEMU), a guest with passthrough and one without.
const LAB: &str = r#"{
  "drivers": ["virtio-pci", "e1000", "pciback"],
  "devices": [
    {"bdf": "00:00.0", "vendor": "0x8086", "device": "0x29c0", "class": "0x060000"},
    {"bdf": "00:02.0", "vendor": "0x1af4", "device": "0x1000", "class": "0x020000", "driver": "virtio-pci",
     "dom0_use": {"net": [{"name": "enp0s2", "up": true, "addresses": ["10.0.2.15/24"]}]}},
    {"bdf": "00:04.0", "vendor": "0x8086", "device": "0x100e", "class": "0x020000", "driver": "e1000", "reset": false},
    {"bdf": "00:05.0", "vendor": "0x8086", "device": "0x100e", "class": "0x020000", "driver": "e1000", "reset": false},
    {"bdf": "00:06.0", "vendor": "0x1234", "device": "0x11e8", "class": "0x00ff00"}
  ],
  "domains": [
    {"domid": 1, "name": "guest1", "passthrough": "enabled"},
    {"domid": 2, "name": "guest2"}
  ]
}"#;

fn lab() -> Snapshot {
    parse(LAB).expect("lab snapshot")
}

fn xl(s: &mut Snapshot, line: &str) -> CommandOutput {
    let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    run(s, &args).expect("simulated")
}

fn b(t: &str) -> Bdf {
    Bdf::parse(t).unwrap()
}

fn driver(s: &Snapshot, t: &str) -> Option<String> {
    s.dev(&b(t)).unwrap().driver.clone()
}

const E: &str = "libxl: error: libxl_pci.c:";

#[test]
fn add_binds_records_the_driver_and_quarantines() {
    let mut s = lab();
    let out = xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(
        (out.rc, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(out.argv, ["xl", "pci-assignable-add", "00:04.0"]);
    assert_eq!(driver(&s, "00:04.0").as_deref(), Some(PCIBACK));
    assert!(s.dev(&b("00:04.0")).unwrap().quarantined);
    assert_eq!(s.pciback.slots, [b("00:04.0")]);
    assert_eq!(
        s.xs_get("/libxl/pci/0000-00-04-0/driver_path").as_deref(),
        Some("/sys/bus/pci/drivers/e1000")
    );
    assert_eq!(
        s.kernel_log.last().unwrap(),
        "pciback 0000:00:04.0: seizing device"
    );
}

#[test]
fn add_again_warns_and_succeeds() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:04.0");
    let out = xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(out.rc, 0);
    assert_eq!(
        out.stderr,
        "libxl: warning: libxl_pci.c:802:libxl__device_pci_assignable_add: 0000:00:04.0 already assigned to pciback\n"
    );
}

#[test]
fn add_ignores_a_second_bdf_and_refuses_a_missing_device() {
    let mut s = lab();
    assert_eq!(xl(&mut s, "pci-assignable-add 00:04.0 00:05.0").rc, 0);
    assert_eq!(driver(&s, "00:05.0").as_deref(), Some("e1000"));
    let out = xl(&mut s, "pci-assignable-add 00:09.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!("{E}792:libxl__device_pci_assignable_add: Couldn't lstat /sys/bus/pci/devices/0000:00:09.0: No such file or directory\n")
    );
}

#[test]
fn list_has_a_trailing_space_and_names_with_n() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add -n nic4 00:04.0");
    xl(&mut s, "pci-assignable-add 00:05.0");
    assert_eq!(
        xl(&mut s, "pci-assignable-list").stdout,
        "0000:00:04.0 \n0000:00:05.0 \n"
    );
    assert_eq!(
        xl(&mut s, "pci-assignable-list -n").stdout,
        "0000:00:04.0 nic4\n0000:00:05.0 \n"
    );
    // Adding again without -n drops the name (libxl removes "name").
    xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(
        xl(&mut s, "pci-assignable-list --show-names").stdout,
        "0000:00:04.0 \n0000:00:05.0 \n"
    );
}

#[test]
fn a_device_bound_by_hand_is_listed_one_attached_is_not() {
    let mut s = lab();
    s.sysfs_unbind(&b("00:05.0"), "e1000").unwrap();
    s.sysfs_new_slot(&b("00:05.0")).unwrap();
    s.sysfs_bind(&b("00:05.0"), PCIBACK).unwrap();
    assert_eq!(xl(&mut s, "pci-assignable-list").stdout, "0000:00:05.0 \n");
    // Never quarantined: attach works (Xen takes it from dom0) ...
    let out = xl(&mut s, "pci-attach guest1 00:05.0");
    assert_eq!(out.rc, 0, "{}", out.stderr);
    assert_eq!(xl(&mut s, "pci-assignable-list").stdout, "");
    // ... and remove cannot de-quarantine it.
    let mut s2 = lab();
    s2.sysfs_unbind(&b("00:05.0"), "e1000").unwrap();
    s2.sysfs_new_slot(&b("00:05.0")).unwrap();
    s2.sysfs_bind(&b("00:05.0"), PCIBACK).unwrap();
    let out = xl(&mut s2, "pci-assignable-remove -r 00:05.0");
    assert_eq!(out.rc, 1);
    assert!(
        out.stderr.contains("failed to de-quarantine 0000:00:05.0"),
        "{}",
        out.stderr
    );
}

#[test]
fn remove_with_r_rebinds_and_keeps_the_empty_folder() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:04.0");
    let out = xl(&mut s, "pci-assignable-remove -r 00:04.0");
    assert_eq!(out.rc, 0);
    assert_eq!(
        out.stderr,
        "libxl: info: libxl_pci.c:925:libxl__device_pci_assignable_remove: Rebinding to driver at /sys/bus/pci/drivers/e1000\n"
    );
    assert_eq!(driver(&s, "00:04.0").as_deref(), Some("e1000"));
    assert!(!s.dev(&b("00:04.0")).unwrap().quarantined);
    assert!(s.pciback.slots.is_empty());
    assert_eq!(s.xs_get("/libxl/pci/0000-00-04-0").as_deref(), Some(""));
    assert!(s.xs_children("/libxl/pci/0000-00-04-0").is_empty());
    // A second remove cannot de-quarantine.
    let out = xl(&mut s, "pci-assignable-remove -r 00:04.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!(
            "{E}906:libxl__device_pci_assignable_remove: failed to de-quarantine 0000:00:04.0\n"
        )
    );
}

#[test]
fn remove_without_r_leaves_the_device_driverless() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:04.0");
    let out = xl(&mut s, "pci-assignable-remove 00:04.0");
    assert_eq!((out.rc, out.stderr.as_str()), (0, ""));
    assert_eq!(driver(&s, "00:04.0"), None);
    assert!(s.xs_get("/libxl/pci/0000-00-04-0/driver_path").is_some());
}

#[test]
fn remove_by_name() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add --name=nic 00:04.0");
    assert_eq!(xl(&mut s, "pci-assignable-remove -r nic").rc, 0);
    assert_eq!(driver(&s, "00:04.0").as_deref(), Some("e1000"));
    let out = xl(&mut s, "pci-assignable-remove nic");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (2, "pci-assignable-remove: malformed BDF 'nic'\n")
    );
}

#[test]
fn a_failed_bind_is_not_rolled_back() {
    let mut s = lab();
    s.dev_mut(&b("00:04.0")).unwrap().bind_fails = serde_json::from_str(r#"["pciback"]"#).unwrap();
    let out = xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!(
            "{E}380:sysfs_write_bdf: write to /sys/bus/pci/drivers/pciback/bind returned -1: No such device\n\
             {E}729:pciback_dev_assign: Couldn't bind device to pciback!: No such device\n\
             {E}830:libxl__device_pci_assignable_add: Couldn't bind device to pciback!\n"
        )
    );
    assert_eq!(driver(&s, "00:04.0"), None);
    assert!(s.xs_get("/libxl/pci/0000-00-04-0/driver_path").is_some());
}

#[test]
fn without_iommu_add_binds_but_cannot_quarantine() {
    let mut s = lab();
    s.iommu = false;
    let out = xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!("{E}848:libxl__device_pci_assignable_add: failed to quarantine 0000:00:04.0\n")
    );
    assert_eq!(driver(&s, "00:04.0").as_deref(), Some(PCIBACK));
    assert_eq!(xl(&mut s, "pci-assignable-remove -r 00:04.0").rc, 1);
}

#[test]
fn without_pciback_add_fails_and_list_is_empty() {
    let mut s = lab();
    s.drivers.retain(|d| d != PCIBACK);
    let out = xl(&mut s, "pci-assignable-add 00:04.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!("{E}693:pciback_dev_is_assigned: Looks like pciback driver is not loaded\n")
    );
    let out = xl(&mut s, "pci-assignable-list");
    assert_eq!((out.rc, out.stdout.as_str()), (0, ""));
    assert_eq!(
        out.stderr,
        format!("{E}444:libxl_device_pci_assignable_list: Looks like pciback driver not loaded\n")
    );
}

#[test]
fn without_the_toolstack_xl_cannot_start() {
    let mut s = lab();
    s.toolstack = false;
    let out = xl(&mut s, "pci-assignable-list");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        "xencall: error: Could not obtain handle on privileged command interface: No such file or directory\n\
         libxl: error: libxl.c:102:libxl_ctx_alloc: cannot open libxc handle: No such file or directory\n\
         cannot init xl context\n"
    );
}

#[test]
fn command_line_errors_are_xls() {
    let mut s = lab();
    let out = xl(&mut s, "pci-frobnicate");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (1, "command not implemented\n")
    );
    // A unique prefix is the command; an ambiguous one is not.
    assert_eq!(xl(&mut s, "pci-assignable-l").rc, 0);
    assert_eq!(xl(&mut s, "pci-a").stderr, "command not implemented\n");
    let out = xl(&mut s, "pci-assignable-add");
    assert_eq!(out.rc, 2);
    assert_eq!(
        out.stderr,
        "'xl pci-assignable-add' requires at least 1 argument.\n\n"
    );
    assert!(out.stdout.starts_with("Usage: xl [-vtTf] pci-assignable-add [options] <BDF>\n\nMake a device assignable for pci-passthru.\n\nOptions:\n\n-n NAME"));
    let out = xl(&mut s, "pci-assignable-add -x 00:04.0");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (2, "option `x' not supported.\n")
    );
    let out = xl(&mut s, "pci-assignable-add -h");
    assert_eq!((out.rc, out.stderr.as_str()), (0, ""));
    assert!(out.stdout.starts_with("Usage: xl"));
    let out = xl(&mut s, "pci-assignable-add 0x:zz");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (2, "pci-assignable-add: malformed BDF \"0x:zz\"\n")
    );
    let out = xl(&mut s, "-N pci-assignable-add 00:04.0");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (1, "command does not implement -N (dryrun) option\n")
    );
    assert_eq!(xl(&mut s, "-q list").stderr, "unknown global option\n");
    assert!(matches!(
        run(&mut s, &["create".to_string()]),
        Err(HostError::Other(_))
    ));
}

#[test]
fn attach_list_and_detach_as_in_the_lab() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:05.0");
    let out = xl(&mut s, "pci-attach guest1 00:05.0");
    assert_eq!(out.rc, 0);
    assert_eq!(
        out.stderr,
        format!("{E}1573:libxl__device_pci_reset: The kernel doesn't support reset from sysfs for PCI device 0000:00:05.0\n")
    );
    assert_eq!(
        xl(&mut s, "pci-list guest1").stdout,
        "Vdev Device\n00.0 0000:00:05.0\n"
    );
    assert_eq!(
        s.xs_get("/libxl/pci/0000-00-05-0/domid").as_deref(),
        Some("1")
    );
    assert!(!s.dev(&b("00:05.0")).unwrap().quarantined);
    // Not assignable: 00:04.0 is still on e1000.
    let out = xl(&mut s, "pci-attach 1 00:04.0");
    assert_eq!(out.rc, 1);
    assert_eq!(
        out.stderr,
        format!(
            "{E}1677:libxl__device_pci_add: Domain 1:PCI device 0:0:4.0 is not assignable\n\
             {E}1809:device_pci_add_done: Domain 1:libxl__device_pci_add failed for PCI device 0:0:4.0 (rc -3)\n\
             libxl: error: libxl_device.c:1486:device_addrm_aocomplete: unable to add device\n"
        )
    );
    let out = xl(&mut s, "pci-detach guest1 00:04.0");
    assert_eq!(out.rc, 1);
    assert!(
        out.stderr
            .contains("Domain 1:PCI device not attached to this domain"),
        "{}",
        out.stderr
    );
    let out = xl(&mut s, "pci-detach guest1 00:05.0");
    assert_eq!(out.rc, 0, "{}", out.stderr);
    assert_eq!(xl(&mut s, "pci-list guest1").stdout, "");
    // Back in quarantine, hence assignable again, and removable.
    assert!(s.dev(&b("00:05.0")).unwrap().quarantined);
    assert_eq!(xl(&mut s, "pci-assignable-list").stdout, "0000:00:05.0 \n");
    assert_eq!(xl(&mut s, "pci-assignable-remove -r 00:05.0").rc, 0);
}

#[test]
fn attach_needs_passthrough_and_an_iommu() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:05.0");
    let out = xl(&mut s, "pci-attach guest2 00:05.0");
    assert_eq!(out.rc, 1);
    assert!(
        out.stderr
            .contains("Domain 2:xc_assign_device failed: Operation not supported\n"),
        "{}",
        out.stderr
    );
    // libxl drops the domid record again; the device stays assignable.
    assert_eq!(s.xs_get("/libxl/pci/0000-00-05-0/domid"), None);
    assert_eq!(xl(&mut s, "pci-assignable-list").stdout, "0000:00:05.0 \n");
}

#[test]
fn attach_with_options_and_vslot() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:05.0");
    let out = xl(&mut s, "pci-attach guest1 00:05.0@3,permissive=1");
    assert_eq!(out.rc, 0, "{}", out.stderr);
    assert_eq!(
        xl(&mut s, "pci-list guest1").stdout,
        "Vdev Device\n03.0 0000:00:05.0\n"
    );
    assert_eq!(s.pciback.permissive, [b("00:05.0")]);
    let be = "/local/domain/0/backend/pci/1/0";
    assert_eq!(
        s.xs_get(&format!("{be}/opts-0")).as_deref(),
        Some("msitranslate=0,power_mgmt=0,permissive=1,rdm_policy=strict")
    );
    let out = xl(&mut s, "pci-attach guest1 00:05.0,bogus=1");
    assert_eq!(out.rc, 2);
    assert_eq!(
        out.stderr,
        "Unknown PCI_SPEC_STRING option: boguspci-attach: malformed PCI_SPEC_STRING \"00:05.0,bogus=1\"\n"
    );
}

#[test]
fn forced_detach_of_a_device_not_attached_still_succeeds() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:05.0");
    xl(&mut s, "pci-attach guest1 00:05.0");
    xl(&mut s, "pci-assignable-add 00:04.0");
    let out = xl(&mut s, "pci-detach -f guest1 00:04.0");
    assert_eq!(out.rc, 0);
    assert!(out
        .stderr
        .contains("PCI device not attached to this domain"));
    assert!(out
        .stderr
        .contains("Domain 1:xc_deassign_device failed: No such device"));
    assert!(out.stderr.contains("Couldn't find the device on xenstore"));
    assert_eq!(
        xl(&mut s, "pci-list guest1").stdout,
        "Vdev Device\n00.0 0000:00:05.0\n"
    );
}

#[test]
fn domains_are_found_by_name_or_number() {
    let mut s = lab();
    let out = xl(&mut s, "pci-list nosuch");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (1, "nosuch is an invalid domain identifier (rc=-6)\n")
    );
    let out = xl(&mut s, "list");
    assert_eq!(
        out.stdout,
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
         Domain-0                                     0   768     2     r-----       0.0\n\
         guest1                                       1   512     1     -b----       0.0\n\
         guest2                                       2   512     1     -b----       0.0\n"
    );
    let out = xl(&mut s, "list 7");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (1, "Error: Domain '7' does not exist.\n")
    );
    assert_eq!(xl(&mut s, "list guest2").stdout.lines().count(), 2);
}

#[test]
fn messages_carry_the_lines_of_the_snapshots_xl_version() {
    // The lines the real 4.20.5-pre dom0 of the lab printed (4.17.7: 802, 906).
    let mut s = lab();
    s.xl_version = Some("4.20.5-pre".into());
    xl(&mut s, "pci-assignable-add 00:05.0");
    let out = xl(&mut s, "pci-assignable-add 00:05.0");
    assert_eq!(
        out.stderr,
        "libxl: warning: libxl_pci.c:803:libxl__device_pci_assignable_add: 0000:00:05.0 already assigned to pciback\n"
    );
    let out = xl(&mut s, "pci-attach 1 00:04.0");
    assert_eq!(
        out.stderr,
        format!(
            "{E}1688:libxl__device_pci_add: Domain 1:PCI device 0:0:4.0 is not assignable\n\
             {E}1820:device_pci_add_done: Domain 1:libxl__device_pci_add failed for PCI device 0:0:4.0 (rc -3)\n\
             libxl: error: libxl_device.c:1500:device_addrm_aocomplete: unable to add device\n"
        )
    );
    let out = xl(&mut s, "pci-attach guest1 00:05.0");
    assert_eq!(
        out.stderr,
        format!("{E}1584:libxl__device_pci_reset: The kernel doesn't support reset from sysfs for PCI device 0000:00:05.0\n")
    );
    assert_eq!(xl(&mut s, "pci-detach guest1 00:05.0").rc, 0);
    assert_eq!(xl(&mut s, "pci-assignable-remove -r 00:05.0").rc, 0);
    let out = xl(&mut s, "pci-assignable-remove -r 00:05.0");
    assert_eq!(
        out.stderr,
        format!(
            "{E}907:libxl__device_pci_assignable_remove: failed to de-quarantine 0000:00:05.0\n"
        )
    );
    // 4.18 and 4.19 kept 4.17's lines there.
    s.xl_version = Some("4.19.2".into());
    let out = xl(&mut s, "pci-assignable-remove -r 00:05.0");
    assert!(out.stderr.contains("libxl_pci.c:906:"), "{}", out.stderr);
}

#[test]
fn a_domain_that_is_gone_is_reported_as_its_version_reports_it() {
    let mut s = lab();
    xl(&mut s, "pci-assignable-add 00:05.0");
    // What the lab's 4.17.7 dom0 printed.
    let out = xl(&mut s, "pci-attach 7 00:05.0");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (
            1,
            "libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for domid=7\n\
             libxl: error: libxl_pci.c:1573:libxl__device_pci_reset: The kernel doesn't support reset from sysfs for PCI device 0000:00:05.0\n\
             libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for domid=7\n\
             libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for domid=7\n\
             libxl: error: libxl_pci.c:1809:device_pci_add_done: Domain 7:libxl__device_pci_add failed for PCI device 0:0:5.0 (rc -3)\n\
             libxl: error: libxl_device.c:1486:device_addrm_aocomplete: unable to add device\n"
        )
    );
    let out = xl(&mut s, "pci-detach 7 00:05.0");
    assert_eq!(
        (out.rc, out.stderr.as_str()),
        (
            1,
            "libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for domid=7\n\
             libxl: error: libxl_device.c:1486:device_addrm_aocomplete: unable to remove device\n"
        )
    );
    s.xl_version = Some("4.20.5-pre".into());
    let out = xl(&mut s, "pci-attach 7 00:05.0");
    assert!(
        out.stderr.starts_with(
            "libxl: error: libxl_dom.c:37:libxl__domain_type: Domain 7:unable to get dominfo: No such process\n"
        ),
        "{}",
        out.stderr
    );
}
