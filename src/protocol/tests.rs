//! The edge's own tests, on demo modules.

use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::input::pairs_to_object;
use super::report::clip;
use super::*;
use crate::domcfg::{DomCfgError, EditFailure};

/// A module with two arguments, for the protocol's own tests.
struct Demo;

/// A demo.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[allow(dead_code)]
struct DemoArgs {
    /// A path.
    path: String,
    /// A flag.
    #[serde(default)]
    flag: bool,
}

impl Module for Demo {
    const NAME: &'static str = "demo";
    const ALIASES: &'static [(&'static str, &'static str)] = &[("dest", "path")];
    const ARGS_SCHEMA: &'static str = DEMO_ARGS_SCHEMA;
    const RESULT_SCHEMA: &'static str = "{}";
    type Args = DemoArgs;
    type Facts = ();
    fn run(_: DemoArgs, _: &Mode) -> Result<Outcome<()>, Failure> {
        Err(Failure::msg("unused"))
    }
}

/// What [`args_schema`] makes of `DemoArgs` (checked below).
const DEMO_ARGS_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
    "description":"A demo.","properties":{
    "flag":{"default":false,"description":"A flag.","type":"boolean"},
    "path":{"description":"A path.","type":"string"}},"required":["path"],
    "title":"DemoArgs","type":"object","x-aliases":{"dest":"path"}}"#;

#[test]
fn demo_schema_is_generated() {
    assert_eq!(schema_value(DEMO_ARGS_SCHEMA), args_schema::<Demo>());
}

/// Demo, whose run panics.
struct Boom;

impl Module for Boom {
    const NAME: &'static str = "boom";
    const ARGS_SCHEMA: &'static str = DEMO_ARGS_SCHEMA;
    const RESULT_SCHEMA: &'static str = "{}";
    type Args = DemoArgs;
    type Facts = ();
    fn run(_: DemoArgs, _: &Mode) -> Result<Outcome<()>, Failure> {
        panic!("boom")
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A run that panics prints the failure result and exits 1: this test
/// runs itself again as a child that installs the hook and panics.
#[test]
fn a_panic_becomes_a_failure_result() {
    const CHILD: &str = "XENPCI_PANIC_CHILD";
    if std::env::var_os(CHILD).is_some() {
        main::<Boom>(vec!["demo".into(), "path=x".into()]);
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "protocol::tests::a_panic_becomes_a_failure_result",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The object follows the harness's "test ... " on its line.
    let line = stdout
        .lines()
        .find_map(|l| l.find('{').map(|i| &l[i..]))
        .unwrap_or("");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        v,
        json!({"changed": false, "failed": true, "actions": [],
               "msg": "internal error (a bug in xenpci, please report it): boom"})
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_keys_use_ansible_wording() {
    let e = parse_args::<Demo>(obj(json!({"path": "x", "bogus": 1, "alpha": 2}))).unwrap_err();
    assert_eq!(
        e.msg,
        "Unsupported parameters for (demo) module: alpha, bogus. Supported parameters include: flag, path (dest)."
    );
}

#[test]
fn missing_arguments_use_ansible_wording() {
    let e = parse_args::<Demo>(obj(json!({"flag": true}))).unwrap_err();
    assert_eq!(e.msg, "missing required arguments: path");
}

#[test]
fn aliases_and_conflicts() {
    assert_eq!(
        parse_args::<Demo>(obj(json!({"dest": "x"}))).unwrap().path,
        "x"
    );
    let e = parse_args::<Demo>(obj(json!({"dest": "x", "path": "y"}))).unwrap_err();
    assert!(e.msg.contains("mutually exclusive"), "{}", e.msg);
}

#[test]
fn wrong_types_name_the_key() {
    let e = parse_args::<Demo>(obj(json!({"path": "x", "flag": "maybe"}))).unwrap_err();
    assert!(e.msg.starts_with("argument 'flag':"), "{}", e.msg);
}

#[test]
fn ansible_keys_set_the_mode() {
    let (rest, mode) = split_ansible_keys(
        obj(json!({"path": "x", "_ansible_check_mode": true, "_ansible_diff": "yes", "_ansible_no_log": false})),
        Mode::default(),
    )
    .unwrap();
    assert_eq!(
        mode,
        Mode {
            check: true,
            diff: true
        }
    );
    assert_eq!(rest, obj(json!({"path": "x"})));
}

#[test]
fn key_value_words_take_json_where_they_can() {
    let pairs = [
        ("a", "1"),
        ("b", "[\"x\"]"),
        ("c", "07:00.0"),
        ("d", "true"),
        ("e", "{not json"),
    ];
    let o = pairs_to_object(&pairs.map(|(k, v)| (k.to_string(), v.to_string())));
    assert_eq!(
        Value::Object(o),
        json!({"a": 1, "b": ["x"], "c": "07:00.0", "d": true, "e": "{not json"})
    );
}

#[test]
fn a_failure_after_a_change_says_so() {
    let done = vec!["xl pci-attach 1 0000:07:00.0".to_string()];
    let before: Result<(), Failure> = Err(Failure::msg("no"));
    let f = before.after(&[]).unwrap_err();
    assert!(!f.changed && f.actions.is_empty());
    let mut rollback = Failure::msg("bind failed");
    rollback.actions.push("rollback: bind".into());
    let f = Err::<(), _>(rollback).after(&done).unwrap_err();
    assert!(f.changed);
    assert_eq!(f.actions, [done[0].as_str(), "rollback: bind"]);
    let v = failure_json(
        &f.with("rc", 1)
            .with_known("rc", 2)
            .with_known("devices", ["x"]),
    );
    assert_eq!(v["changed"], json!(true));
    assert_eq!(v["rc"], json!(1));
    assert_eq!(v["devices"], json!(["x"]));
}

#[test]
fn long_messages_are_clipped() {
    let m = clip(&"x".repeat(10_000));
    assert!(m.len() < 4200 && m.ends_with("(10000 bytes in all)"));
}
#[test]
fn an_edit_failure_after_the_backup_says_changed() {
    let f = Failure::from(Box::new(EditFailure {
        error: DomCfgError::Verify("expected 1 entries, read 0".into()),
        done: vec!["back up /etc/xen/vm1.cfg".into()],
        backup_file: Some("/etc/xen/vm1.cfg.1.bak".into()),
        replaced: false,
    }));
    assert!(f.changed, "{f:?}");
    assert_eq!(f.actions, ["back up /etc/xen/vm1.cfg"]);
    assert_eq!(f.details["backup_file"], json!("/etc/xen/vm1.cfg.1.bak"));
}
