//! pci_info: PCI pass-through facts of a dom0.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::args::OneOrMany;
use crate::facts::{self, XenPci};
use crate::host;
use crate::protocol::{Failure, Mode, Module, Outcome};
use crate::spec;

/// Gather PCI pass-through facts of a dom0.
///
/// Returns, as `ansible_facts.xen_pci`, every PCI device (address, class,
/// vendor and device ids, driver, IOMMU group, SR-IOV parent and functions),
/// which are assignable, which guest holds which, and what the dom0 guard of
/// pci_assignable says about each: every reason it would refuse to take the
/// device from dom0. Devices whose kernel log shows pciback refusing a
/// guest's write to a read-only config-space field get a hint to set
/// `permissive`. With `config_dir`, `drift` says where running guests and
/// their configs disagree. Changes nothing; `XENPCI_HOST=FILE` reads a
/// simulated dom0.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// Only these devices (`[DDDD:]BB:DD.F`, `BB:DD.*`); all when empty.
    #[serde(default)]
    devices: OneOrMany<String>,
    /// A folder of xl domain configs named after their guests
    /// (`/etc/xen`): each running guest's `NAME.cfg` there is compared
    /// with what the guest holds, in `xen_pci.drift` (a device attached but
    /// not in the config, or in the config but not attached).
    #[serde(default)]
    config_dir: Option<PathBuf>,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
    /// Ansible facts: `xen_pci`.
    ansible_facts: AnsibleFacts,
}

/// What Ansible merges into the host's facts.
#[derive(Debug, Serialize, JsonSchema)]
struct AnsibleFacts {
    /// PCI pass-through facts.
    xen_pci: XenPci,
}

/// The module.
pub struct PciInfo;

impl Module for PciInfo {
    const NAME: &'static str = "pci_info";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/pci_info.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/pci_info.result.json");
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, _mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        let filter = spec::pattern_list(&args.devices.into_vec())?;
        let host = host::open()?;
        let facts = facts::gather(host.as_ref(), &filter, args.config_dir.as_deref())?;
        Ok(Outcome {
            changed: false,
            msg: format!(
                "{} PCI device(s), {} assignable",
                facts.devices.len(),
                facts.assignable.len()
            ),
            actions: Vec::new(),
            diff: Vec::new(),
            warnings: Vec::new(),
            facts: Facts {
                ansible_facts: AnsibleFacts { xen_pci: facts },
            },
        })
    }
}
