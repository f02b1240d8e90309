//! `persistent: true` across a simulated reboot (`xenpci-sim reboot`): the
//! boot model against what the real dom0 did (xen-lab's reboot scenarios
//! compare the two on real Xen), and pci_assignable's boot files and
//! initramfs rebuild, run by run.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::{run_module, run_on_shipped, sim_host_state, sim_reboot, Ran, HOST_FILE};

const ASSIGNABLE: &str = "pci_assignable";
const ATTACH: &str = "pci_attach";

/// The shipped typical dom0 with what its boot needs spelt out: the bridges'
/// driver built in, the root disk's driver (nvme) in the initramfs.
fn typical_boot() -> Value {
    json!({"boot": {"builtin_drivers": ["pcieport"], "initramfs": {"modules": ["nvme"]}}})
}

fn assign(host: &Path, args: Value) -> Ran {
    run_module(
        ASSIGNABLE,
        &args,
        &[("XENPCI_HOST", host.to_str().expect("UTF-8"))],
    )
}

fn driver(host: &Path, bdf: &str) -> Value {
    let state = sim_host_state(host);
    state["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["bdf"] == json!(bdf))
        .map(|d| d.get("driver").cloned().unwrap_or(Value::Null))
        .unwrap_or_else(|| panic!("no device {bdf} in {state}"))
}

/// The failure seen on a real Debian 12 dom0: with only `options
/// xen-pciback hide=` in modprobe.d and xen-pciback loaded by
/// modules-load.d, udev's coldplug loads e1000e first and the device is
/// dom0's again after the reboot.
#[test]
fn hide_option_alone_loses_the_race() {
    let patch = json!({
        "boot": {"builtin_drivers": ["pcieport"], "modules_load": ["xen-pciback"]},
        "files": {"modprobe_hide": "options xen-pciback hide=(0000:03:00.0)\n"}
    });
    let (ran, _, dir) = run_on_shipped(
        ASSIGNABLE,
        "typical",
        &patch,
        &json!({"devices": "03:00.0"}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    assert_eq!(driver(&host, "0000:03:00.0"), json!("pciback"));
    sim_reboot(&host);
    assert_eq!(driver(&host, "0000:03:00.0"), json!("e1000e"));
}

/// Persistent assign, reboot: the device is on pciback and listed; the task
/// again changes nothing. Give back, reboot: dom0's driver has it, and the
/// boot files are gone. A device that was never hidden keeps its driver
/// through both boots, and the root disk (initramfs) is the nvme driver's.
#[test]
fn persistent_survives_reboots_both_ways() {
    let (ran, _, dir) = run_on_shipped(
        ASSIGNABLE,
        "typical",
        &typical_boot(),
        &json!({"devices": "03:00.0", "persistent": true}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["reboot_required"], json!(false), "{}", ran.stdout);
    let actions = ran.json["actions"].as_array().expect("actions");
    assert!(
        actions.contains(&json!("update-initramfs -u -k all")),
        "{actions:?}"
    );
    let host = dir.path().join(HOST_FILE);

    sim_reboot(&host);
    assert_eq!(driver(&host, "0000:03:00.0"), json!("pciback"));
    assert_eq!(driver(&host, "0000:04:00.0"), json!("e1000e"));
    assert_eq!(driver(&host, "0000:01:00.0"), json!("nvme"));
    let again = assign(&host, json!({"devices": "03:00.0", "persistent": true}));
    assert_eq!(again.json["changed"], json!(false), "{}", again.stdout);
    let listed = &again.json["assignable"];
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|a| a["bdf"] == json!("0000:03:00.0")),
        "{listed}"
    );

    // After the reboot libxl has no record: only ours knows e1000e.
    let back = assign(
        &host,
        json!({"devices": "03:00.0", "state": "absent", "persistent": true}),
    );
    assert!(!back.failed(), "{}", back.stdout);
    assert_eq!(
        back.json["devices"][0]["driver_after"],
        json!("e1000e"),
        "{}",
        back.stdout
    );
    let state = sim_host_state(&host);
    assert_eq!(
        state.get("files").and_then(|f| f.get("modprobe_hide")),
        None,
        "{state}"
    );
    sim_reboot(&host);
    assert_eq!(driver(&host, "0000:03:00.0"), json!("e1000e"));
}

/// A device whose driver loads from the initramfs (an NVMe disk for a
/// storage guest): the softdep must be in the initramfs too. Without the
/// rebuild the stale initramfs lets nvme take it; the module rebuilds it.
#[test]
fn initramfs_driver_needs_the_rebuild() {
    let patch = json!({
        "boot": {"builtin_drivers": ["pcieport"], "initramfs": {"modules": ["nvme"]}},
        "devices": {"06:00.0": {"driver": "nvme", "class": "0x010802"}}
    });
    let args = json!({"devices": "06:00.0", "persistent": true});
    let (ran, _, dir) = run_on_shipped(ASSIGNABLE, "typical", &patch, &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    let rebuilt = sim_host_state(&host);

    // The same host with the initramfs as it was before the run.
    let mut stale = rebuilt.clone();
    stale["boot"]["initramfs"] = json!({"modules": ["nvme"]});
    let stale_host = dir.path().join("stale.json");
    std::fs::write(&stale_host, stale.to_string()).expect("write");
    sim_reboot(&stale_host);
    assert_eq!(driver(&stale_host, "0000:06:00.0"), json!("nvme"));

    sim_reboot(&host);
    assert_eq!(driver(&host, "0000:06:00.0"), json!("pciback"));
    assert_eq!(driver(&host, "0000:01:00.0"), json!("nvme"));
}

/// A run that changed the boot files but did not get to the rebuild (it
/// was killed) leaves the marker: the next run rebuilds, and says so.
#[test]
fn a_pending_rebuild_is_done_by_the_next_run() {
    let patch = typical_boot();
    let args = json!({"devices": "03:00.0", "persistent": true});
    let (ran, _, dir) = run_on_shipped(ASSIGNABLE, "typical", &patch, &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    let mut state = sim_host_state(&host);
    state["files"]["initramfs_pending"] = json!("pending\n");
    state["boot"]["initramfs"] = json!({"modules": ["nvme"]});
    std::fs::write(&host, state.to_string()).expect("write");
    let again = assign(&host, args.clone());
    assert_eq!(again.json["changed"], json!(true), "{}", again.stdout);
    assert_eq!(again.json["actions"], json!(["update-initramfs -u -k all"]));
    assert_eq!(
        sim_host_state(&host)["files"].get("initramfs_pending"),
        None
    );
    let third = assign(&host, args);
    assert_eq!(third.json["changed"], json!(false), "{}", third.stdout);
}

/// A driver built into the kernel binds before any module loads: no boot
/// configuration can keep the device from it, so persistent is refused and
/// nothing changes.
#[test]
fn builtin_driver_is_refused() {
    let patch = json!({"boot": {"builtin_drivers": ["pcieport", "e1000e"]}});
    let args = json!({"devices": "03:00.0", "persistent": true});
    let (ran, changes, _dir) = run_on_shipped(ASSIGNABLE, "typical", &patch, &args);
    assert!(ran.failed(), "{}", ran.stdout);
    assert!(
        ran.msg().contains("built into this kernel"),
        "{}",
        ran.msg()
    );
    assert_eq!(changes, json!({}));
}

/// `reboot_required` names why: a device hidden at boot that was given
/// back without persistent is on its driver until the next boot.
#[test]
fn reboot_required_says_why() {
    let (ran, _, dir) = run_on_shipped(
        ASSIGNABLE,
        "typical",
        &typical_boot(),
        &json!({"devices": "03:00.0"}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    let quiet = assign(
        &host,
        json!({"devices": "04:00.0", "persistent": true, "state": "absent"}),
    );
    assert_eq!(
        quiet.json["reboot_required"],
        json!(false),
        "{}",
        quiet.stdout
    );
    // Hidden at boot but handed back to e1000e now, without persistent.
    let hide = assign(&host, json!({"devices": "03:00.0", "persistent": true}));
    assert!(!hide.failed(), "{}", hide.stdout);
    let released = assign(&host, json!({"devices": "03:00.0", "state": "absent"}));
    assert!(!released.failed(), "{}", released.stdout);
    let status = assign(
        &host,
        json!({"devices": "04:00.0", "state": "absent", "persistent": true}),
    );
    assert_eq!(
        status.json["reboot_required"],
        json!(true),
        "{}",
        status.stdout
    );
    assert_eq!(
        status.json["reboot_reasons"],
        json!(["0000:03:00.0 is hidden from dom0 at boot but is on e1000e now"])
    );
}

/// `update-initramfs` fails (a full /boot): the run fails saying so, with
/// `changed: true` and the boot files it wrote among its actions; the
/// pending marker stays, and once the rebuild works the next run does it.
#[test]
fn a_failed_rebuild_reports_what_was_done_and_is_retried() {
    let patch = json!({"boot": {"initramfs": {
        "modules": ["nvme"], "rebuild_fails": "E: mkinitramfs failure gzip 1"
    }}});
    let args = json!({"devices": "03:00.0", "persistent": true});
    let (ran, _, dir) = run_on_shipped(ASSIGNABLE, "typical", &patch, &args);
    assert!(ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["changed"], json!(true), "{}", ran.stdout);
    assert!(
        ran.msg()
            .contains("update-initramfs -u -k all` failed with rc 1"),
        "{}",
        ran.msg()
    );
    assert_eq!(ran.json["stderr"], json!("E: mkinitramfs failure gzip 1\n"));
    let actions = ran.json["actions"].as_array().expect("actions");
    assert!(
        actions.contains(&json!("xl pci-assignable-add 0000:03:00.0")),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.starts_with("write /etc/modprobe.d/"))),
        "{actions:?}"
    );
    let host = dir.path().join(HOST_FILE);
    let mut state = sim_host_state(&host);
    assert!(state["files"].get("initramfs_pending").is_some(), "{state}");
    state["boot"]["initramfs"]
        .as_object_mut()
        .expect("initramfs")
        .remove("rebuild_fails");
    std::fs::write(&host, state.to_string()).expect("write");
    let again = assign(&host, args);
    assert!(!again.failed(), "{}", again.stdout);
    assert_eq!(again.json["actions"], json!(["update-initramfs -u -k all"]));
    assert_eq!(
        sim_host_state(&host)["files"].get("initramfs_pending"),
        None
    );
}

/// After a reboot the hidden device is on pciback but not quarantined; a
/// guest's detach quarantines it (seen on the real dom0). Giving it back
/// then goes through xl, which de-quarantines it: a driver bound to a
/// quarantined device cannot map its interrupts.
#[test]
fn a_device_a_guest_had_since_the_boot_is_de_quarantined_when_given_back() {
    let args = json!({"devices": "03:00.0", "persistent": true});
    let (ran, _, dir) = run_on_shipped(ASSIGNABLE, "typical", &typical_boot(), &args);
    assert!(!ran.failed(), "{}", ran.stdout);
    let host = dir.path().join(HOST_FILE);
    sim_reboot(&host);
    // `xl create` of a guest that can take devices.
    let mut state = sim_host_state(&host);
    state["domains"] =
        json!([{"domid": 1, "name": "vm1", "passthrough": "enabled", "devices": []}]);
    std::fs::write(&host, state.to_string()).expect("write");
    let env = [("XENPCI_HOST", host.to_str().expect("UTF-8"))];
    for st in ["present", "absent"] {
        let hot = run_module(
            ATTACH,
            &json!({"domain": "vm1", "devices": "03:00.0", "state": st}),
            &env,
        );
        assert!(!hot.failed(), "{st}: {}", hot.stdout);
    }
    let quarantined = |h: &Path| {
        let s = sim_host_state(h);
        s["devices"].as_array().expect("devices").iter().any(|d| {
            d["bdf"] == json!("0000:03:00.0") && d.get("quarantined") == Some(&json!(true))
        })
    };
    assert!(quarantined(&host), "the detach quarantines it");
    let back = assign(
        &host,
        json!({"devices": "03:00.0", "state": "absent", "persistent": true}),
    );
    assert!(!back.failed(), "{}", back.stdout);
    let actions = back.json["actions"].as_array().expect("actions");
    assert_eq!(
        actions[0],
        json!("xl pci-assignable-remove -r 0000:03:00.0"),
        "{actions:?}"
    );
    assert_eq!(driver(&host, "0000:03:00.0"), json!("e1000e"));
    assert!(!quarantined(&host), "given back, still quarantined");
}
