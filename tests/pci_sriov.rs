//! pci_sriov: one snapshot per scenario folder under `tests/pci_sriov/` on
//! the simulated SR-IOV dom0 (check, apply, re-apply, and what changed on
//! the host), and a reboot with the udev rule of `persistent`.

use serde_json::json;

use crate::util::{run_module, run_on_shipped, sim_reboot, HOST_FILE};

const BIN: &str = "pci_sriov";

/// Result keys check mode cannot know: which dom0 driver takes a VF that
/// does not exist yet (`vfs[].driver` is `null` in check mode).
const MAY_DIFFER: [&str; 1] = ["vfs"];

host_scenarios!(BIN, "pci_sriov/*/args.json", MAY_DIFFER);

/// `persistent` across a simulated reboot: a boot leaves no VF (the count
/// starts at 0), the rule gives the PF its 16 VFs back, driverless as the
/// rule's autoprobe says; without the rule the PF boots with none.
#[test]
fn persistent_vfs_come_back_after_a_reboot() {
    let args = json!({"device": "81:00.0", "numvfs": 16, "autoprobe": false, "persistent": true});
    let (ran, _, dir) = run_on_shipped(BIN, "sriov", &json!({}), &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    let env = [("XENPCI_HOST", host.to_str().expect("UTF-8"))];
    sim_reboot(&host);
    let again = run_module(BIN, &json!({"device": "81:00.0", "numvfs": 16}), &env);
    assert_eq!(again.json["changed"], json!(false), "{}", again.stdout);
    assert_eq!(again.json["numvfs_before"], json!(16));
    assert_eq!(again.json["autoprobe"], json!(false));
    let vfs = again.json["vfs"].as_array().expect("vfs");
    assert_eq!(vfs.len(), 16);
    assert!(vfs.iter().all(|v| v["driver"].is_null()), "{vfs:?}");
    // The rule removed, a reboot leaves the PF without VFs.
    let gone = run_module(
        BIN,
        &json!({"device": "81:00.0", "numvfs": 0, "persistent": true}),
        &env,
    );
    assert!(!gone.failed(), "{}", gone.stdout);
    assert_eq!(gone.json["boot_numvfs"], json!(null));
    let again = run_module(BIN, &json!({"device": "81:00.0", "numvfs": 4}), &env);
    assert_eq!(again.json["numvfs"], json!(4), "{}", again.stdout);
    sim_reboot(&host);
    let after = run_module(BIN, &json!({"device": "81:00.0", "numvfs": 0}), &env);
    assert_eq!(after.json["numvfs_before"], json!(0), "{}", after.stdout);
    assert_eq!(after.json["changed"], json!(false));
}

/// Where initramfs-tools builds the initramfs, its udev hook copies the
/// rule: a change of it rebuilds the initramfs (a stale copy would make
/// the old count at boot, the root filesystem's rule then failing with
/// EBUSY), and the VFs come back after a reboot.
#[test]
fn a_rule_change_rebuilds_the_initramfs() {
    let patch = json!({"boot": {"initramfs": {"modules": ["ice"]}}});
    let args = json!({"device": "81:00.0", "numvfs": 8, "persistent": true});
    let (ran, _, dir) = run_on_shipped(BIN, "sriov", &patch, &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let actions = ran.json["actions"].as_array().expect("actions");
    assert_eq!(
        actions.last(),
        Some(&json!("update-initramfs -u -k all")),
        "{actions:?}"
    );
    let host = dir.path().join(HOST_FILE);
    let env = [("XENPCI_HOST", host.to_str().expect("UTF-8"))];
    sim_reboot(&host);
    let again = run_module(BIN, &args, &env);
    assert_eq!(again.json["changed"], json!(false), "{}", again.stdout);
    assert_eq!(again.json["numvfs_before"], json!(8));
    // Without persistent the rule, and so the initramfs, stay as they are.
    let now = run_module(BIN, &json!({"device": "81:00.0", "numvfs": 2}), &env);
    let actions = now.json["actions"].as_array().expect("actions");
    assert!(
        !actions
            .iter()
            .any(|a| a.as_str().unwrap_or("").contains("initramfs")),
        "{actions:?}"
    );
}
