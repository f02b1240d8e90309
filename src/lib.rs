//! xenpci: the shared engine of the xenpci Ansible modules.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
pub mod xlcfg;
pub mod fileio;
pub mod bdf;
pub mod spec;
pub mod args;
pub mod cli;
pub mod protocol;
pub mod domcfg;
