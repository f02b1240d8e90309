//! `schemas/` is generated from the argument and result types; this test
//! fails when the checked-in files drift from them.
//!
//! Regenerate with: `XENPCI_BLESS=1 cargo test --test tests schemas`

use std::path::Path;
use std::process::Command;

/// Every module binary, with its path.
const MODULES: &[(&str, &str)] = &[
    ("domain_pci_config", env!("CARGO_BIN_EXE_domain_pci_config")),
    ("pci_assignable", env!("CARGO_BIN_EXE_pci_assignable")),
    ("pci_attach", env!("CARGO_BIN_EXE_pci_attach")),
    ("pci_info", env!("CARGO_BIN_EXE_pci_info")),
];

fn schema(bin: &str, flag: &str) -> String {
    let out = Command::new(bin).arg(flag).output().expect("module runs");
    assert!(out.status.success(), "{bin} {flag} failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    serde_json::to_string_pretty(&v).expect("serializable") + "\n"
}

#[test]
fn schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let bless = std::env::var_os("XENPCI_BLESS").is_some();
    let mut drift = Vec::new();
    for (name, bin) in MODULES {
        for (flag, kind) in [("--schema", "args"), ("--result-schema", "result")] {
            let want = schema(bin, flag);
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

#[test]
fn schema_describes_every_argument() {
    for (name, bin) in MODULES {
        let v: serde_json::Value = serde_json::from_str(&schema(bin, "--schema")).expect("JSON");
        let props = v["properties"].as_object().expect("properties");
        for (key, p) in props {
            assert!(
                p.get("description").is_some(),
                "{name}: argument {key} has no doc comment"
            );
        }
    }
}
