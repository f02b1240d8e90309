//! Binaries for old dom0s: the glibc 2.17 build (`bench/glibc217`, with
//! cargo-zigbuild) asks for no glibc symbol version newer than 2.17.
//!
//! The build is too slow for every test run, so this checks the binaries it
//! finds: in `$XENPCI_GLIBC217_DIR`, else in
//! `TARGET/x86_64-unknown-linux-gnu/release/` beside this test's own target
//! folder. Without them it says so and passes, unless
//! `XENPCI_REQUIRE_GLIBC217=1` (CI after `bench/glibc217`).

use std::path::PathBuf;
use std::process::Command;

const MODULES: [&str; 4] = ["domain_pci_config", "pci_assignable", "pci_attach", "pci_info"];
const MAX: (u32, u32, u32) = (2, 17, 0);

fn glibc217_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XENPCI_GLIBC217_DIR") {
        return PathBuf::from(dir);
    }
    // CARGO_BIN_EXE_pci_info is TARGET/PROFILE/pci_info.
    let native = PathBuf::from(env!("CARGO_BIN_EXE_pci_info"));
    let target = native
        .parent()
        .and_then(|p| p.parent())
        .expect("binary inside a target folder");
    target.join("x86_64-unknown-linux-gnu").join("release")
}

/// Every `GLIBC_X.Y[.Z]` version named in `objdump -T` output.
fn glibc_versions(objdump: &str) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for (i, _) in objdump.match_indices("GLIBC_") {
        let rest = &objdump[i + "GLIBC_".len()..];
        let text: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = text.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>());
        if let (Some(Ok(a)), Some(Ok(b))) = (parts.next(), parts.next()) {
            let c = parts.next().and_then(Result::ok).unwrap_or(0);
            out.push((a, b, c));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn reads_symbol_versions() {
    let sample = "0000 DF *UND* 0000 (GLIBC_2.2.5) memcpy\n0000 DF *UND* 0000 (GLIBC_2.17) clock_gettime\n\
                  0000 DF *UND* 0000 (GLIBC_2.34) __libc_start_main\n0000 DF *UND* 0000 GLIBC_PRIVATE x\n";
    assert_eq!(glibc_versions(sample), vec![(2, 2, 5), (2, 17, 0), (2, 34, 0)]);
}

#[test]
fn glibc_217_build_needs_nothing_newer() {
    let dir = glibc217_dir();
    let required = std::env::var_os("XENPCI_REQUIRE_GLIBC217").is_some_and(|v| v == "1");
    if !dir.join(MODULES[0]).exists() {
        assert!(!required, "no glibc 2.17 build in {} (run bench/glibc217)", dir.display());
        eprintln!("old_glibc: no glibc 2.17 build in {}; skipped (bench/glibc217 makes one)", dir.display());
        return;
    }
    for m in MODULES {
        let bin = dir.join(m);
        let out = Command::new("objdump")
            .arg("-T")
            .arg(&bin)
            .output()
            .unwrap_or_else(|e| panic!("objdump -T {}: {e}", bin.display()));
        assert!(out.status.success(), "objdump -T {} failed", bin.display());
        let text = String::from_utf8_lossy(&out.stdout);
        let versions = glibc_versions(&text);
        assert!(!versions.is_empty(), "{m}: no GLIBC_ symbol versions found");
        let newer: Vec<String> = text
            .lines()
            .filter(|l| glibc_versions(l).iter().any(|v| *v > MAX))
            .map(str::to_string)
            .collect();
        assert!(
            newer.is_empty(),
            "{m} needs glibc symbols newer than 2.17:\n{}",
            newer.join("\n")
        );
    }
}
