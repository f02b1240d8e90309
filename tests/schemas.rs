//! `schemas/` is generated from the argument and result types; this test
//! fails when the checked-in files drift from them. The module binaries
//! print (and check their arguments against) the checked-in files, which
//! they embed: the types stay the one source of truth, and the binaries
//! carry no schema generator.
//!
//! Regenerate with: `XENPCI_BLESS=1 cargo test --test tests schemas`

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use xenpci::protocol::{args_schema, result_schema};

// The module sources, for their types (their `main` goes unused here).
#[allow(dead_code)]
#[path = "../modules/domain_pci_config.rs"]
mod domain_pci_config;
#[allow(dead_code)]
#[path = "../modules/pci_assignable.rs"]
mod pci_assignable;
#[allow(dead_code)]
#[path = "../modules/pci_attach.rs"]
mod pci_attach;
#[allow(dead_code)]
#[path = "../modules/pci_info.rs"]
mod pci_info;

/// Every module: name, binary, and its argument and result schemas as
/// generated from its types.
pub fn modules() -> Vec<(&'static str, &'static str, Value, Value)> {
    macro_rules! module {
        ($name:ident, $module:ty) => {
            (
                stringify!($name),
                env!(concat!("CARGO_BIN_EXE_", stringify!($name))),
                args_schema::<$module>(),
                result_schema::<$module>(),
            )
        };
    }
    vec![
        module!(domain_pci_config, domain_pci_config::DomainPciConfig),
        module!(pci_assignable, pci_assignable::PciAssignable),
        module!(pci_attach, pci_attach::PciAttach),
        module!(pci_info, pci_info::PciInfo),
    ]
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("serializable") + "\n"
}

fn printed(bin: &str, flag: &str) -> Value {
    let out = Command::new(bin).arg(flag).output().expect("module runs");
    assert!(out.status.success(), "{bin} {flag} failed");
    serde_json::from_slice(&out.stdout).expect("schema is JSON")
}

#[test]
fn schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let bless = std::env::var_os("XENPCI_BLESS").is_some();
    let mut drift = Vec::new();
    for (name, _, args, result) in modules() {
        for (schema, kind) in [(args, "args"), (result, "result")] {
            let want = pretty(&schema);
            let file = dir.join(format!("{name}.{kind}.json"));
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
    for (name, bin, args, result) in modules() {
        assert_eq!(printed(bin, "--schema"), args, "{name} --schema");
        assert_eq!(
            printed(bin, "--result-schema"),
            result,
            "{name} --result-schema"
        );
    }
}

#[test]
fn schema_describes_every_argument() {
    for (name, _, args, _) in modules() {
        let props = args["properties"].as_object().expect("properties");
        for (key, p) in props {
            assert!(
                p.get("description").is_some(),
                "{name}: argument {key} has no doc comment"
            );
        }
    }
}
