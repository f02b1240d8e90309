//! Ansible documentation, generated from the argument and result schemas.
//!
//! A binary module's documentation is a sidecar `NAME.yml` beside it with
//! `DOCUMENTATION`, `EXAMPLES` and `RETURN`. [`sidecar`] builds it from the
//! JSON Schemas that the Rust types produce (the one source of truth: the
//! doc comments of the argument and result types), so `ansible-doc`,
//! `--help` and `schemas/` can never disagree.
//!
//! ```
//! use serde_json::json;
//! let args = json!({"description": "Do a thing.\n\nAt length.", "type": "object",
//!     "required": ["path"],
//!     "properties": {"path": {"description": "The file.", "type": "string"}}});
//! let result = json!({"type": "object", "properties": {}});
//! let yml = xenpci::docs::sidecar("thing", &args, &result, "- name: Do it\n  thing:\n    path: /x\n");
//! assert!(yml.contains("short_description: \"Do a thing.\""));
//! assert!(yml.contains("    required: true"));
//! ```

use serde_json::{json, Map, Value};

/// The sidecar YAML of module `name`.
pub fn sidecar(name: &str, args: &Value, result: &Value, examples: &str) -> String {
    let (short, long) = crate::protocol::module_doc(args);
    let mut options = Map::new();
    let required: Vec<&str> = list_of_str(args.get("required"));
    for (key, p) in props(args) {
        let mut o = option(args, p);
        if required.contains(&key.as_str()) {
            o.insert("required".into(), json!(true));
        }
        let al: Vec<&String> = args
            .get("x-aliases")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, k)| k.as_str() == Some(key.as_str()))
                    .map(|(a, _)| a)
                    .collect()
            })
            .unwrap_or_default();
        if !al.is_empty() {
            o.insert("aliases".into(), json!(al));
        }
        if key == "path" || key == "config" {
            o.insert("type".into(), json!("path"));
        }
        options.insert(key.clone(), Value::Object(o));
    }
    let doc = json!({
        "module": name,
        "short_description": short,
        "description": paragraphs(&long),
        "version_added": "0.1.0",
        "author": ["xenpci developers (!UNKNOWN)"],
        "options": options,
        "attributes": {
            "check_mode": {"support": "full", "description": "Computes the full plan and changes nothing."},
            "diff_mode": {"support": "full", "description": "Returns the before and after of what changes."},
            "platform": {"support": "full", "platforms": "posix", "description": "A Xen dom0 (or a simulated one, with XENPCI_HOST)."},
        },
        "notes": [
            "The module runs the xenpci binary on the dom0: JSON in, one JSON object out. The collection installs the binary once per host and version (in /var/cache/xenpci, ~/.cache/xenpci, or the variable xenpci_cache_dir). By hand: `xenpci NAME ARGS_FILE`, `xenpci NAME key=value...`, or with JSON on standard input.",
            "With the environment variable XENPCI_HOST=FILE it acts on a simulated dom0 kept in FILE instead of the host.",
        ],
    });
    let mut ret = Map::new();
    let required: Vec<&str> = list_of_str(result.get("required"));
    for (key, p) in props(result) {
        let mut o = Map::new();
        o.insert(
            "description".into(),
            json!(paragraphs(description(result, p))),
        );
        let returned = if required.contains(&key.as_str()) {
            "always"
        } else {
            "when applicable"
        };
        o.insert("returned".into(), json!(returned));
        o.insert("type".into(), json!(ansible_type(result, p).0));
        ret.insert(key.clone(), Value::Object(o));
    }
    for (key, what, ty) in FAILURE_KEYS {
        ret.insert(
            key.into(),
            json!({"description": [what], "returned": "when a command failed", "type": ty}),
        );
    }
    let mut out =
        String::from("# Generated from the module's Rust types by xenpci; do not edit.\n");
    out.push_str("DOCUMENTATION:\n");
    yaml(&doc, 1, &mut out);
    out.push_str("EXAMPLES: |\n");
    for line in examples.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("RETURN:\n");
    yaml(&Value::Object(ret), 1, &mut out);
    out
}

/// The keys a failed result adds when a command failed (see
/// `protocol::Failure`).
const FAILURE_KEYS: [(&str, &str, &str); 4] = [
    (
        "cmd",
        "The command that failed, as a shell would quote it.",
        "str",
    ),
    ("rc", "Its exit code.", "int"),
    ("stdout", "Its standard output.", "str"),
    ("stderr", "Its standard error.", "str"),
];

fn props(schema: &Value) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    v.sort_by_key(|(k, _)| *k);
    v
}

