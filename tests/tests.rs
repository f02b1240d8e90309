//! The one test binary: each module below is a theme.

mod util;

mod domain_pci_config;
mod edit_props;
mod oracle;
mod reliability;
mod schemas;
