//! xenpci: the shared engine of the xenpci Ansible modules.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
pub mod args;
pub mod assignable;
pub mod attach;
pub mod bdf;
pub mod bootcfg;
pub mod cli;
pub mod docs;
pub mod domcfg;
pub mod fileio;
pub mod guard;
pub mod host;
pub mod protocol;
pub mod spec;
pub mod xlcfg;
