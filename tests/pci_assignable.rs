//! pci_assignable: one snapshot per scenario folder under
//! `tests/pci_assignable/` on a simulated dom0 (check, apply, re-apply,
//! and what changed on the host, through [`check_apply_reapply_on_host`]),
//! and the properties a snapshot states less plainly.
//!
//! A scenario folder holds `args.json` and either its own `host.json` or a
//! `host.txt` naming a shipped snapshot (`typical`, `sriov`) with an
//! optional `patch.json`..

use serde_json::{json, Value};

use crate::util::run_on_shipped;

const BIN: &str = "pci_assignable";

/// Result keys check mode cannot know: `assignable` is the list as it is
/// before the run in check mode (documented so), after it when applied.
const MAY_DIFFER: [&str; 1] = ["assignable"];

host_scenarios!(BIN, "pci_assignable/*/args.json", MAY_DIFFER);

/// The 64 virtual functions of the SR-IOV host in one run: every one
/// changes, ends on pciback and is listed assignable; a second run is a
/// no-op for all 64.
#[test]
fn sriov_64_vfs_in_one_run() {
    let vfs: Vec<String> = (1..=64u32)
        .map(|i| format!("0000:81:{:02x}.{}", i >> 3, i & 7))
        .collect();
    let args = json!({ "devices": vfs });
    let (ran, changes, dir) = run_on_shipped(BIN, "sriov", &json!({}), &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let devices = ran.json["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 64);
    for (d, want) in devices.iter().zip(&vfs) {
        assert_eq!(d["bdf"], json!(want));
        assert_eq!(d["driver_before"], json!("iavf"), "{d}");
        assert_eq!(d["driver_after"], json!("pciback"), "{d}");
        assert_eq!(d["changed"], json!(true), "{d}");
    }
    let listed: Vec<&Value> = ran.json["assignable"]
        .as_array()
        .expect("assignable")
        .iter()
        .map(|a| &a["bdf"])
        .collect();
    assert_eq!(listed.len(), 64, "{listed:?}");
    for vf in &vfs {
        let driver = &changes[format!(".devices[{vf}].driver")];
        assert_eq!(driver["after"], json!("pciback"), "{vf}: {driver}");
    }
    // The PF keeps its driver and its 64 VFs.
    assert!(changes
        .as_object()
        .expect("changes")
        .keys()
        .all(|k| !k.starts_with(".devices[0000:81:00.0]")));
    // Again, on the host the first run left.
    let host = dir.path().join(crate::util::HOST_FILE);
    let again = crate::util::run_module(
        BIN,
        &args,
        &[("XENPCI_HOST", host.to_str().expect("UTF-8"))],
    );
    assert_eq!(again.json["changed"], json!(false), "{}", again.stdout);
    assert_eq!(again.json["actions"], json!([]));
}

/// Check mode changes nothing even where apply would fail half-way.
#[test]
fn check_mode_leaves_the_host_alone() {
    let patch = json!({"devices": {"03:00.0": {"bind_fails": ["pciback"]}}});
    let args = json!({"devices": ["03:00.0", "04:00.0", "05:00.*"], "_ansible_check_mode": true});
    let (ran, changes, _dir) = run_on_shipped(BIN, "typical", &patch, &args);
    assert_eq!(ran.json["changed"], json!(true), "{}", ran.stdout);
    assert_eq!(changes, json!({}));
}

/// The `bdf` alias takes one string.
#[test]
fn bdf_alias() {
    let (ran, _, _dir) = run_on_shipped(BIN, "typical", &json!({}), &json!({"bdf": "03:00.0"}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["devices"][0]["bdf"], json!("0000:03:00.0"));
}

/// A bind the kernel refuses is rolled back, by either method, and so is a
/// device xl bound but Xen would not quarantine (`assign_fails`, as for a
/// device with RMRRs; without an IOMMU the plan refuses first, see the
/// scenario `xl-no-iommu`): the run fails
/// naming the command or the sysfs file, its actions end with the rollback,
/// and the device is on its original driver afterwards. (The scenarios
/// `kernel-refuses-bind-*` snapshot the same runs.)
#[test]
fn refused_bind_is_rolled_back() {
    let patch = json!({"devices": {"03:00.0": {"bind_fails": {"pciback": "EIO"}}}});
    let no_quarantine = json!({"devices": {"03:00.0": {"assign_fails": "EPERM"}}});
    for (method, patch, named) in [
        ("xl", &patch, "`xl pci-assignable-add 0000:03:00.0` failed"),
        (
            "sysfs",
            &patch,
            "/sys/bus/pci/drivers/pciback/bind: I/O error",
        ),
        ("xl", &no_quarantine, "failed to quarantine 0000:03:00.0"),
    ] {
        let args = json!({"devices": "03:00.0", "method": method});
        let (ran, changes, _dir) = run_on_shipped(BIN, "typical", patch, &args);
        assert!(ran.failed(), "{method}: {}", ran.stdout);
        assert!(ran.msg().contains(named), "{method}: {}", ran.msg());
        let actions = ran.json["actions"].as_array().expect("actions");
        // The rollback puts the driver back, then drops the stale record.
        let tail: Vec<&Value> = actions.iter().rev().take(2).rev().collect();
        assert_eq!(
            tail,
            [
                &json!("rollback: bind 0000:03:00.0 to e1000e"),
                &json!("rollback: forget 0000:03:00.0 in /var/lib/xenpci/drivers.json")
            ],
            "{method}: {actions:?}"
        );
        assert!(
            changes.get(".devices[0000:03:00.0].driver").is_none(),
            "{method}: the device did not end on e1000e: {changes}"
        );
    }
}

/// The dom0 stops answering once both devices went through `xl
/// pci-assignable-add` (`fail_after_changes: 3`, the driver record's write
/// being the first change): the check of 04:00.0 and its rollback fail.
/// The result says `changed: true`, lists every step that ran (both xl
/// commands included), and reports 03:00.0, whose steps all ran, as made
/// assignable; 04:00.0, whose state the host can no longer tell, is left
/// out of `devices`.
#[test]
fn host_stops_answering_on_the_second_device() {
    let patch = json!({"fail_after_changes": 3});
    let args = json!({"devices": ["03:00.0", "04:00.0"]});
    let (ran, changes, _dir) = run_on_shipped(BIN, "typical", &patch, &args);
    insta::assert_json_snapshot!(
        "host_stops_answering_on_the_second_device",
        json!({"result": ran.json, "host_changes": changes})
    );
}
