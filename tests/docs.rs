//! The Ansible sidecar docs (`collection/plugins/modules/NAME.yml`) are
//! generated from the modules' schemas and `playbooks-examples/examples/`;
//! this test fails when the checked-in files drift from them.
//!
//! Regenerate with: `XENPCI_BLESS=1 cargo test --test tests docs`

use std::path::Path;

#[test]
fn sidecars_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("XENPCI_BLESS").is_some();
    let mut drift = Vec::new();
    // The schemas as generated from the types (what `schemas/` holds, and
    // the binaries print), so that one bless run regenerates both.
    for m in xenpci::modules::generated() {
        let (name, args, result) = (m.name, m.args, m.result);
        let examples =
            std::fs::read_to_string(root.join(format!("playbooks-examples/examples/{name}.yml")))
                .expect("every module has examples");
        let want = xenpci::docs::sidecar(name, &args, &result, &examples);
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
