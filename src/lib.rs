//! xenpci: the xenpci Ansible modules and the engine they share.
//!
//! The modules ([`modules`], in the top-level folder `modules/`) are one
//! binary that Ansible runs with a file of JSON arguments and that prints
//! one JSON result. Everything else in the crate is the engine, in `src/`,
//! and knows no module: the modules call it; it never calls them.
//!
//! # How a request flows
//!
//! 1. The edge, [`protocol`]: [`protocol::multicall`] picks the module by
//!    the binary's name (or its first argument) and [`protocol::main`] runs
//!    it: it reads the command line (clap), the arguments (an Ansible args
//!    file, JSON on stdin or `key=value` words), checks them against the
//!    module's [`protocol::Module::Args`] (whose doc comments are also the
//!    schemas in `schemas/`, the `--help` and the Ansible docs made by
//!    [`docs`]), and calls [`protocol::Module::run`]. Whatever happens, it
//!    prints one result: an [`protocol::Outcome`], or a
//!    [`protocol::Failure`] that says what was done before the failure. The
//!    edge alone knows results, JSON and exit codes; every engine error
//!    becomes a failure in one place (`protocol/failures.rs`).
//! 2. A module ([`modules::pci_assignable`], ...): its argument types, then
//!    read the host, plan, apply, report.
//! 3. The grammars, pure functions over text with byte positions:
//!    [`bdf::Bdf`] (a PCI address), [`spec::PciSpec`] (an xl PCI spec
//!    string, exactly as xl reads it), [`xlcfg::XlConfig`] (an xl domain
//!    config file, read as libxlutil does and edited by splices),
//!    [`bootcfg::ModprobeConf`] and [`bootcfg::sriov_rule`] (the boot files
//!    of `persistent`).
//! 4. [`host::Host`]: everything a module asks of a dom0, in libxl's and the
//!    kernel's own steps. [`host::open`] gives the real dom0
//!    ([`host::real::RealHost`]: sysfs, `xl`, xenstore) or a simulated one
//!    ([`host::sim::SimHost`], a JSON snapshot named by `XENPCI_HOST`).
//! 5. The engines plan, then apply, returning typed errors and plain
//!    values: [`assignable`] (pciback and the boot configuration, behind the
//!    dom0 [`guard`]), [`attach`] (hot-plug into running guests), [`domcfg`]
//!    (the `pci` list of a config file, written through the safe-file layer
//!    [`fileio`]: atomic, locked, backed up), [`facts`] (what pci_info
//!    reports), [`sriov`] (a physical function's VFs, now and at boot),
//!    and [`passthrough`], which plans a whole host over the
//!    others (what each step knows of the steps before it) and undoes the
//!    steps done when one fails. Check mode stops after the plan; apply
//!    runs it and reports what was done, a rollback included.
//!    Before any plan, [`select`] turns the selections of a device
//!    argument (`{select: {...}, count: N}`) into devices on the host.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
pub mod args;
pub mod assignable;
pub mod attach;
pub mod bdf;
pub mod bootcfg;
pub mod docs;
pub mod domcfg;
pub mod facts;
pub mod fileio;
pub mod guard;
pub mod host;
// The modules live in the top-level folder modules/, where a reader of the
// collection looks for them; they are the only part of the crate that names
// a module.
#[path = "../modules/mod.rs"]
pub mod modules;
pub mod passthrough;
pub mod protocol;
pub mod select;
pub mod spec;
pub mod sriov;
pub mod xlcfg;
