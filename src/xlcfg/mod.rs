//! xl domain config files: read exactly as libxlutil 4.17 reads them, edited
//! without losing a byte.
//!
//! An [`XlConfig`] is the source bytes plus the [`Assignment`]s found in them,
//! each with byte spans down to every list element and comma. Reading follows
//! `libxlu_cfg_l.l`, `libxlu_cfg_y.y` and `libxlu_cfg.c`: what xl accepts is
//! accepted, what xl rejects is a [`CfgError`] with the line xl reports, and
//! [`XlConfig::value`] is the value `xlu_cfg_get_*` would return (the last
//! assignment wins; `+=` joins lists and concatenates strings).
//!
//! Editing is in [`edit`]: an edit is a set of byte-range splices over the
//! source; every byte outside them is copied as it was.
//!
//! ```
//! use xenpci::xlcfg::{XlConfig, Value};
//! let cfg = XlConfig::parse(b"pci = [ '07:00.0' ]\npci += [ '08:00.0' ]\n").unwrap();
//! assert_eq!(
//!     cfg.value("pci"),
//!     Some(Value::List(vec![
//!         Value::String(b"07:00.0".to_vec()),
//!         Value::String(b"08:00.0".to_vec()),
//!     ]))
//! );
//! ```

pub mod edit;
pub mod lexer;
pub mod parser;

use std::fmt;

pub use parser::{Assignment, Atom, Item, ListNode, Node, Op};

/// A value as xl reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string or a number (xl keeps numbers as text).
    String(Vec<u8>),
    /// A list; xl's list elements may themselves be lists.
    List(Vec<Value>),
}

impl Value {
    /// Whether this is a list.
    pub fn is_list(&self) -> bool {
        matches!(self, Value::List(_))
    }

    fn of(node: &Node) -> Value {
        match node {
            Node::Atom(a) => Value::String(a.value.clone()),
            Node::List(l) => Value::List(l.items.iter().map(|i| Value::of(&i.node)).collect()),
        }
    }
}

/// A config file xl would refuse: where, and why.
///
/// `line` is the line xl itself prints, quirks included: for an error found
/// at a newline (a value missing after `=`, say), xl names the line before.
/// `at_line` and `column` point at the offending byte for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {at_line}, column {column}: {message}{}", xl_note(*.line, *.at_line))]
pub struct CfgError {
    /// The 1-based line xl reports.
    pub line: usize,
    /// The 1-based line of the offending token.
    pub at_line: usize,
    /// Its 1-based column, in bytes.
    pub column: usize,
    /// What is wrong, in xl's words where xl has words for it.
    pub message: String,
}

fn xl_note(xl: usize, at: usize) -> String {
    if xl == at {
        String::new()
    } else {
        format!(" (xl reports it at line {xl})")
    }
}

impl CfgError {
    pub(crate) fn at(line: usize, at_line: usize, column: usize, message: String) -> Self {
        CfgError {
            line,
            at_line,
            column,
            message,
        }
    }
}

/// A parsed xl config file that remembers every byte of its source.
#[derive(Debug, Clone)]
pub struct XlConfig {
    src: Vec<u8>,
    assignments: Vec<Assignment>,
}

impl XlConfig {
    /// Reads `src` as xl would, or says why xl would refuse it.
    pub fn parse(src: &[u8]) -> Result<XlConfig, CfgError> {
        let assignments = parser::parse(src)?;
        Ok(XlConfig {
            src: src.to_vec(),
            assignments,
        })
    }

    /// The source bytes, as given.
    pub fn source(&self) -> &[u8] {
        &self.src
    }

    /// The 1-based line of byte `pos` of the source.
    pub fn line_of(&self, pos: usize) -> usize {
        parser::line_at(&self.src, pos.min(self.src.len()))
    }

    /// Every assignment, in file order.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// The value xl reads for `key`: the last assignment, with `+=` applied.
    pub fn value(&self, key: &str) -> Option<Value> {
        fold(&self.assignments, key)
    }

    /// Every key assigned, in first-appearance order.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for a in &self.assignments {
            if !keys.contains(&a.key) {
                keys.push(a.key.clone());
            }
        }
        keys
    }

    /// The last assignment of `key` (the one xl's lookup finds).
    pub fn last(&self, key: &str) -> Option<&Assignment> {
        self.assignments.iter().rev().find(|a| a.key == key)
    }

    /// The lists whose elements make up `key`'s value: the last `=` and
    /// every `+=` after it. `None` when `key` is not assigned or its value is
    /// not a list.
    pub fn list_chain(&self, key: &str) -> Option<Vec<&ListNode>> {
        let start = self
            .assignments
            .iter()
            .rposition(|a| a.key == key && a.op == Op::Assign)
            .unwrap_or(0);
        let mut lists = Vec::new();
        for a in self.assignments[start..].iter().filter(|a| a.key == key) {
            match &a.value {
                Node::List(l) => lists.push(l),
                Node::Atom(_) => return None,
            }
        }
        (!lists.is_empty()).then_some(lists)
    }

    /// The elements of `key`'s list value, in the order xl sees them.
    pub fn list_items(&self, key: &str) -> Option<Vec<&Item>> {
        let lists = self.list_chain(key)?;
        Some(lists.iter().flat_map(|l| l.items.iter()).collect())
    }

    /// What `xlu_cfg_get_long` returns for `key`: `None` when absent,
    /// `Some(Err(reason))` when xl would warn and ignore it.
    pub fn long(&self, key: &str) -> Option<Result<i64, String>> {
        let a = self.last(key)?;
        Some(match (&a.value, a.op) {
            (Node::List(_), _) => Err(format!("`{key}' is a list but should be a single value")),
            (_, Op::Add) => Err(format!("can't use += with numbers for `{key}'")),
            (Node::Atom(atom), Op::Assign) => {
                strtol(&atom.value).ok_or_else(|| format!("`{key}' is not a valid number"))
            }
        })
    }
}

/// The value xl's `find` returns after the statements in `done`.
pub(crate) fn fold(done: &[Assignment], key: &str) -> Option<Value> {
    let mut acc: Option<Value> = None;
    for a in done.iter().filter(|a| a.key == key) {
        let v = Value::of(&a.value);
        acc = Some(match (a.op, acc) {
            (Op::Add, Some(Value::String(mut s))) => match v {
                Value::String(t) => {
                    s.extend(t);
                    Value::String(s)
                }
                other => other,
            },
            (Op::Add, Some(Value::List(mut l))) => match v {
                Value::List(t) => {
                    l.extend(t);
                    Value::List(l)
                }
                other => other,
            },
            (_, _) => v,
        });
    }
    acc
}

/// C's `strtol(s, &ep, 0)` accepting only a full conversion, as
/// `xlu_cfg_get_bounded_long` does: leading blanks and a sign are allowed,
/// `0x` means hex and a leading `0` octal; overflow is an error.
pub fn strtol(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        // strtol's "0x" with no hex digit after it reads the "0" and stops.
        return None;
    }
    let mag = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -mag } else { mag };
    i64::try_from(v).ok()
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests;
