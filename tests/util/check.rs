//! A scenario run three ways, check mode, apply, apply again
//! ([`check_apply_reapply`]), and what every module owes across them.

use std::path::Path;

use serde_json::{json, Value};

use super::listing::{assert_untouched, Entry, Listing};
use super::run::run_module;
use super::scenario::Scenario;
use super::sim::HOST_FILE;

/// `result` without `keys`.
fn without(result: &Value, keys: &[&str]) -> Value {
    let mut v = result.clone();
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            // `list[].key`: that key of each item of the list.
            match k.split_once("[].") {
                Some((list, key)) => {
                    for item in o
                        .get_mut(list)
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(item) = item.as_object_mut() {
                            item.remove(key);
                        }
                    }
                }
                None => {
                    o.remove(*k);
                }
            }
        }
    }
    v
}

/// Runs the scenario in check mode (`_ansible_check_mode` and
/// `_ansible_diff`), then applies it (`_ansible_diff`), then applies it
/// again, and returns `{check, apply, reapply, files_after}` redacted, for a
/// snapshot. `may_differ`: result keys that check mode cannot know (a
/// backup's name, say).
///
/// Asserts:
/// - check mode left every file byte-identical (and its mode) and created
///   nothing;
/// - when the apply succeeds: check and apply results agree on every key
///   but `may_differ`; the diff's `before` is what the file held and its
///   `after` what the file holds after the apply; a `backup_file` holds the
///   old contents; the second apply reports `changed: false` with no action
///   and leaves every file as the first apply did (bytes and modes);
///   pre-existing files keep their mode;
/// - when the apply fails: the second apply fails the same way, every file
///   is untouched, nothing is left behind but lock sidecars; check mode
///   failed the same way too, or (for steps that only apply can run, like a
///   `validate` command) planned a change.
pub fn check_apply_reapply(
    bin: &str,
    sc: &Scenario,
    may_differ: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let with_keys = |extra: Value| {
        let mut args = sc.args.clone();
        let obj = args.as_object_mut().expect("args.json holds an object");
        for (k, v) in extra.as_object().expect("object") {
            obj.insert(k.clone(), v.clone());
        }
        args
    };
    let check_args = with_keys(json!({"_ansible_check_mode": true, "_ansible_diff": true}));
    let apply_args = with_keys(json!({"_ansible_diff": true}));
    let name = &sc.name;

    let before = sc.listing();
    let run = |args: &Value| {
        let mut ran = run_module(bin, args, env);
        ran.json = sc.redact(&ran.json);
        ran
    };
    let check = run(&check_args);
    let after_check = sc.listing();
    assert_eq!(before, after_check, "{name}: check mode changed the folder");

    let apply = run(&apply_args);
    let after_apply = sc.listing();
    let reapply = run(&apply_args);
    let after_reapply = sc.listing();

    if apply.failed() {
        assert!(
            reapply.failed(),
            "{name}: apply failed, the second apply did not: {}",
            reapply.stdout
        );
        // On a simulated dom0 a batch that failed halfway keeps the devices
        // done before the failure, so the second run has less to do.
        let durable = env.iter().any(|(k, _)| *k == "XENPCI_HOST");
        if durable {
            assert_eq!(
                apply.json["msg"], reapply.json["msg"],
                "{name}: the two failed applies differ"
            );
        } else {
            assert_eq!(
                apply.json, reapply.json,
                "{name}: the two failed applies differ"
            );
        }
        if check.failed() {
            assert_eq!(
                check.json, apply.json,
                "{name}: check and apply fail differently"
            );
        } else {
            assert_eq!(
                check.json["changed"],
                Value::Bool(true),
                "{name}: check mode succeeded without a change, but apply failed: {}",
                apply.stdout
            );
        }
        // On a simulated dom0, what a failed run did before failing (its
        // records, a rollback, the kernel's log) stays done, as on a real
        // one: the host file may change; the snapshot shows how.
        let (before, after_apply, after_reapply_kept) =
            if env.iter().any(|(k, _)| *k == "XENPCI_HOST") {
                (
                    before.without(HOST_FILE),
                    after_apply.without(HOST_FILE),
                    after_reapply.without(HOST_FILE),
                )
            } else {
                (before, after_apply, after_reapply.clone())
            };
        assert_untouched(&before, &after_apply, &format!("{name}: failed apply"));
        assert_untouched(
            &before,
            &after_reapply_kept,
            &format!("{name}: failed second apply"),
        );
    } else {
        assert!(
            !check.failed(),
            "{name}: check mode failed, apply did not: {}",
            check.stdout
        );
        assert_eq!(
            without(&check.json, may_differ),
            without(&apply.json, may_differ),
            "{name}: check mode and apply disagree"
        );
        assert_diff_matches(sc, &apply.json, &before, &after_apply);
        assert_backup_holds_old(sc, &apply.json, &before, &sc.redact_names(&after_apply));
        for (path, e) in &before.0 {
            if let (Entry::File { mode, .. }, Some(Entry::File { mode: now, .. })) =
                (e, after_apply.0.get(path))
            {
                assert_eq!(mode, now, "{name}: apply changed the mode of {path}");
            }
        }
        assert_eq!(
            reapply.json["changed"],
            Value::Bool(false),
            "{name}: second apply changed: {}",
            reapply.stdout
        );
        assert!(
            !reapply.failed(),
            "{name}: second apply failed: {}",
            reapply.stdout
        );
        assert_eq!(
            reapply.json["actions"],
            json!([]),
            "{name}: second apply has actions"
        );
        assert_eq!(
            after_apply, after_reapply,
            "{name}: second apply changed the folder"
        );
    }

    json!({
        "check": check.json,
        "apply": apply.json,
        "reapply": reapply.json,
        "files_after": sc.redact(&after_reapply.to_json()),
    })
}

