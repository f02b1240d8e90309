//! JSON for simulated hosts: a merge patch that names array elements by
//! their `bdf` or `domid` ([`merge_patch`]), and the changes between two
//! states as a snapshot shows them ([`json_changes`]).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// A JSON merge patch (RFC 7386) applied to `target`, with one extension
/// so that a patch of a snapshot stays small: an object patching an array
/// whose elements are objects with a `bdf` (or `domid`) patches the
/// element of that key (a BDF key may leave out the `0000:` domain); a
/// key with no element appends the patch as a new element, `null` removes
/// the element.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Array(items), Value::Object(p)) => {
            for (key, v) in p {
                let at = items.iter().position(|e| {
                    element_key(e).as_deref() == Some(key.as_str())
                        || element_key(e)
                            .is_some_and(|k| k.strip_prefix("0000:") == Some(key.as_str()))
                });
                match (at, v) {
                    (Some(i), Value::Null) => {
                        items.remove(i);
                    }
                    (Some(i), v) => merge_patch(&mut items[i], v),
                    (None, Value::Null) => {}
                    (None, v) => items.push(v.clone()),
                }
            }
        }
        (t, Value::Object(p)) => {
            if !t.is_object() {
                *t = Value::Object(Map::new());
            }
            let obj = t.as_object_mut().expect("made an object");
            for (k, v) in p {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// What names an element of an array in [`merge_patch`] and
/// [`json_changes`]: its `bdf`, else its `domid`.
fn element_key(e: &Value) -> Option<String> {
    let o = e.as_object()?;
    match (o.get("bdf"), o.get("domid")) {
        (Some(Value::String(b)), _) => Some(b.clone()),
        (_, Some(Value::Number(n))) => Some(n.to_string()),
        _ => None,
    }
}

/// The differences between two JSON values, readable in a snapshot: an
/// object `{PATH: {"before": X, "after": Y}}` with one entry per changed
/// leaf (`null`: absent). A path is `.key` for object members (`["key"]`
/// when the key is not a plain word, as xenstore paths are) and `[KEY]`
/// for array elements named by their `bdf` or `domid` (when every element
/// has one). Another array is one entry: `{"appended": [...]}` when it only
/// grew at its end, `{"removed": [...]}` when it only lost its tail, else
/// its whole value before and after.
pub fn json_changes(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    changes_at(before, after, String::new(), &mut out);
    Value::Object(out)
}

fn changes_at(before: &Value, after: &Value, path: String, out: &mut Map<String, Value>) {
    if before == after {
        return;
    }
    let member = |k: &str| {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            format!("{path}.{k}")
        } else {
            format!("{path}[{k:?}]")
        }
    };
    let empty = Value::Object(Map::new());
    // An object that appears or disappears shows member by member.
    let (before, after) = match (before, after) {
        (Value::Null, Value::Object(_)) => (&empty, after),
        (Value::Object(_), Value::Null) => (before, &empty),
        _ => (before, after),
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let nul = Value::Null;
                changes_at(
                    b.get(k).unwrap_or(&nul),
                    a.get(k).unwrap_or(&nul),
                    member(k),
                    out,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            let keyed = |v: &Vec<Value>| -> Option<BTreeMap<String, Value>> {
                let m: BTreeMap<String, Value> = v
                    .iter()
                    .map(|e| element_key(e).map(|k| (k, e.clone())))
                    .collect::<Option<_>>()?;
                (m.len() == v.len()).then_some(m)
            };
            match (keyed(b), keyed(a)) {
                (Some(kb), Some(ka)) if !kb.is_empty() || !ka.is_empty() => {
                    let keys: std::collections::BTreeSet<&String> =
                        kb.keys().chain(ka.keys()).collect();
                    for k in keys {
                        let nul = Value::Null;
                        changes_at(
                            kb.get(k).unwrap_or(&nul),
                            ka.get(k).unwrap_or(&nul),
                            format!("{path}[{k}]"),
                            out,
                        );
                    }
                }
                // A list that only grew or shrank at its end (a log, pciback's
                // slots) shows what was appended or removed; any other change
                // shows the whole list before and after.
                _ if a.len() > b.len() && a.starts_with(b) => {
                    out.insert(path, json!({ "appended": a[b.len()..] }));
                }
                _ if b.len() > a.len() && b.starts_with(a) => {
                    out.insert(path, json!({ "removed": b[a.len()..] }));
                }
                _ => {
                    out.insert(path, json!({"before": before, "after": after}));
                }
            }
        }
        _ => {
            let key = if path.is_empty() {
                ".".to_string()
            } else {
                path
            };
            out.insert(key, json!({"before": before, "after": after}));
        }
    }
}
