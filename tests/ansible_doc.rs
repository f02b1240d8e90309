//! What `ansible-doc` shows for each module: the checked-in sidecar doc
//! (`collection/plugins/modules/NAME.yml`) beside the module binary, read
//! by the real ansible-doc, as one insta snapshot per module.
//!
//! ansible-doc comes from the virtualenv of the Ansible tier, named by
//! `XENPCI_ANSIBLE_VENV` (made by `scripts/ansible-venv`; `.ci/run` and
//! `scripts/ansible-tier` set the variable). Without the variable the test
//! prints a note and passes, so that `cargo test` needs neither network nor
//! Python; with it set, a missing or broken ansible-doc fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use xenpci::modules::ALL;

/// The variable naming the virtualenv that holds ansible-doc.
const VENV_VAR: &str = "XENPCI_ANSIBLE_VENV";

fn ansible_doc() -> Option<PathBuf> {
    let venv = std::env::var_os(VENV_VAR).filter(|v| !v.is_empty())?;
    let bin = Path::new(&venv).join("bin/ansible-doc");
    assert!(
        bin.is_file(),
        "{VENV_VAR}={} has no bin/ansible-doc: run scripts/ansible-venv",
        bin.display()
    );
    Some(bin)
}

#[test]
fn ansible_doc_shows_each_module() {
    let Some(bin) = ansible_doc() else {
        eprintln!(
            "note: ansible_doc skipped: {VENV_VAR} is unset (set it to the venv of \
             scripts/ansible-venv, as .ci/run does, to compare ansible-doc's output)"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // ansible-doc finds a sidecar only beside its module: a folder with both.
    let dir = tempfile::tempdir().expect("temporary folder");
    let home = tempfile::tempdir().expect("temporary folder");
    for m in ALL {
        let name = m.name;
        std::fs::copy(crate::util::XENPCI, dir.path().join(name)).expect("module binary copied");
        let sidecar = format!("{name}.yml");
        std::fs::copy(
            root.join("collection/plugins/modules").join(&sidecar),
            dir.path().join(&sidecar),
        )
        .expect("sidecar copied");
    }
    let mut failed = Vec::new();
    for name in ALL.iter().map(|m| m.name) {
        let out = Command::new(&bin)
            .arg("-M")
            .arg(dir.path())
            .arg(name)
            .current_dir(home.path())
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_HOME", home.path())
            .env("ANSIBLE_CONFIG", home.path().join("none.cfg"))
            .env_remove("ANSIBLE_LIBRARY")
            .env_remove("ANSIBLE_COLLECTIONS_PATH")
            .output()
            .expect("ansible-doc runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // ansible-doc warns (and still exits 0) on a doc it cannot read.
        if !out.status.success() || !stderr.trim().is_empty() || stdout.trim().is_empty() {
            failed.push(format!("{name}: {}\n{stderr}", out.status));
            continue;
        }
        let text = stdout.replace(&dir.path().display().to_string(), "<modules>");
        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        settings.set_description(format!("ansible-doc -M <modules> {name}"));
        settings.bind(|| insta::assert_snapshot!(format!("ansible-doc-{name}"), text));
    }
    assert!(failed.is_empty(), "ansible-doc failed: {failed:#?}");
}