/// The relative name of `path` when it lies in the scenario's copy.
/// `path` may be redacted (`[DIR]/...`).
fn rel_in(sc: &Scenario, path: &str) -> Option<String> {
    if let Some(rel) = path.strip_prefix("[DIR]/") {
        return Some(rel.to_string());
    }
    Path::new(path)
        .strip_prefix(sc.dir())
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// For each diff whose header names a file of the copy: `before` is what it
/// held before the run, `after` what it holds after.
fn assert_diff_matches(sc: &Scenario, result: &Value, before: &Listing, after: &Listing) {
    let Some(diffs) = result["diff"].as_array() else {
        return;
    };
    let text = |l: &Listing, rel: &str| match l.0.get(rel) {
        Some(Entry::File { bytes, .. }) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    };
    for d in diffs {
        if let Some(rel) = d["before_header"].as_str().and_then(|h| rel_in(sc, h)) {
            let was = text(before, &rel).unwrap_or_default();
            assert_eq!(
                d["before"].as_str(),
                Some(was.as_str()),
                "{}: diff 'before' of {rel}",
                sc.name
            );
        }
        if let Some(rel) = d["after_header"].as_str().and_then(|h| rel_in(sc, h)) {
            let now = text(after, &rel);
            assert_eq!(
                d["after"].as_str(),
                now.as_deref(),
                "{}: diff 'after' of {rel}",
                sc.name
            );
        }
    }
}

/// A `backup_file` in the result is a file of the copy holding what the
/// edited file (`path` of the result) held before.
fn assert_backup_holds_old(sc: &Scenario, result: &Value, before: &Listing, after: &Listing) {
    let Some(backup) = result["backup_file"].as_str() else {
        return;
    };
    let rel = rel_in(sc, backup)
        .unwrap_or_else(|| panic!("{}: backup {backup} outside the folder", sc.name));
    let edited = result["path"]
        .as_str()
        .and_then(|p| rel_in(sc, p))
        .unwrap_or_else(|| panic!("{}: a backup but no `path` in the folder", sc.name));
    let old = match before.0.get(&edited) {
        Some(Entry::File { bytes, .. }) => bytes,
        other => panic!("{}: backup of {edited}, which was {other:?}", sc.name),
    };
    match after.0.get(&rel) {
        Some(Entry::File { bytes, .. }) => {
            assert_eq!(bytes, old, "{}: backup differs from the old file", sc.name)
        }
        other => panic!("{}: backup {rel} is {other:?}", sc.name),
    }
}
