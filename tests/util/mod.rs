//! The harness shared by the module tests: run a module binary the ways
//! Ansible and people do, load a scenario folder into a temporary copy, and
//! run a scenario in check mode, then for real, then again
//! ([`check_apply_reapply`]), asserting what every module owes: check mode
//! changes nothing, check and apply agree, the second run changes nothing.
//!
//! Nothing here knows a particular module: a module's tests pass its name
//! (which runs the modules' binary under that name, see [`command`]) and the
//! result keys allowed to differ between check mode and apply.
//!
//! One file a job, each re-exported here (a test names any item
//! `crate::util::X`):
//! - `run`: running the modules' binary (a module's name or a path, time
//!   limit, a hook on the command, running as `nobody`) and the checks every
//!   result owes;
//! - `scenario`: a scenario folder in a temporary copy, redaction for
//!   snapshots, and the snapshot macro;
//! - `listing`: what a folder holds, and whether a run left it untouched;
//! - `check`: a scenario in check mode, applied, applied again;
//! - `json`: merge patches and differences of JSON values;
//! - `sim`: scenarios and runs on a simulated dom0 (`XENPCI_HOST`).

#![allow(dead_code)]

mod check;
mod json;
mod listing;
mod run;
#[macro_use]
mod scenario;
mod sim;

pub use check::*;
pub use json::*;
// No test outside the harness names a listing yet; still part of it.
#[allow(unused_imports)]
pub use listing::*;
pub use run::*;
pub use scenario::*;
pub use sim::*;
