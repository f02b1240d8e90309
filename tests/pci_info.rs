//! pci_info: one snapshot per scenario folder under `tests/pci_info/` on a
//! simulated dom0 (check, run, second run, and the host, which must not
//! change, through [`check_apply_reapply_on_host`]), and the properties a
//! snapshot states less plainly.
//!
//! A scenario folder holds `args.json` and either its own `host.json` or a
//! `host.txt` naming a shipped snapshot (`typical`, `sriov`) with an
//! optional `patch.json`..

use serde_json::{json, Value};

use crate::util::{
    check_apply_reapply_on_host, each_scenario, run_on_shipped, scenario_may_differ, Scenario,
};

const BIN: &str = "pci_info";

/// pci_info changes nothing: check mode and a run agree on every key.
const MAY_DIFFER: [&str; 0] = [];

fn snapshot(path: &std::path::Path) {
    let sc = Scenario::load(path);
    let may_differ = scenario_may_differ(&sc, &MAY_DIFFER);
    let may_differ: Vec<&str> = may_differ.iter().map(String::as_str).collect();
    let value = check_apply_reapply_on_host(BIN, &sc, &may_differ);
    assert_eq!(
        value["host_changes"],
        json!({}),
        "{}: pci_info changed the host",
        sc.name
    );
    for run in ["check", "apply", "reapply"] {
        assert_eq!(
            value[run]["changed"],
            json!(false),
            "{}: {run} changed",
            sc.name
        );
    }
    assert_scenario_snapshot!(sc, value);
}

#[test]
fn scenarios() {
    let mut failed = Vec::new();
    insta::glob!("pci_info/*/args.json", |path| {
        failed.extend(each_scenario(path, snapshot));
    });
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}

/// The SR-IOV links both ways, for all 64 functions.
#[test]
fn sriov_links_pf_and_vfs() {
    let (ran, changes, _dir) = run_on_shipped(BIN, "sriov", &json!({}), &json!({}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(changes, json!({}));
    let devices = ran.json["ansible_facts"]["xen_pci"]["devices"]
        .as_array()
        .expect("devices");
    let pf = devices
        .iter()
        .find(|d| d["bdf"] == json!("0000:81:00.0"))
        .expect("the PF");
    let vfs: Vec<&Value> = pf["virtfns"].as_array().expect("virtfns").iter().collect();
    assert_eq!(vfs.len(), 64);
    for vf in vfs {
        let d = devices
            .iter()
            .find(|d| &d["bdf"] == vf)
            .expect("a VF is a device");
        assert_eq!(d["physfn"], json!("0000:81:00.0"), "{d}");
        assert_eq!(d["driver"], json!("iavf"), "{d}");
        assert_eq!(d["guard"], json!([]), "{d}");
    }
}

/// `XENPCI_HOST=""` (a playbook's `environment:` with an empty variable)
/// is not "unset": every module that opens a host fails, naming the
/// variable, rather than act on the machine it runs on. Check mode, so that
/// a build without the fix cannot change this machine either.
#[test]
fn empty_xenpci_host_fails() {
    let runs = [
        ("pci_info", json!({})),
        ("pci_assignable", json!({"devices": "03:00.0"})),
        ("pci_attach", json!({"domain": "vm1", "devices": "03:00.0"})),
    ];
    let mut results = serde_json::Map::new();
    for (bin, mut args) in runs {
        args["_ansible_check_mode"] = json!(true);
        let ran = crate::util::run_module(bin, &args, &[("XENPCI_HOST", "")]);
        let name = std::path::Path::new(bin)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a binary name");
        assert!(ran.failed(), "{name}: {}", ran.stdout);
        results.insert(name.to_string(), ran.json);
    }
    insta::assert_json_snapshot!("empty-xenpci-host", results);
}
