//! The one test binary: each module below is a theme.

#[macro_use]
mod util;

mod ansible_doc;
mod boot;
mod docs;
mod domain_pci_config;
mod edit_props;
mod injection;
mod multicall;
mod oracle;
mod passthrough;
mod pci_assignable;
mod pci_attach;
mod pci_info;
mod pci_sriov;
mod real_host;
mod reliability;
mod schemas;