fn list_of_str(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Follows `$ref` and `allOf: [{$ref}]` into `definitions`.
fn resolve<'a>(root: &'a Value, p: &'a Value) -> &'a Value {
    let target = p
        .get("$ref")
        .or_else(|| {
            p.get("allOf")
                .and_then(|a| a.get(0))
                .and_then(|r| r.get("$ref"))
        })
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
        .and_then(|name| root.get("definitions").and_then(|d| d.get(name)));
    match target {
        Some(t) => resolve(root, t),
        None => p,
    }
}

fn description<'a>(root: &'a Value, p: &'a Value) -> &'a str {
    p.get("description")
        .or_else(|| resolve(root, p).get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.trim().replace('\n', " "))
        .filter(|p| !p.is_empty())
        .collect()
}

fn option(root: &Value, p: &Value) -> Map<String, Value> {
    let mut o = Map::new();
    let mut text = paragraphs(description(root, p));
    // A mapping whose keys are the user's (guest names, say): Ansible's
    // suboptions cannot say it, so each value's keys are described in words.
    if let Some(value) = resolve(root, p)
        .get("additionalProperties")
        .filter(|v| v.is_object())
    {
        let value = resolve(root, value);
        for (key, sub) in props(value) {
            let (ty, _, _) = ansible_type(root, sub);
            let what = paragraphs(description(root, sub)).join(" ");
            text.push(format!("Each value's `{key}` ({ty}): {what}"));
        }
    }
    o.insert("description".into(), json!(text));
    let (ty, elements, choices) = ansible_type(root, p);
    o.insert("type".into(), json!(ty));
    if let Some(e) = elements {
        o.insert("elements".into(), json!(e));
    }
    if let Some(c) = choices {
        o.insert("choices".into(), json!(c));
    }
    if let Some(d) = p.get("default").filter(|d| !d.is_null()) {
        o.insert("default".into(), d.clone());
    }
    o
}

/// Ansible's `type`, `elements` and `choices` for a schema.
fn ansible_type(
    root: &Value,
    p: &Value,
) -> (&'static str, Option<&'static str>, Option<Vec<Value>>) {
    let r = resolve(root, p);
    if let Some(variants) = r.get("oneOf").and_then(Value::as_array) {
        let choices: Vec<Value> = variants
            .iter()
            .filter_map(|v| v.get("enum").and_then(|e| e.get(0)).cloned())
            .collect();
        if choices.len() == variants.len() {
            return ("str", None, Some(choices));
        }
    }
    if let Some(any) = r.get("anyOf").and_then(Value::as_array) {
        // `OneOrMany`: a list, or one item standing for it.
        if let Some(list) = any.iter().find(|v| v.get("type") == Some(&json!("array"))) {
            return ("list", Some(element_type(root, list.get("items"))), None);
        }
        let not_null: Vec<&Value> = any
            .iter()
            .filter(|v| v.get("type") != Some(&json!("null")))
            .collect();
        let types: Vec<&str> = not_null.iter().map(|v| ansible_type(root, v).0).collect();
        match types.first() {
            // A string or an object (a spec, a selection): Ansible's raw.
            Some(first) if types.iter().any(|t| t != first) => return ("raw", None, None),
            Some(_) => return ansible_type(root, not_null[0]),
            None => {}
        }
    }
    let ty = match r.get("type") {
        Some(Value::Array(ts)) => ts
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        Some(t) => t.clone(),
        None => Value::Null,
    };
    match ty.as_str() {
        Some("boolean") => ("bool", None, None),
        Some("integer") => ("int", None, None),
        Some("string") => ("str", None, None),
        Some("array") => ("list", Some(element_type(root, r.get("items"))), None),
        Some("object") => ("dict", None, None),
        _ => ("raw", None, None),
    }
}

fn element_type(root: &Value, items: Option<&Value>) -> &'static str {
    match items.map(|i| ansible_type(root, i).0) {
        Some("str") => "str",
        Some("dict") => "dict",
        Some("int") => "int",
        _ => "raw",
    }
}

/// Block-style YAML; strings double-quoted with JSON escapes, which YAML
/// reads the same.
fn yaml(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                out.push_str(&format!("{pad}{k}:"));
                inline_or_block(val, depth, out);
            }
        }
        Value::Array(a) => {
            for val in a {
                out.push_str(&format!("{pad}-"));
                inline_or_block(val, depth, out);
            }
        }
        scalar => out.push_str(&format!("{pad}{scalar}\n")),
    }
}

fn inline_or_block(val: &Value, depth: usize, out: &mut String) {
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(val, depth + 1, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(val, depth + 1, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        scalar => out.push_str(&format!(" {scalar}\n")),
    }
}
