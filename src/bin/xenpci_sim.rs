//! xenpci-sim: what happens to a simulated dom0 outside the modules' runs.
//!
//!     xenpci-sim reboot FILE    boot the simulated dom0 in FILE again
//!
//! A reboot applies the simulator's boot model (`xenpci::host::sim::boot`):
//! guests and libxl's xenstore records are gone, and each device is taken by
//! the driver that would take it at boot, xen-pciback for the devices the
//! boot configuration hides. Tests of a playbook's `persistent: true` run
//! it between two plays, as the real-Xen tier reboots a real dom0.

use std::path::PathBuf;
use std::process::ExitCode;

use xenpci::host::sim::SimHost;
use xenpci::host::Host;

const USAGE: &str = "usage: xenpci-sim reboot FILE\n\
\n\
Boots the simulated dom0 in FILE (a XENPCI_HOST snapshot) again: guests and\n\
libxl's records are gone, each device is taken by the driver that takes it\n\
at boot, and xen-pciback takes the devices the boot configuration hides.\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, file] if cmd == "reboot" => match reboot(PathBuf::from(file)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xenpci-sim: {e}");
                ExitCode::FAILURE
            }
        },
        [h] if h == "--help" || h == "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn reboot(file: PathBuf) -> Result<(), xenpci::host::HostError> {
    let mut host = SimHost::open(file)?;
    host.reboot();
    host.commit()
}
