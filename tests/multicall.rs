//! The modules' one binary picks its module by its own name (as the
//! collection ships it, and as Ansible copies it: `AnsiballZ_NAME`) or by
//! its first argument; anything else gets its own help, list or usage error.

use serde_json::Value;

use crate::util::{module_path, run_raw, XENPCI};

fn result(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_module_is_the_one_the_binary_is_named_after() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let ansiballz = dir.path().join("AnsiballZ_pci_info");
    // A link, not a copy: a copy just written can still be open for writing
    // in a child another test forks meanwhile, and exec fails (ETXTBSY).
    std::os::unix::fs::symlink(XENPCI, &ansiballz).expect("symlink");
    let path = ansiballz.to_str().expect("UTF-8");
    for (bin, argv) in [
        (path, vec!["--version"]),
        (XENPCI, vec!["pci_info", "--version"]),
        (
            module_path("pci_info").to_str().expect("UTF-8"),
            vec!["--version"],
        ),
    ] {
        let ran = run_raw(bin, &argv, None, &[]);
        assert_eq!(ran.code, 0, "{bin}: {ran:?}");
        assert_eq!(
            ran.stdout,
            format!("pci_info {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    // Under a module's name, the first argument is the module's own.
    let ran = run_raw(path, &["pci_attach"], None, &[]);
    assert_eq!(ran.code, 1);
    assert!(result(&ran.stdout)["msg"]
        .as_str()
        .unwrap()
        .contains("pci_attach"));
}

#[test]
fn under_its_own_name_it_lists_and_explains_the_modules() {
    let ran = run_raw(XENPCI, &["--list"], None, &[]);
    assert_eq!(
        ran.stdout,
        "domain_pci_config\npassthrough\npci_assignable\npci_attach\npci_info\npci_sriov\n"
    );
    let help = run_raw(XENPCI, &["--help"], None, &[]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout
            .contains("  pci_info           Gather PCI pass-through facts of a dom0.\n"),
        "{}",
        help.stdout
    );
    for argv in [&[][..], &["pci_infox"][..], &["--check"][..]] {
        let ran = run_raw(XENPCI, argv, None, &[]);
        assert_eq!(ran.code, 1, "{argv:?}");
        let v = result(&ran.stdout);
        assert_eq!(
            (v["failed"].as_bool(), v["changed"].as_bool()),
            (Some(true), Some(false))
        );
        assert!(v["msg"].as_str().unwrap().starts_with("error: "), "{v}");
    }
}
