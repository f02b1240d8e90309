//! domain_pci_config: one snapshot per scenario folder under
//! `tests/domain_pci_config/` (check, apply, re-apply and the files after,
//! through [`check_apply_reapply`]), and the invocation forms that do not
//! fit a folder.

use std::fs;

use serde_json::{json, Value};

use crate::util::{check_apply_reapply, host_scenario, run_json, run_module, run_raw, Scenario};

const BIN: &str = "domain_pci_config";

/// Result keys check mode cannot know: the backup is only made by apply.
const MAY_DIFFER: [&str; 1] = ["backup_file"];

/// A scenario whose folder holds `host.json` or `host.txt` runs on that
/// simulated dom0 (what its assignable names are, which functions a device
/// has); the others run without one, as in CI, and must not need it.
#[test]
fn scenarios() {
    insta::glob!("domain_pci_config/*/args.json", |path| {
        let folder = path.parent().expect("args.json is in a folder");
        let on_host = ["host.json", "host.txt"]
            .iter()
            .any(|f| folder.join(f).exists());
        let (sc, value) = if on_host {
            host_scenario(BIN, path, &MAY_DIFFER)
        } else {
            let sc = Scenario::load(path);
            let value = check_apply_reapply(BIN, &sc, &MAY_DIFFER, &[]);
            (sc, value)
        };
        assert_scenario_snapshot!(sc, value);
    });
}

/// A config with one device, in a fresh folder.
fn one_device_cfg() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().expect("temp dir");
    let path = d.path().join("vm.cfg");
    fs::write(&path, "name = 'vm1'\npci = [ '07:00.0' ]\n").expect("write config");
    let path = path.to_str().expect("UTF-8").to_string();
    (d, path)
}

fn read(path: &str) -> String {
    fs::read_to_string(path).expect("read config")
}

#[test]
fn key_value_words() {
    let (_d, path) = one_device_cfg();
    let ran = run_json(
        BIN,
        &[&format!("path={path}"), "devices=08:00.0", "backup=no"],
        None,
        &[],
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["changed"], json!(true));
    assert_eq!(ran.json["devices"], json!(["0000:07:00.0", "0000:08:00.0"]));
    assert_eq!(
        read(&path),
        "name = 'vm1'\npci = [ '07:00.0', '0000:08:00.0' ]\n"
    );
    // A JSON list as a value.
    let ran = run_json(
        BIN,
        &[
            &format!("path={path}"),
            r#"devices=["07:00.0"]"#,
            "state=absent",
        ],
        None,
        &[],
    );
    assert_eq!(
        ran.json["devices"],
        json!(["0000:08:00.0"]),
        "{}",
        ran.stdout
    );
}

#[test]
fn json_on_stdin() {
    let (_d, path) = one_device_cfg();
    let args = json!({"path": path, "devices": ["08:00.0"]}).to_string();
    let ran = run_json(BIN, &[], Some(args.as_bytes()), &[]);
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["changed"], json!(true));
    assert!(ran.json.get("diff").is_none(), "no diff unless asked");
    assert_eq!(
        read(&path),
        "name = 'vm1'\npci = [ '07:00.0', '0000:08:00.0' ]\n"
    );
}

#[test]
fn check_and_diff_flags() {
    let (_d, path) = one_device_cfg();
    let before = read(&path);
    let p = format!("path={path}");
    let ran = run_json(
        BIN,
        &["--check", "--diff", &p, "devices=08:00.0"],
        None,
        &[],
    );
    assert_eq!(ran.json["changed"], json!(true), "{}", ran.stdout);
    assert_eq!(ran.json["diff"][0]["before"], json!(before));
    assert_eq!(
        ran.json["diff"][0]["after"],
        json!("name = 'vm1'\npci = [ '07:00.0', '0000:08:00.0' ]\n")
    );
    assert_eq!(read(&path), before, "--check changed the file");
    // The flags also work with an arguments file.
    let args = tempfile::NamedTempFile::new().expect("args file");
    fs::write(
        args.path(),
        json!({"path": path, "devices": "08:00.0"}).to_string(),
    )
    .expect("write args");
    let ran = run_json(
        BIN,
        &["--check", args.path().to_str().expect("UTF-8")],
        None,
        &[],
    );
    assert_eq!(ran.json["changed"], json!(true), "{}", ran.stdout);
    assert!(ran.json.get("diff").is_none());
    assert_eq!(read(&path), before, "--check changed the file");
}

