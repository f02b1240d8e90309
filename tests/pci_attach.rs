//! pci_attach: one snapshot per scenario folder under
//! `tests/pci_attach/` on a simulated dom0 (check, apply, re-apply,
//! and what changed on the host, through [`check_apply_reapply_on_host`]),
//! and the properties a snapshot states less plainly.
//!
//! A scenario folder holds `args.json` and either its own `host.json` or a
//! `host.txt` naming a shipped snapshot (`typical`, `sriov`) with an
//! optional `patch.json`..

use crate::util::{each_scenario, host_scenario};

const BIN: &str = env!("CARGO_BIN_EXE_pci_attach");

/// Result keys check mode cannot know: `devices_after` is what the guest
/// holds before the run in check mode (documented so).
const MAY_DIFFER: [&str; 1] = ["devices_after"];

fn snapshot(path: &std::path::Path) {
    let (sc, value) = host_scenario(BIN, path, &MAY_DIFFER);
    assert_scenario_snapshot!(sc, value);
}

#[test]
fn scenarios() {
    let mut failed = Vec::new();
    insta::glob!("pci_attach/*/args.json", |path| {
        failed.extend(each_scenario(path, snapshot));
    });
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}
