//! pci_attach: one snapshot per scenario folder under
//! `tests/pci_attach/` on a simulated dom0 (check, apply, re-apply,
//! and what changed on the host, through [`check_apply_reapply_on_host`]),
//! and the properties a snapshot states less plainly.
//!
//! A scenario folder holds `args.json` and either its own `host.json` or a
//! `host.txt` naming a shipped snapshot (`typical`, `sriov`) with an
//! optional `patch.json`..

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{
    json_changes, merge_patch, redact_temp_pid, sim_host_state, HOST_FILE, SHIPPED_HOSTS,
};

const BIN: &str = "pci_attach";

/// Result keys check mode cannot know: `devices_after` is what the guest
/// holds before the run in check mode (documented so).
const MAY_DIFFER: [&str; 1] = ["devices_after"];

host_scenarios!(BIN, "pci_attach/*/args.json", MAY_DIFFER);

// ---------------------------------------------------------------------------
// Failures once the guest or its config could change: the result says what
// changed and what did not (`changed`, `actions`, the guest's devices).

/// A dom0 (the shipped `typical` with `patch`) and vm1's config (that of
/// `tests/pci_attach/config-kept-in-step`), each in a folder of its own
/// that a run as `nobody` can use.
struct Dom0AndConfig {
    host_dir: tempfile::TempDir,
    cfg_dir: tempfile::TempDir,
    host: PathBuf,
    cfg: PathBuf,
}

impl Dom0AndConfig {
    fn new(patch: &Value) -> Self {
        let host_dir = tempfile::tempdir().expect("temp dir");
        let cfg_dir = tempfile::tempdir().expect("temp dir");
        let host = host_dir.path().join(HOST_FILE);
        let shipped = Path::new(SHIPPED_HOSTS).join("typical.json");
        let mut state: Value =
            serde_json::from_slice(&fs::read(shipped).expect("read snapshot")).expect("JSON");
        merge_patch(&mut state, patch);
        fs::write(&host, state.to_string()).expect("write the host");
        let cfg = cfg_dir.path().join("vm1.cfg");
        fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/pci_attach/config-kept-in-step/vm1.cfg"
            ),
            &cfg,
        )
        .expect("copy vm1.cfg");
        Dom0AndConfig {
            host_dir,
            cfg_dir,
            host,
            cfg,
        }
    }

    /// Attaches 07:00.0 at vslot 5 to vm1 with `config`: [`Self::attach_devices`].
    fn attach(&self, as_nobody: bool) -> Value {
        self.attach_devices(json!("07:00.0@5"), as_nobody)
    }

    /// Attaches `devices` to vm1 with `config`, as `nobody` when
    /// `as_nobody` and the tests run as root (whom no mode bit stops), and
    /// returns the result, the host's changes and the config after, with
    /// the folders' paths redacted.
    fn attach_devices(&self, devices: Value, as_nobody: bool) -> Value {
        let args = json!({
            "domain": "vm1",
            "devices": devices,
            "config": self.cfg,
        });
        let args_file = self.host_dir.path().join("args.json");
        fs::write(&args_file, args.to_string()).expect("write args");
        let before = sim_host_state(&self.host);
        let mut cmd = crate::util::command(BIN);
        cmd.arg(&args_file).env("XENPCI_HOST", &self.host);
        if as_nobody && nix::unistd::geteuid().is_root() {
            self.open_to_nobody();
            crate::util::as_nobody(&mut cmd);
        }
        let out = cmd.output().expect("run pci_attach");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        let value = json!({
            "result": result,
            "host_changes": json_changes(&before, &sim_host_state(&self.host)),
            "config_after": fs::read_to_string(&self.cfg).expect("read vm1.cfg"),
        });
        let dir = self.cfg_dir.path().to_str().expect("UTF-8").to_string();
        let text = redact_temp_pid(&value.to_string().replace(&dir, "[DIR]"));
        serde_json::from_str(&text).expect("JSON")
    }

    /// The host's folder and files writable by `nobody`, its lock sidecar
    /// and the config's made beforehand, so that only the config's folder
    /// (whatever its mode) can stop a run as `nobody`.
    fn open_to_nobody(&self) {
        let mode =
            |p: &Path, m| fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
        mode(self.host_dir.path(), 0o777);
        mode(&self.host, 0o666);
        // The simulator keeps its snapshot's owner when it writes it back.
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&self.host, nobody, Some(nix::unistd::Gid::from_raw(65534)))
            .expect("chown the host");
        mode(&self.host_dir.path().join("args.json"), 0o644);
        for lock in [
            self.host_dir
                .path()
                .join(format!(".{HOST_FILE}.xenpci.lock")),
            self.cfg_dir.path().join(".vm1.cfg.xenpci.lock"),
        ] {
            if !lock.exists() {
                fs::write(&lock, "").expect("create a lock sidecar");
            }
            mode(&lock, 0o666);
        }
        let cfg_dir_mode = fs::metadata(self.cfg_dir.path())
            .expect("stat")
            .permissions()
            .mode();
        mode(self.cfg_dir.path(), cfg_dir_mode | 0o555);
    }
}

