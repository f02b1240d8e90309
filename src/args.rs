//! Argument values as Ansible users write them.
//!
//! Ansible converts `backup: "yes"` or `backup=no` to a boolean before a
//! Python module sees it; a binary module gets the JSON as written, so the
//! conversion is done here, once: [`truthy`] is Ansible's `boolean()` and
//! [`bool_lenient`] plugs it into serde. [`OneOrMany`] takes a list or a
//! single item where a list is expected (`bdf: 07:00.0` or
//! `devices: ['07:00.0']`).
//!
//! ```
//! use serde_json::json;
//! assert_eq!(xenpci::args::truthy(&json!("yes")), Some(true));
//! assert_eq!(xenpci::args::truthy(&json!(0)), Some(false));
//! assert_eq!(xenpci::args::truthy(&json!("maybe")), None);
//! ```

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Ansible's boolean conversion (`module_utils.parsing.convert_bool`).
pub fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let x = n.as_f64();
            if x == Some(1.0) {
                Some(true)
            } else if x == Some(0.0) {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Deserializes a boolean the way Ansible converts one (`deserialize_with`).
pub fn bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    truthy(&v).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{v} is not a valid boolean (use true/false, yes/no, on/off, 1/0)"
        ))
    })
}

/// [`bool_lenient`] for an optional boolean (`null` is "not given").
pub fn opt_bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    truthy(&v).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{v} is not a valid boolean (use true/false, yes/no, on/off, 1/0)"
        ))
    })
}

/// A list, or one item standing for a list of one.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// Several items.
    Many(Vec<T>),
    /// One item.
    One(T),
}

// By hand rather than `untagged`, so that an item's own error (an unknown
// field, a bad value) reaches the user, with the item's index.
impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    T::deserialize(v).map_err(|e| D::Error::custom(format!("[{i}]: {e}")))
                })
                .collect::<Result<Vec<T>, _>>()
                .map(OneOrMany::Many),
            other => T::deserialize(other)
                .map(OneOrMany::One)
                .map_err(D::Error::custom),
        }
    }
}

impl<T> OneOrMany<T> {
    /// The items as a list.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(x) => vec![x],
        }
    }
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}
