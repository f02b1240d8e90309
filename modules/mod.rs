//! The modules: for each, its arguments (whose doc comments are its
//! documentation and its schema), its own result keys, and its run: read
//! the host, plan, apply, report. What they share is the engine, in `src/`,
//! which knows no module; [`crate::protocol`] runs them.
//!
//! They are one binary (`modules/main.rs`), called by a module's name or as
//! `xenpci MODULE`: one copy serves every module, and the shared engine is
//! in it once.

pub mod domain_pci_config;
pub mod passthrough;
pub mod pci_assignable;
pub mod pci_attach;
pub mod pci_info;
pub mod pci_sriov;

use serde_json::Value;

use crate::protocol::{args_schema, result_schema, Entry, Module};

/// A module's schemas as generated from its types: what `schemas/` holds
/// (the tests check it) and what its documentation is made from. Only the
/// tests and tools call this: the binary embeds the checked-in files and
/// carries no schema generator.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The module's name.
    pub name: &'static str,
    /// The JSON Schema of its arguments.
    pub args: Value,
    /// The JSON Schema of its result.
    pub result: Value,
}

impl Generated {
    fn of<M: Module>() -> Generated {
        Generated {
            name: M::NAME,
            args: args_schema::<M>(),
            result: result_schema::<M>(),
        }
    }
}

/// The one list of the modules: [`ALL`] and [`generated`] from it.
macro_rules! modules {
    ($($m:ident::$t:ident),* $(,)?) => {
        /// Every module, by its name.
        pub const ALL: &[Entry] = &[$(Entry::of::<$m::$t>()),*];

        /// Every module's schemas, generated from its types.
        pub fn generated() -> Vec<Generated> {
            vec![$(Generated::of::<$m::$t>()),*]
        }
    };
}

modules!(
    domain_pci_config::DomainPciConfig,
    passthrough::Passthrough,
    pci_assignable::PciAssignable,
    pci_attach::PciAttach,
    pci_info::PciInfo,
    pci_sriov::PciSriov,
);
