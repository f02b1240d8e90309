//! `schemas/` is generated from the argument and result types
//! ([`xenpci::modules::generated`]); this test fails when the checked-in
//! files drift from them. The modules' binary prints (and checks arguments
//! against) the checked-in files, which it embeds: the types stay the one
//! source of truth, and the binary carries no schema generator.
//!
//! Regenerate with: `XENPCI_BLESS=1 cargo test --test tests schemas`

use std::path::Path;

use serde_json::Value;
use xenpci::modules::generated;

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("serializable") + "\n"
}

fn printed(name: &str, flag: &str) -> Value {
    let out = crate::util::command(name)
        .arg(flag)
        .output()
        .expect("module runs");
    assert!(out.status.success(), "{name} {flag} failed");
    serde_json::from_slice(&out.stdout).expect("schema is JSON")
}

#[test]
fn schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let bless = std::env::var_os("XENPCI_BLESS").is_some();
    let mut drift = Vec::new();
    for m in generated() {
        for (schema, kind) in [(m.args, "args"), (m.result, "result")] {
            let want = pretty(&schema);
            let file = dir.join(format!("{}.{kind}.json", m.name));
            let have = std::fs::read_to_string(&file).unwrap_or_default();
            if have != want {
                if bless {
                    std::fs::write(&file, &want).expect("schemas/ is writable");
                } else {
                    drift.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        drift.is_empty(),
        "schemas drifted from the types: {drift:?}\nregenerate: XENPCI_BLESS=1 cargo test --test tests schemas"
    );
}

/// The binaries print the schemas they were built with: the generated ones
/// (after a bless, from the next build on).
#[test]
fn binaries_print_the_schemas() {
    if std::env::var_os("XENPCI_BLESS").is_some() {
        return;
    }
    for m in generated() {
        assert_eq!(printed(m.name, "--schema"), m.args, "{} --schema", m.name);
        assert_eq!(
            printed(m.name, "--result-schema"),
            m.result,
            "{} --result-schema",
            m.name
        );
    }
}

#[test]
fn schema_describes_every_argument() {
    for m in generated() {
        let name = m.name;
        let props = m.args["properties"].as_object().expect("properties");
        for (key, p) in props {
            assert!(
                p.get("description").is_some(),
                "{name}: argument {key} has no doc comment"
            );
        }
    }
}
