//! The JSON Schemas of a module's arguments and result: generated from its
//! types (for `schemas/` and the tests), read back from the checked-in
//! files (for the argument checks, `--help` and `--schema`).

use serde_json::{Map, Value};

use super::module::Module;
use super::report::Report;

/// of truth).
pub fn supported_keys(schema: &Value) -> Vec<String> {
    let mut keys: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The short description (the first paragraph of the arguments type's doc)
/// and the rest of that doc, from an arguments schema.
pub fn module_doc(schema: &Value) -> (String, String) {
    let doc = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    match doc.split_once("\n\n") {
        Some((short, rest)) => (short.trim().to_string(), rest.trim().to_string()),
        None => (doc.trim().to_string(), String::new()),
    }
}

/// A checked-in schema ([`Module::ARGS_SCHEMA`], [`Module::RESULT_SCHEMA`])
/// as a value.
pub fn schema_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The JSON Schema of `M`'s arguments, generated from its types: what
/// `schemas/NAME.args.json` holds (the tests check it).
///
/// Other accepted names of arguments are listed under the extension keyword
/// `x-aliases` (alias to argument), for the documentation generator.
pub fn args_schema<M: Module>() -> Value {
    let settings = schemars::gen::SchemaSettings::draft07();
    let schema = settings.into_generator().into_root_schema_for::<M::Args>();
    let mut v = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let (Value::Object(obj), false) = (&mut v, M::ALIASES.is_empty()) {
        let aliases: Map<String, Value> = M::ALIASES
            .iter()
            .map(|(a, k)| (a.to_string(), Value::from(*k)))
            .collect();
        obj.insert("x-aliases".into(), Value::Object(aliases));
    }
    v
}

/// The JSON Schema of `M`'s result object, generated from its types: what
/// `schemas/NAME.result.json` holds (the tests check it).
pub fn result_schema<M: Module>() -> Value {
    let settings = schemars::gen::SchemaSettings::draft07();
    let schema = settings
        .into_generator()
        .into_root_schema_for::<Report<M::Facts>>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}
