//! pci_attach: one snapshot per scenario folder under
//! `tests/pci_attach/` on a simulated dom0 (check, apply, re-apply,
//! and what changed on the host, through [`check_apply_reapply_on_host`]),
//! and the properties a snapshot states less plainly.
//!
//! A scenario folder holds `args.json` and either its own `host.json` or a
//! `host.txt` naming a shipped snapshot (`typical`, `sriov`) with an
//! optional `patch.json`..

use crate::util::{check_apply_reapply_on_host, each_scenario, scenario_may_differ, Scenario};

const BIN: &str = env!("CARGO_BIN_EXE_pci_attach");

/// Result keys check mode cannot know: `devices_after` is what the guest
/// holds before the run in check mode (documented so).
const MAY_DIFFER: [&str; 1] = ["devices_after"];

fn snapshot(path: &std::path::Path) {
    let sc = Scenario::load(path);
    let may_differ = scenario_may_differ(&sc, &MAY_DIFFER);
    let may_differ: Vec<&str> = may_differ.iter().map(String::as_str).collect();
    let value = check_apply_reapply_on_host(BIN, &sc, &may_differ);
    let mut settings = insta::Settings::clone_current();
    settings.remove_snapshot_suffix();
    if let Some(about) = &sc.about {
        settings.set_description(about.clone());
    }
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_json_snapshot!(sc.name.as_str(), value));
}

#[test]
fn scenarios() {
    let mut failed = Vec::new();
    insta::glob!("pci_attach/*/args.json", |path| {
        failed.extend(each_scenario(path, snapshot));
    });
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}
