//! xenpci: the shared engine of the xenpci Ansible modules.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
