//! Device lists as module arguments: every entry read, and the entry at
//! fault named by its index (`devices[2]: ...`), the same way in every
//! module.

use std::collections::HashMap;

use super::{PciSpec, SpecArg};
use crate::bdf::BdfPattern;

/// The entry of a device list that is refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("devices[{index}]: {problem}")]
pub struct ListError {
    /// Its index in the list.
    pub index: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// Each text as a BDF or `BB:DD.*`. The list is a set of devices: an
/// address given twice, or a function a wildcard also covers, is one
/// device, as for xl.
pub fn pattern_list(texts: &[String]) -> Result<Vec<BdfPattern>, ListError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, t)| {
            BdfPattern::parse(t).map_err(|e| ListError {
                index,
                problem: e.to_string(),
            })
        })
        .collect()
}

/// Each argument as a spec; `adding` for a device to attach or to list
/// ([`SpecArg::to_spec_to_add`]), else to remove ([`SpecArg::to_spec`]).
/// A device given twice is refused: its two specs could say different
/// things (a vslot, options), and a list of devices to pass names each once.
pub fn spec_list(args: &[SpecArg], adding: bool) -> Result<Vec<PciSpec>, ListError> {
    let mut specs: Vec<PciSpec> = Vec::with_capacity(args.len());
    // Position of each device's first spec: a 512-entry list stays linear.
    let mut seen = HashMap::new();
    for (index, arg) in args.iter().enumerate() {
        let spec = if adding {
            arg.to_spec_to_add()
        } else {
            arg.to_spec()
        };
        let spec = spec.map_err(|e| ListError {
            index,
            problem: e.to_string(),
        })?;
        if let Some(&prev) = seen.get(spec.key()) {
            let prev: &PciSpec = &specs[prev];
            return Err(ListError {
                index,
                problem: format!("{} is given twice (also as '{prev}')", spec.key()),
            });
        }
        seen.insert(spec.key().clone(), specs.len());
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(t: &[&str]) -> Vec<SpecArg> {
        t.iter().map(|s| SpecArg::Text(s.to_string())).collect()
    }

    #[test]
    fn the_entry_at_fault_is_named() {
        let e = spec_list(&texts(&["07:00.0", "07:00.0@3,permissive=1"]), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "devices[1]: 0000:07:00.0 is given twice (also as '0000:07:00.0')"
        );
        let e = spec_list(&texts(&["07:00.0", "bogus"]), false).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.to_string().starts_with("devices[1]: \"bogus\""), "{e}");
        // Adding `BB:DD.*` needs a vslot; removing it does not.
        assert!(spec_list(&texts(&["07:00.*"]), true).is_err());
        assert!(spec_list(&texts(&["07:00.*"]), false).is_ok());
    }

    #[test]
    fn a_bdf_list_is_a_set() {
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pattern_list(&t(&["07:00.0", "0000:07:00.0"]))
                .unwrap()
                .len(),
            2
        );
        let e = pattern_list(&t(&["07:00.0", "07:00.0:"])).unwrap_err();
        assert_eq!(e.index, 1);
    }
}
