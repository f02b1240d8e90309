//! The one rule for a device's assignable name, wherever a user gives it:
//! pci_assignable's `name` (`xl pci-assignable-add -n NAME`) and `name=` in
//! a PCI spec (pci_attach, domain_pci_config).
//!
//! A name is only worth giving if the device can later be named by it, so
//! the rule is what both ends take: libxl stores a name of 1 to 64
//! characters, each `isgraph` (`libxl__device_pci_assignable_add`: "Name
//! too long", "Names may only include printable characters"; xl runs in
//! the C locale, so that is printable ASCII without the blank), and xl's
//! spec grammar reads `name=` up to the next `,`
//! (`xlu_pci_parse_spec_string`), so a `,` would cut the name short. A `=`
//! is fine: the key ends at the first one.
//!
//! ```
//! use xenpci::spec::check_name;
//! assert!(check_name("gpu0").is_ok());
//! assert!(check_name("nic,1").is_err());
//! ```

/// libxl's "reasonable upper bound on name length".
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` can be given to a device and then name it: `Err` says
/// why not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {name:?} is {} bytes long; libxl takes at most {MAX_NAME_LEN} (\"Name too long\")",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "name {name:?} holds {c:?}; libxl takes only printable characters without blanks \
             (\"Names may only include printable characters\")"
        ));
    }
    if name.contains(',') {
        return Err(format!(
            "name {name:?} holds ',', which ends name= in a PCI spec, \
             so no spec could name the device by it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name` is refused with a message containing `why`.
    macro_rules! refused {
        ($name:expr => $why:expr) => {{
            let e = check_name($name).expect_err($name);
            assert!(e.contains($why), "{:?}: {e}", $name);
        }};
    }

    #[test]
    fn names_both_ends_take() {
        for ok in ["gpu", "nic-1", "a=b", "x@1", "$(id)", &"n".repeat(64)] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
        }
        refused!("" => "name is empty");
        refused!(&"n".repeat(65) => "at most 64");
        refused!("two words" => "' '");
        refused!(" gpu" => "without blanks");
        refused!("tab\there" => "'\\t'");
        refused!("caf\u{e9}" => "printable");
        refused!("nul\0" => "printable");
        refused!("nic,1" => "ends name= in a PCI spec");
    }
}
