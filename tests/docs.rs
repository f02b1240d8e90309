//! The Ansible sidecar docs (`collection/plugins/modules/NAME.yml`) are
//! generated from the modules' schemas and `playbooks-examples/examples/`;
//! this test fails when the checked-in files drift from them.
//!
//! Regenerate with: `XENPCI_BLESS=1 cargo test --test tests docs`

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Every module binary.
pub const MODULES: &[(&str, &str)] = &[
    ("domain_pci_config", env!("CARGO_BIN_EXE_domain_pci_config")),
    ("pci_assignable", env!("CARGO_BIN_EXE_pci_assignable")),
    ("pci_attach", env!("CARGO_BIN_EXE_pci_attach")),
    ("pci_info", env!("CARGO_BIN_EXE_pci_info")),
];

fn schema(bin: &str, flag: &str) -> Value {
    let out = Command::new(bin).arg(flag).output().expect("module runs");
    serde_json::from_slice(&out.stdout).expect("schema is JSON")
}

#[test]
fn sidecars_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("XENPCI_BLESS").is_some();
    let mut drift = Vec::new();
    for (name, bin) in MODULES {
        let examples =
            std::fs::read_to_string(root.join(format!("playbooks-examples/examples/{name}.yml")))
                .expect("every module has examples");
        let want = xenpci::docs::sidecar(
            name,
            &schema(bin, "--schema"),
            &schema(bin, "--result-schema"),
            &examples,
        );
        let file = root.join(format!("collection/plugins/modules/{name}.yml"));
        if std::fs::read_to_string(&file).unwrap_or_default() != want {
            if bless {
                std::fs::write(&file, &want).expect("writable");
            } else {
                drift.push(file.display().to_string());
            }
        }
    }
    assert!(
        drift.is_empty(),
        "sidecar docs drifted from the types: {drift:?}\nregenerate: XENPCI_BLESS=1 cargo test --test tests docs"
    );
}