#[test]
fn schema_lists_the_arguments() {
    let ran = run_raw(BIN, &["--schema"], None, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let schema: Value = serde_json::from_str(&ran.stdout).expect("schema is JSON");
    for key in [
        "path",
        "devices",
        "state",
        "permissive",
        "backup",
        "validate",
        "create",
        "passthrough",
    ] {
        assert!(
            schema["properties"][key].is_object(),
            "schema lacks {key}: {schema}"
        );
    }
    assert_eq!(schema["required"], json!(["path"]));
}

#[test]
fn help_and_version() {
    let help = run_raw(BIN, &["--help"], None, &[]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("pci_permissive"), "{}", help.stdout);
    assert!(help.stdout.contains("Usage:"), "{}", help.stdout);
    let version = run_raw(BIN, &["--version"], None, &[]);
    assert_eq!(version.code, 0, "{}", version.stderr);
    assert_eq!(
        version.stdout.trim(),
        format!("domain_pci_config {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_key_uses_ansible_wording() {
    let ran = run_module(
        BIN,
        &json!({"path": "/nonexistent/vm.cfg", "colour": "red", "_ansible_foo": 1}),
        &[],
    );
    assert!(ran.failed());
    assert_eq!(ran.code, 1);
    assert!(
        ran.msg().starts_with(
            "Unsupported parameters for (domain_pci_config) module: colour. Supported parameters include: "
        ),
        "{}",
        ran.msg()
    );
    for key in ["backup", "create", "devices", "path", "state", "validate"] {
        assert!(ran.msg().contains(key), "{}", ran.msg());
    }
}

#[test]
fn wrong_types_name_the_key() {
    for (key, value) in [
        ("backup", json!("maybe")),
        ("create", json!([1])),
        ("state", json!("gone")),
        ("path", json!(7)),
        ("permissive", json!({})),
        ("validate", json!(false)),
        ("devices", json!(3)),
    ] {
        let mut args = json!({"path": "/nonexistent/vm.cfg"});
        args[key] = value.clone();
        let ran = run_module(BIN, &args, &[]);
        assert!(ran.failed(), "{key}={value}: {}", ran.stdout);
        assert!(
            ran.msg().contains(key),
            "{key}={value}: message does not name the key: {}",
            ran.msg()
        );
    }
}

#[test]
fn exit_code_follows_failed() {
    let (_d, path) = one_device_cfg();
    let ok = run_module(BIN, &json!({"path": path, "devices": ["07:00.0"]}), &[]);
    assert_eq!((ok.failed(), ok.code), (false, 0));
    let bad = run_module(BIN, &json!({"path": path, "devices": ["07:20.0"]}), &[]);
    assert_eq!((bad.failed(), bad.code), (true, 1));
}

#[test]
fn bad_input_gives_one_failure_object() {
    for (what, stdin) in [
        ("malformed JSON", &b"{\"path\": "[..]),
        ("empty stdin", &b""[..]),
        ("a JSON array", &b"[\"path\"]"[..]),
        ("a JSON string", &b"\"path=/x\""[..]),
        ("not UTF-8", &b"{\"path\": \"\xff\"}"[..]),
    ] {
        let ran = run_json(BIN, &[], Some(stdin), &[]);
        assert!(ran.failed(), "{what}: {}", ran.stdout);
        assert_eq!(ran.json["changed"], json!(false), "{what}");
        assert!(!ran.stderr.contains("panicked"), "{what}: {}", ran.stderr);
    }
    // Same through an arguments file, and with a missing arguments file.
    let args = tempfile::NamedTempFile::new().expect("args file");
    fs::write(args.path(), "[1, 2]").expect("write");
    let ran = run_json(BIN, &[args.path().to_str().expect("UTF-8")], None, &[]);
    assert!(ran.msg().contains("JSON object"), "{}", ran.msg());
    let ran = run_json(BIN, &["/nonexistent/args.json"], None, &[]);
    assert!(ran.failed(), "{}", ran.stdout);
    // An unknown flag is a failure object too, not clap's text.
    let ran = run_json(BIN, &["--frobnicate"], None, &[]);
    assert!(ran.failed(), "{}", ran.stdout);
}

#[test]
fn keeps_mode_of_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, path) = one_device_cfg();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
    let ran = run_module(BIN, &json!({"path": path, "devices": ["08:00.0"]}), &[]);
    assert_eq!(ran.json["changed"], json!(true), "{}", ran.stdout);
    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
}

/// The module checks `validate` with the rule the write runs it by: a
/// template whose only `%s` is an escaped `%%s` (or sits in a comment)
/// fails at once, in check mode too, and the file is not touched.
#[test]
fn validate_is_checked_as_it_is_run() {
    let (_d, path) = one_device_cfg();
    let before = std::fs::read(&path).expect("config");
    for template in ["true %%s", "true # %s", "'unclosed %s"] {
        for check in [true, false] {
            let args = json!({"path": path, "devices": ["08:00.0"], "validate": template,
                              "_ansible_check_mode": check});
            let ran = run_module(BIN, &args, &[]);
            assert!(ran.failed(), "{template} (check {check}): {}", ran.stdout);
            assert!(ran.msg().contains(template), "{}", ran.msg());
            assert_eq!(ran.json["changed"], json!(false));
        }
    }
    assert_eq!(std::fs::read(&path).expect("config"), before);
}