/// The config's lock is held by another run (the whole 30 s the module
/// waits): the run fails before vm1 is given the device, so neither the
/// guest nor the file changes. It used to attach first, then fail on the
/// lock saying `changed: false` while vm1 held the device.
#[test]
fn config_locked_by_another_run_leaves_the_guest_alone() {
    let setup = Dom0AndConfig::new(&json!({}));
    let target = fs::canonicalize(&setup.cfg).expect("canonical");
    let held = xenpci::fileio::FileLock::acquire(&target).expect("hold the config's lock");
    let value = setup.attach(false);
    drop(held);
    insta::assert_json_snapshot!("config_locked_by_another_run", value);
}

/// The config's folder is read-only: the new file cannot be staged beside
/// it, and the run fails before vm1 is given the device. It used to attach
/// first, then fail to write, saying `changed: false`.
#[test]
fn config_folder_read_only_stops_the_run_before_the_hotplug() {
    let setup = Dom0AndConfig::new(&json!({}));
    fs::set_permissions(setup.cfg_dir.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
    let value = setup.attach(true);
    fs::set_permissions(setup.cfg_dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    insta::assert_json_snapshot!("config_folder_read_only", value);
}

/// The dom0 stops answering after the hot-plug (`fail_after_changes: 1`),
/// so `xl pci-list` cannot say what vm1 holds now: the run fails with
/// `changed: true`, the hot-plug and the config's write in `actions`, and
/// the config written (it was staged before the hot-plug). It used to say
/// `changed: false, actions: []` and leave the file without the device.
#[test]
fn guest_unreadable_after_the_hotplug_reports_what_was_done() {
    let setup = Dom0AndConfig::new(&json!({"fail_after_changes": 1}));
    let value = setup.attach(false);
    insta::assert_json_snapshot!("guest_unreadable_after_the_hotplug", value);
}

/// The second of two hot-plugs fails (Xen refuses 03:00.0, EPERM): vm1
/// keeps 07:00.0, and the config gets 07:00.0 alone, so that the file lists
/// what the guest was given, no more and no less. It used to report the
/// failure with the file untouched.
#[test]
fn half_done_hotplug_writes_what_the_guest_took() {
    let setup = Dom0AndConfig::new(&json!({
        "pciback": {"slots": ["0000:07:00.0", "0000:03:00.0"]},
        "devices": {"03:00.0": {
            "driver": "pciback",
            "drivers_that_match": ["e1000e"],
            "quarantined": true,
            "assign_fails": "EPERM"
        }}
    }));
    let value = setup.attach_devices(json!(["07:00.0@5", "03:00.0"]), false);
    insta::assert_json_snapshot!("half_done_hotplug", value);
}
