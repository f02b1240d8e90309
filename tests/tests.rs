//! The one test binary: each module below is a theme.

mod util;

mod docs;
mod domain_pci_config;
mod edit_props;
mod oracle;
mod real_host;
mod reliability;
mod schemas;
