//! Scenarios on a simulated dom0 (`XENPCI_HOST`), for any module: the
//! shipped snapshots, a scenario's host file, the host's state before and
//! after the runs, and one run against a patched shipped snapshot.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::check::check_apply_reapply;
use super::json::{json_changes, merge_patch};
use super::listing::is_lock_sidecar;
use super::run::{run_module, Ran};
use super::scenario::{scenario_may_differ, Scenario};

/// The shipped snapshots of simulated dom0s (`typical`, `sriov`).
pub const SHIPPED_HOSTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks-examples/hosts");

/// Boots the simulated dom0 in `host` again (`xenpci-sim reboot`).
pub fn sim_reboot(host: &Path) {
    let out = super::run::run_raw(
        env!("CARGO_BIN_EXE_xenpci-sim"),
        &["reboot", host.to_str().expect("UTF-8")],
        None,
        &[],
    );
    assert_eq!(out.code, 0, "xenpci-sim reboot: {}", out.stderr);
}

/// The simulated host's file in a scenario's copy.
pub const HOST_FILE: &str = "host.json";

/// Scenario files that describe the simulated host rather than being
/// files of the scenario: replaced by [`HOST_FILE`] in the copy.
const HOST_META: [&str; 2] = ["host.txt", "patch.json"];

/// The state of the simulated host in `path`, for [`json_changes`]: as the
/// simulator reads it (defaults made explicit, SR-IOV functions generated),
/// so that a change shows as the field that changed; a file the simulator
/// refuses as its JSON, or its text, or `null` when there is none.
pub fn sim_host_state(path: &Path) -> Value {
    if let Ok(host) = xenpci::host::sim::SimHost::open_timeout(
        path.to_path_buf(),
        std::time::Duration::from_secs(10),
    ) {
        return serde_json::to_value(host.state()).expect("a snapshot serialises");
    }
    match fs::read(path) {
        Err(_) => Value::Null,
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    }
}

impl Scenario {
    /// Puts the scenario's simulated host in the copy as [`HOST_FILE`] and
    /// returns its path: the folder's own `host.json`, or the shipped
    /// snapshot named in `host.txt` (`typical`, `sriov`) with `patch.json`
    /// applied ([`merge_patch`]). `host.txt` and `patch.json` are removed
    /// from the copy. The simulator's lock sidecar is created beforehand,
    /// so that a run taking the lock is not a change of the folder.
    pub fn sim_host(&self) -> PathBuf {
        let host = self.path(HOST_FILE);
        let named = self.source.join("host.txt");
        if named.exists() {
            let name = fs::read_to_string(&named).expect("read host.txt");
            let shipped = Path::new(SHIPPED_HOSTS).join(format!("{}.json", name.trim()));
            let mut state: Value = serde_json::from_slice(
                &fs::read(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display())),
            )
            .expect("a shipped snapshot is JSON");
            let patch = self.source.join("patch.json");
            if patch.exists() {
                let p: Value = serde_json::from_slice(&fs::read(&patch).expect("read patch.json"))
                    .unwrap_or_else(|e| panic!("{}: {e}", patch.display()));
                merge_patch(&mut state, &p);
            }
            let text = serde_json::to_string_pretty(&state).expect("serialise") + "\n";
            fs::write(&host, text).expect("write host.json");
        }
        for meta in HOST_META {
            let _ = fs::remove_file(self.path(meta));
        }
        let lock = self.path(&format!(".{HOST_FILE}.xenpci.lock"));
        fs::write(&lock, "").expect("create the lock sidecar");
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).expect("chmod lock");
        host
    }
}

/// A host scenario's snapshot value: the scenario at `path` run three ways
/// on its simulated dom0 ([`check_apply_reapply_on_host`]), with the
/// default `may_differ` keys plus the scenario's own `may-differ.txt`.
pub fn host_scenario(bin: &str, path: &Path, may_differ: &[&str]) -> (Scenario, Value) {
    let sc = Scenario::load(path);
    let keys = scenario_may_differ(&sc, may_differ);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let value = check_apply_reapply_on_host(bin, &sc, &keys);
    (sc, value)
}

/// [`check_apply_reapply`] on a scenario with a simulated host
/// ([`Scenario::sim_host`], passed as `XENPCI_HOST`): its assertions, and
/// for the snapshot `{check, apply, reapply, host_changes, files_after}`,
/// where `host_changes` is [`json_changes`] of the host's state before the
/// runs and after them, and `files_after` the scenario's other files (a
/// domain config, say).
pub fn check_apply_reapply_on_host(bin: &str, sc: &Scenario, may_differ: &[&str]) -> Value {
    let host = sc.sim_host();
    let before = sim_host_state(&host);
    let host_env = host.to_str().expect("UTF-8 path").to_string();
    let mut value = check_apply_reapply(bin, sc, may_differ, &[("XENPCI_HOST", &host_env)]);
    let after = sim_host_state(&host);
    let obj = value.as_object_mut().expect("an object");
    obj.insert(
        "host_changes".into(),
        sc.redact(&json_changes(&before, &after)),
    );
    let mut files = obj
        .remove("files_after")
        .and_then(|f| f.as_object().cloned())
        .unwrap_or_default();
    files.retain(|name, _| name != HOST_FILE && !is_lock_sidecar(name));
    if files.is_empty() {
        obj.remove("files_after");
    } else {
        obj.insert("files_after".into(), Value::Object(files));
    }
    value
}

/// One run of `bin` with `args` against a fresh copy of the shipped
/// snapshot `shipped` (`typical`, `sriov`) patched with `patch`: the
/// result, the host's changes ([`json_changes`]) and the temporary folder
/// (kept alive by the caller as long as it needs the host file).
pub fn run_on_shipped(
    bin: &str,
    shipped: &str,
    patch: &Value,
    args: &Value,
) -> (Ran, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = dir.path().join(HOST_FILE);
    let shipped = Path::new(SHIPPED_HOSTS).join(format!("{shipped}.json"));
    let mut state: Value =
        serde_json::from_slice(&fs::read(&shipped).expect("read snapshot")).expect("JSON");
    merge_patch(&mut state, patch);
    fs::write(
        &host,
        serde_json::to_string_pretty(&state).expect("serialise"),
    )
    .expect("write");
    let before = sim_host_state(&host);
    let ran = run_module(bin, args, &[("XENPCI_HOST", host.to_str().expect("UTF-8"))]);
    let after = sim_host_state(&host);
    (ran, json_changes(&before, &after), dir)
}
