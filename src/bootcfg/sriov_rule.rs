//! The udev rule of `persistent` SR-IOV functions, read and written
//! without I/O.
//!
//! `sriov_numvfs` starts at 0 at every boot, and only a write to it makes
//! VFs. The PF's driver must be bound for the write to work (`ENOENT`
//! otherwise), so the rule matches the PF once it has a driver: on its
//! `bind` event, when its driver loads from the root filesystem, and on
//! the `add` event of the root filesystem's coldplug (`udevadm trigger
//! --action=add`), when its driver bound in the initramfs, whose udev does
//! not have this rule. udev writes the `ATTR` keys in the order written:
//! autoprobe first, so that it is in effect when the VFs appear. A write
//! of the count the PF already has is a no-op for the kernel, so a later
//! trigger changes nothing.
//!
//! ```
//! use xenpci::bootcfg::sriov_rule::{SriovRule, SriovRules};
//!
//! let mut rules = SriovRules::default();
//! rules.set(SriovRule { pf: "07:00.0".parse().unwrap(), num_vfs: 4, autoprobe: false });
//! let text = rules.render();
//! assert!(text.contains(r#"KERNEL=="0000:07:00.0", DRIVER=="?*", ATTR{sriov_drivers_autoprobe}="0", ATTR{sriov_numvfs}="4""#));
//! assert_eq!(SriovRules::parse(&text), rules);
//! ```

use crate::bdf::Bdf;

/// One PF's VFs at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovRule {
    /// The physical function.
    pub pf: Bdf,
    /// The VFs it gets.
    pub num_vfs: u16,
    /// Whether dom0's drivers probe them.
    pub autoprobe: bool,
}

/// The rule file: one line per PF, in BDF order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SriovRules {
    /// The PFs, sorted by BDF.
    pub rules: Vec<SriovRule>,
}

const HEADER: &str = "# Managed by xenpci (pci_sriov persistent: true): SR-IOV virtual functions\n\
# made at boot, once each physical function's driver is bound. Edits are\n\
# overwritten.\n";

impl SriovRules {
    /// Reads the file's rules; lines this project did not write are
    /// skipped (the file is this project's, and rewritten whole).
    pub fn parse(text: &str) -> SriovRules {
        let mut rules: Vec<SriovRule> = text.lines().filter_map(parse_line).collect();
        rules.sort_by_key(|r| r.pf);
        rules.dedup_by_key(|r| r.pf);
        SriovRules { rules }
    }

    /// The file's text; empty when no PF has a rule.
    pub fn render(&self) -> String {
        if self.rules.is_empty() {
            return String::new();
        }
        let mut out = HEADER.to_string();
        for r in &self.rules {
            out.push_str(&format!(
                "ACTION==\"add|bind\", SUBSYSTEM==\"pci\", KERNEL==\"{}\", DRIVER==\"?*\", \
                 ATTR{{sriov_drivers_autoprobe}}=\"{}\", ATTR{{sriov_numvfs}}=\"{}\"\n",
                r.pf,
                u8::from(r.autoprobe),
                r.num_vfs
            ));
        }
        out
    }

    /// The rule of `pf`, if it has one.
    pub fn get(&self, pf: &Bdf) -> Option<&SriovRule> {
        self.rules.iter().find(|r| r.pf == *pf)
    }

    /// Gives `rule.pf` this rule.
    pub fn set(&mut self, rule: SriovRule) {
        self.remove(&rule.pf);
        self.rules.push(rule);
        self.rules.sort_by_key(|r| r.pf);
    }

    /// Drops the rule of `pf`.
    pub fn remove(&mut self, pf: &Bdf) {
        self.rules.retain(|r| r.pf != *pf);
    }
}

/// One rule line, as [`SriovRules::render`] writes it.
fn parse_line(line: &str) -> Option<SriovRule> {
    let line = line.trim();
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let value = |key: &str| -> Option<&str> {
        let start = line.find(key)? + key.len();
        let rest = &line[start..];
        rest.find('"').map(|end| &rest[..end])
    };
    let pf: Bdf = value("KERNEL==\"")?.parse().ok()?;
    let num_vfs = value("ATTR{sriov_numvfs}=\"")?.parse().ok()?;
    let autoprobe = value("ATTR{sriov_drivers_autoprobe}=\"").is_none_or(|v| v != "0");
    Some(SriovRule {
        pf,
        num_vfs,
        autoprobe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_lines() {
        let text = "# a comment\nSUBSYSTEM==\"net\", ACTION==\"add\", RUN+=\"/bin/true\"\n\
ACTION==\"add|bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:81:00.0\", DRIVER==\"?*\", ATTR{sriov_numvfs}=\"64\"\n";
        let rules = SriovRules::parse(text);
        assert_eq!(
            rules.rules,
            vec![SriovRule {
                pf: "81:00.0".parse().unwrap(),
                num_vfs: 64,
                autoprobe: true
            }]
        );
        assert_eq!(SriovRules::parse(&rules.render()), rules);
        assert_eq!(SriovRules::default().render(), "");
    }
}
