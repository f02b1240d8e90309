//! passthrough: one snapshot per scenario folder under
//! `tests/passthrough/` on a simulated dom0 (check, apply, re-apply, and
//! what changed on the host), then all or nothing: a fault at every step of
//! a plan leaves the host and the configs as they were, or says what could
//! not be undone.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::util::{
    each_scenario, host_scenario, merge_patch, run_module, sim_host_state, HOST_FILE,
};

const BIN: &str = "passthrough";

/// Result keys check mode cannot know: what each guest holds after the run
/// is what it holds before, in check mode (documented so, as pci_attach's).
const MAY_DIFFER: [&str; 1] = ["guests[].devices_after"];

fn snapshot(path: &Path) {
    let (sc, value) = host_scenario(BIN, path, &MAY_DIFFER);
    assert_scenario_snapshot!(sc, value);
}

#[test]
fn scenarios() {
    let mut failed = Vec::new();
    insta::glob!("passthrough/*/args.json", |path| {
        failed.extend(each_scenario(path, snapshot));
    });
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}

// ---------------------------------------------------------------------------
// All or nothing, under every fault the simulator injects, at every step.

/// The scenario of the sweep: vm1 holds 03:00.0 and is to hold 04:00.0
/// instead, 03:00.0 moves to vm2, 07:00.0 (listed nowhere) goes back to
/// dom0, and every device is hidden at boot: assign, boot files, detach,
/// two attaches, two configs and a give-back.
fn sweep_args(dir: &Path) -> Value {
    json!({
        "guests": {
            "vm1": {"devices": ["04:00.0"], "config": dir.join("vm1.cfg")},
            "vm2": {"devices": ["03:00.0"], "config": dir.join("vm2.cfg")},
        },
        "unlisted": "give_back",
        "persistent": true,
    })
}

/// A fresh copy of the move scenario's dom0 with `patch`, and its configs.
fn sweep_setup(patch: &Value) -> tempfile::TempDir {
    let src = Path::new("tests/passthrough/move-between-guests");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut host: Value =
        serde_json::from_slice(&fs::read(src.join("host.json")).expect("read")).expect("JSON");
    merge_patch(&mut host, patch);
    fs::write(dir.path().join(HOST_FILE), host.to_string()).expect("write host");
    for cfg in ["vm1.cfg", "vm2.cfg"] {
        fs::copy(src.join(cfg), dir.path().join(cfg)).expect("copy config");
    }
    dir
}

/// What all or nothing is about: each device's driver, pciback's slots,
/// what each guest holds, the boot files, this project's driver record.
fn essentials(state: &Value) -> Value {
    let mut slots: Vec<Value> = state["pciback"]["slots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    slots.sort_by_key(Value::to_string);
    let drivers: Vec<Value> = state["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| json!([d["bdf"], d["driver"]]))
        .collect();
    let guests: Vec<Value> = state["domains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let held: Vec<&Value> = d["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| &x["bdf"])
                .collect();
            json!([d["name"], held])
        })
        .collect();
    let record: Value = state["files"]["driver_record"]
        .as_str()
        .map_or(json!({}), |t| {
            serde_json::from_str(t).expect("the record is JSON")
        });
    json!({
        "drivers": drivers,
        "slots": slots,
        "guests": guests,
        "boot": state["boot"]["initramfs"]["files"],
        "record": record,
    })
}

/// Runs the sweep's request on a dom0 patched with `patch`: `None` when it
/// succeeded, else whether the failure left the host and configs as they
/// were (or named what it could not undo), with the result.
fn run_sweep(patch: &Value) -> Option<(bool, Value)> {
    let dir = sweep_setup(patch);
    let host = dir.path().join(HOST_FILE);
    let cfgs = |d: &Path| ["vm1.cfg", "vm2.cfg"].map(|c| fs::read(d.join(c)).expect("read config"));
    let (state0, cfg0) = (essentials(&sim_host_state(&host)), cfgs(dir.path()));
    let ran = run_module(
        BIN,
        &sweep_args(dir.path()),
        &[("XENPCI_HOST", host.to_str().expect("UTF-8"))],
    );
    if !ran.failed() {
        return None;
    }
    let r = &ran.json;
    assert!(
        r["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "a failure says why: {r}"
    );
    let done = r["actions"].as_array().is_some_and(|a| !a.is_empty());
    assert_eq!(
        r["changed"],
        json!(done),
        "changed says whether anything was done: {r}"
    );
    let not_undone = r["not_undone"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        cfgs(dir.path()),
        cfg0,
        "the configs hold their old bytes after a failure: {r}"
    );
    let restored = essentials(&sim_host_state(&host)) == state0;
    assert!(
        restored || !not_undone.is_empty(),
        "the host changed and the result does not say what stayed: {r}"
    );
    Some((restored, r.clone()))
}

#[test]
fn a_refused_device_at_any_step_is_undone() {
    // pciback refusing a bind, Xen refusing to assign (at quarantine for a
    // device xl takes, at the hot-plug for one already on pciback), a dom0
    // driver refusing a device given back: for each device the plan
    // touches. A refusal that also blocks the way
    // back (Xen refusing 03:00.0 anywhere, so vm1 cannot take it back
    // after vm2 refused it) is named in `not_undone`; every other leaves
    // the host and the configs as they were.
    let mut failures = 0;
    for bdf in ["03:00.0", "04:00.0", "07:00.0"] {
        let faults = [
            json!({"assign_fails": "EPERM"}),
            json!({"bind_fails": ["pciback"]}),
            json!({"bind_fails": ["e1000e"]}),
        ];
        for fault in faults {
            let patch = json!({"devices": {bdf: fault}});
            if let Some((restored, r)) = run_sweep(&patch) {
                let blocks_undo = bdf == "03:00.0" && fault.get("assign_fails").is_some();
                assert_eq!(restored, !blocks_undo, "{bdf} {fault}: {r}");
                failures += 1;
            }
        }
    }
    assert!(
        failures >= 4,
        "the faults reached the plan only {failures} times"
    );
    // Its own driver refusing it too: 04:00.0 cannot go back to e1000e, and
    // the failure says so rather than leave it driverless in silence.
    let patch = json!({"devices": {"04:00.0": {"bind_fails": ["pciback", "e1000e"]}}});
    let (restored, r) = run_sweep(&patch).expect("the bind fails");
    assert!(!restored, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or("")
            .contains("left it without a driver"),
        "{r}"
    );
}

#[test]
fn a_dom0_that_stops_answering_at_any_step_is_reported() {
    // After k changes every call fails, the undo's too: each run must say
    // what was done, keep the configs whole, and name what it could not
    // undo; the first k at which the run succeeds ends the sweep.
    let mut k = 0;
    while let Some((restored, r)) = run_sweep(&json!({"fail_after_changes": k})) {
        if k > 0 {
            assert!(
                !restored,
                "k={k}: the host stopped answering, yet all was undone: {r}"
            );
            let not_undone = r["not_undone"].as_array().cloned().unwrap_or_default();
            assert!(!not_undone.is_empty(), "k={k}: {r}");
        }
        k += 1;
        assert!(k < 80, "the plan never completed");
    }
    assert!(k >= 8, "the plan took only {k} changes");
}
