//! What a run reports: the [`Outcome`] of a success, the [`Failure`] of a
//! failure, and the one JSON object ([`Report`]) either becomes.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a successful run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// Whether the host changed (or would, in check mode).
    pub changed: bool,
    /// One short factual sentence.
    pub msg: String,
    /// Steps planned or taken, in words.
    pub actions: Vec<String>,
    /// Before/after pairs, returned in diff mode only.
    pub diff: Vec<Diff>,
    /// Things a person should know.
    pub warnings: Vec<String>,
    /// The module's own keys.
    pub facts: T,
}

/// One before/after pair, as Ansible's diff callback expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diff {
    /// What the diff's "before" side is (a path, usually).
    pub before_header: String,
    /// What the diff's "after" side is.
    pub after_header: String,
    /// The text before.
    pub before: String,
    /// The text after.
    pub after: String,
}

/// The result object every module prints. See the module documentation for
/// the meaning of each key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Report<T> {
    /// Whether the host was changed (in check mode: would be).
    pub changed: bool,
    /// Whether the module failed.
    pub failed: bool,
    /// One short factual sentence: what was done, or what is wrong.
    pub msg: String,
    /// The steps planned (check mode) or taken, in words a person reads.
    pub actions: Vec<String>,
    /// Before/after pairs, in diff mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<Diff>>,
    /// Things a person should know: legal but suspicious input, for instance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(default)]
    pub warnings: Vec<String>,
    /// The module's own keys.
    #[serde(flatten)]
    pub facts: T,
}

/// A failed run: the message and the details the result should carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What is wrong, naming the argument, path, device or line at fault.
    pub msg: String,
    /// Whether something was changed before the failure.
    pub changed: bool,
    /// The actions taken before the failure.
    pub actions: Vec<String>,
    /// Extra keys of the result (`rc`, `stderr`, `cmd`, ...).
    pub details: Map<String, Value>,
}

impl Failure {
    /// A failure with a message and nothing else.
    pub fn msg(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            changed: false,
            actions: Vec::new(),
            details: Map::new(),
        }
    }

    /// Adds a key to the result.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.details.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// This failure, come after `done` was carried out: `done` goes first in
    /// `actions` (before the steps the failure itself names, a rollback for
    /// instance), and the result says the host changed when anything was
    /// done. Every error after the host changed goes through here (or
    /// [`AfterChange::after`]), so that no result hides a change.
    pub fn after(mut self, done: &[String]) -> Self {
        if !done.is_empty() {
            self.changed = true;
            self.actions.splice(0..0, done.iter().cloned());
        }
        self
    }

    /// Adds a key to the result unless the failure already set it: what a
    /// module knows of its own keys at the failure (the devices done so
    /// far, say), beside the details of the error itself.
    pub fn with_known(mut self, key: &str, value: impl Serialize) -> Self {
        if !self.details.contains_key(key) {
            self = self.with(key, value);
        }
        self
    }
}

/// A step's result once the host has changed: its error becomes a
/// [`Failure`] that reports what was done before it.
pub trait AfterChange<T> {
    /// `Err(e)` becomes `Err(Failure::from(e).after(done))`.
    fn after(self, done: &[String]) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> AfterChange<T> for Result<T, E> {
    fn after(self, done: &[String]) -> Result<T, Failure> {
        self.map_err(|e| e.into().after(done))
    }
}

/// The result of a success; its diff only in diff mode.
pub(super) fn success_json<T: Serialize>(o: Outcome<T>, diff_mode: bool) -> Value {
    let report = Report {
        changed: o.changed,
        failed: false,
        msg: o.msg,
        actions: o.actions,
        diff: diff_mode.then_some(o.diff),
        warnings: o.warnings,
        facts: o.facts,
    };
    serde_json::to_value(report)
        .unwrap_or_else(|e| failure_json(&Failure::msg(format!("internal error: {e}"))))
}

pub(super) fn failure_json(f: &Failure) -> Value {
    let mut obj = Map::new();
    obj.insert("changed".into(), Value::Bool(f.changed));
    obj.insert("failed".into(), Value::Bool(true));
    obj.insert("msg".into(), Value::String(clip(&f.msg)));
    obj.insert("actions".into(), Value::from(f.actions.clone()));
    for (k, v) in &f.details {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(obj)
}

/// A message echoes the input at fault; a 10 MB argument must not make a
/// 10 MB message.
pub(super) fn clip(msg: &str) -> String {
    const MAX: usize = 4096;
    if msg.len() <= MAX {
        return msg.to_string();
    }
    let mut end = MAX;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &msg[..end], msg.len())
}
