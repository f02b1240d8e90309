//! The arguments: read from a file, standard input or `key=value` words,
//! Ansible's own keys taken out, then checked against the module's schema
//! and deserialized into its `Args`, naming the argument at fault.

use std::io::Read;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::module::{Mode, Module};
use super::report::Failure;
use super::schema::{schema_value, supported_keys};

/// Inputs larger than this are refused before parsing.
const MAX_ARGS_BYTES: u64 = 64 << 20;

/// Where the arguments come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file holding a JSON object (Ansible's way).
    File(String),
    /// A JSON object on standard input.
    Stdin,
    /// `key=value` words.
    Pairs(Vec<(String, String)>),
}

pub(super) fn read_input(input: &Input) -> Result<Map<String, Value>, Failure> {
    let text = match input {
        Input::Pairs(pairs) => return Ok(pairs_to_object(pairs)),
        Input::File(path) => crate::fileio::read_file(Path::new(path), MAX_ARGS_BYTES)
            .map_err(|e| Failure::msg(format!("cannot read the arguments file: {e}")))?
            .ok_or_else(|| Failure::msg(format!("arguments file {path} does not exist")))?,
        Input::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(MAX_ARGS_BYTES + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    Failure::msg(format!(
                        "cannot read the arguments from standard input: {e}"
                    ))
                })?;
            if buf.len() as u64 > MAX_ARGS_BYTES {
                return Err(Failure::msg("arguments larger than 64 MiB"));
            }
            // Nothing on stdin: no arguments (`pci_info < /dev/null`).
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Map::new());
            }
            buf
        }
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(Failure::msg(format!(
            "arguments must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(e) => Err(Failure::msg(format!("arguments are not valid JSON: {e}"))),
    }
}

pub(super) fn pairs_to_object(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = match serde_json::from_str::<Value>(v) {
                // Only structured JSON and literals; a bare word stays a string.
                Ok(
                    j @ (Value::Array(_)
                    | Value::Object(_)
                    | Value::Bool(_)
                    | Value::Number(_)
                    | Value::Null),
                ) => j,
                _ => Value::String(v.clone()),
            };
            (k.clone(), value)
        })
        .collect()
}

pub(super) fn split_ansible_keys(
    mut obj: Map<String, Value>,
    cli: Mode,
) -> Result<(Map<String, Value>, Mode), Failure> {
    let mut mode = cli;
    let internal: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("_ansible_"))
        .cloned()
        .collect();
    for key in internal {
        let value = obj.remove(&key).unwrap_or(Value::Null);
        let flag = || {
            crate::args::truthy(&value)
                .ok_or_else(|| Failure::msg(format!("{key} must be a boolean")))
        };
        match key.as_str() {
            "_ansible_check_mode" => mode.check |= flag()?,
            "_ansible_diff" => mode.diff |= flag()?,
            _ => {}
        }
    }
    Ok((obj, mode))
}

pub(super) fn parse_args<M: Module>(mut obj: Map<String, Value>) -> Result<M::Args, Failure> {
    let schema = schema_value(M::ARGS_SCHEMA);
    let supported = supported_keys(&schema);
    for &(alias, name) in M::ALIASES {
        if let Some(v) = obj.remove(alias) {
            if obj.contains_key(name) {
                return Err(Failure::msg(format!(
                    "parameters are mutually exclusive: {name}|{alias}"
                )));
            }
            obj.insert(name.into(), v);
        }
    }
    let mut unknown: Vec<&String> = obj.keys().filter(|k| !supported.contains(k)).collect();
    if !unknown.is_empty() {
        unknown.sort();
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let listed: Vec<String> = supported
            .iter()
            .map(|k| {
                let aliases: Vec<&str> = M::ALIASES
                    .iter()
                    .filter(|(_, n)| n == k)
                    .map(|(a, _)| *a)
                    .collect();
                if aliases.is_empty() {
                    k.clone()
                } else {
                    format!("{k} ({})", aliases.join(", "))
                }
            })
            .collect();
        return Err(Failure::msg(format!(
            "Unsupported parameters for ({}) module: {}. Supported parameters include: {}.",
            M::NAME,
            names.join(", "),
            listed.join(", ")
        )));
    }
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&str> = required
        .iter()
        .filter(|k| !obj.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::msg(format!(
            "missing required arguments: {}",
            missing.join(", ")
        )));
    }
    <M::Args as serde::Deserialize>::deserialize(ArgsObject(obj))
        .map_err(|e| Failure::msg(e.to_string()))
}

/// The arguments object as a deserializer that names the argument at fault:
/// `argument 'KEY': ...`. Only the top level is tracked: every argument
/// type below it reads its value through a `Value` (see [`OneOrMany`]), and
/// says itself where in the value the fault is.
///
/// [`OneOrMany`]: crate::args::OneOrMany
struct ArgsObject(Map<String, Value>);

impl<'de> serde::Deserializer<'de> for ArgsObject {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ArgsEntries {
            entries: self.0.into_iter(),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ArgsEntries {
    entries: serde_json::map::IntoIter,
    value: Option<(String, Value)>,
}

impl<'de> MapAccess<'de> for ArgsEntries {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let k = seed.deserialize(key.as_str().into_deserializer())?;
        self.value = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without a key"))?;
        seed.deserialize(value)
            .map_err(|e| de::Error::custom(format!("argument '{key}': {e}")))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
