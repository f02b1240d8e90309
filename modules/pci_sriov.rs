//! pci_sriov: the SR-IOV virtual functions of a physical function, now and
//! at every boot.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::args::bool_lenient;
use crate::bdf::Bdf;
use crate::host::{self, Host, ManagedFile};
use crate::protocol::{Diff, Failure, Mode, Module, Outcome};
use crate::select::{self, DeviceArg, Resolver, Selected, Selection};
use crate::sriov::{self, Plan, SriovRequest};

/// Give an SR-IOV physical function its number of virtual functions.
///
/// Writes the PF's `sriov_numvfs` as the kernel requires: a change from N
/// VFs to M goes through 0 (the kernel refuses a new count while VFs exist),
/// and only the PF's own dom0 driver can make VFs (a PF on pciback or
/// without a driver is refused, saying so). While pciback holds a VF (made
/// assignable, or in a guest) the count cannot change: the PF's driver
/// refuses (`EPERM`), so the module refuses first, naming the VFs to give
/// back. Removing VFs that dom0 uses is refused, with every reason, unless
/// `force`. With
/// `autoprobe`, `sriov_drivers_autoprobe` is written first: whether dom0's
/// drivers take the new VFs. Off, the kernel lets no driver bind the VFs
/// at all, pciback included, until it is on again (`pci_device_can_probe`):
/// to hand VFs to guests, leave it on. With `persistent`, the udev rule
/// `/etc/udev/rules.d/70-xenpci-sriov.rules` gives the PF the same VFs (and
/// autoprobe) at every boot, once its driver is bound; where
/// initramfs-tools builds the initramfs, which carries a copy of the rule,
/// `update-initramfs -u -k all` runs after every change of it. Idempotent; check
/// mode and diff mode are supported; `XENPCI_HOST=FILE` runs it against a
/// simulated dom0.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Args {
    /// The physical function: `[DDDD:]BB:DD.F`, or a selection, among the
    /// SR-IOV physical functions only, that chooses one (`{select: {vendor: "8086", device: "1593"},
    /// count: 1}`, `{select: {netdev: eth2}}`).
    device: DeviceArg<String>,
    /// How many VFs it should have: 0 removes them all; at most its
    /// `sriov_totalvfs`.
    numvfs: u16,
    /// Whether drivers may probe the PF's VFs (`sriov_drivers_autoprobe`):
    /// off, no driver binds them, pciback included (so no VF can be made
    /// assignable). Unset: as it is now.
    #[serde(default)]
    autoprobe: Option<bool>,
    /// Also at every boot: the PF's line in the udev rule file is written
    /// (removed with `numvfs: 0`; the file goes with its last line).
    #[serde(default, deserialize_with = "bool_lenient")]
    persistent: bool,
    /// Remove VFs even when dom0 uses one (an interface up, an address).
    /// VFs on pciback are never removed: the kernel refuses.
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
}

/// One VF in the result.
#[derive(Debug, Serialize, JsonSchema)]
struct VfResult {
    /// Its address.
    bdf: Bdf,
    /// Its driver (`null`: none, or not known yet in check mode).
    driver: Option<String>,
}

/// The module's own keys of the result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Facts {
    /// The physical function.
    pf: Bdf,
    /// The most VFs it can have (`sriov_totalvfs`).
    total_vfs: u16,
    /// Its VFs before the run.
    numvfs_before: u16,
    /// Its VFs after the run (in check mode: as planned).
    numvfs: u16,
    /// The VFs after the run, in BDF order (in check mode: where the
    /// capability will place them).
    vfs: Vec<VfResult>,
    /// `sriov_drivers_autoprobe` after the run.
    autoprobe: bool,
    /// The VFs the udev rule gives it at boot (`null`: no rule).
    boot_numvfs: Option<u16>,
    /// With a selection as `device`: what it chose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    selected: Vec<Selected>,
}

/// The module.
pub struct PciSriov;

impl Module for PciSriov {
    const NAME: &'static str = "pci_sriov";
    const ARGS_SCHEMA: &'static str = include_str!("../schemas/pci_sriov.args.json");
    const RESULT_SCHEMA: &'static str = include_str!("../schemas/pci_sriov.result.json");
    type Args = Args;
    type Facts = Facts;

    fn run(args: Args, mode: &Mode) -> Result<Outcome<Facts>, Failure> {
        if let DeviceArg::Given(text) = &args.device {
            check_bdf(text)?;
        }
        let mut host = host::open()?;
        if !mode.check {
            host.lock_for_changes()?;
        }
        let (pf, selected) = physical_function(host.as_ref(), &args)?;
        let req = SriovRequest {
            pf,
            num_vfs: args.numvfs,
            autoprobe: args.autoprobe,
            persistent: args.persistent,
            force: args.force,
        };
        let plan = sriov::plan(host.as_ref(), &req)?;
        let actions = if mode.check || !plan.changed() {
            plan.steps.iter().map(ToString::to_string).collect()
        } else {
            host::apply_and_commit(host.as_mut(), |h| sriov::apply(h, &plan))?
        };
        let vfs = vf_results(host.as_ref(), &plan, mode.check)
            .map_err(|e| e.after(if mode.check { &[] } else { &actions }))?;
        Ok(Outcome {
            changed: plan.changed(),
            msg: summary(&plan, &req),
            diff: diffs(&plan),
            warnings: plan.warnings.clone(),
            actions,
            facts: Facts {
                pf,
                total_vfs: plan.cap.total_vfs,
                numvfs_before: plan.cap.num_vfs,
                numvfs: req.num_vfs,
                vfs,
                autoprobe: plan.autoprobe,
                boot_numvfs: plan.boot_num_vfs,
                selected,
            },
        })
    }
}

/// A BDF given as such, checked before the host is opened.
fn check_bdf(text: &str) -> Result<Bdf, Failure> {
    text.parse::<Bdf>()
        .map_err(|e| Failure::msg(format!("device: {e}")))
}

/// The PF the argument names or selects: a selection must choose one.
fn physical_function(host: &dyn Host, args: &Args) -> Result<(Bdf, Vec<Selected>), Failure> {
    let numvfs = args.numvfs;
    let resolved = select::resolve(
        host,
        std::slice::from_ref(&args.device),
        &Resolver {
            bdf_of: &|t: &String| t.parse().ok(),
            in_place: &|d| d.sriov.is_some_and(|c| c.num_vfs == numvfs),
            make: &|bdf, sel: &Selection| {
                if sel.options != Default::default() {
                    return Err("pci_sriov takes a device, not a guest's spec options".into());
                }
                Ok(bdf.to_string())
            },
            taken: &Default::default(),
            // A selection chooses among the SR-IOV physical functions.
            candidate: &|d| d.sriov.is_some(),
        },
    )
    .map_err(|e| match e {
        select::SelectError::Host(h) => Failure::from(h),
        select::SelectError::NoMatch { select, .. } => Failure::msg(format!(
            "device: no SR-IOV physical function on this host matches select {select}"
        )),
        e => Failure::msg(format!("device{e}")),
    })?;
    match resolved.items.as_slice() {
        [one] => Ok((check_bdf(one)?, resolved.selected)),
        many => Err(Failure::msg(format!(
            "device: the selection chose {} devices ({}{}): a physical function is one \
             device; add count: 1 or more keys",
            many.len(),
            many[..many.len().min(3)].join(", "),
            if many.len() > 3 { ", ..." } else { "" }
        ))
        .with("selected", &resolved.selected)),
    }
}

/// The VFs after the run as the host shows them; in check mode, where the
/// plan places them, with the drivers of those that stay.
fn vf_results(host: &dyn Host, plan: &Plan, check: bool) -> Result<Vec<VfResult>, Failure> {
    let bdfs = if check || !plan.changed() {
        plan.vfs_after.clone()
    } else {
        match host.pci_device(&plan.pf)? {
            Some(d) => d.virtfns,
            None => Vec::new(),
        }
    };
    let count_changes = plan.vfs_before.len() != plan.vfs_after.len();
    let mut out = Vec::with_capacity(bdfs.len());
    for bdf in bdfs {
        let driver = if check && count_changes {
            None
        } else {
            host.pci_device(&bdf)?.and_then(|d| d.driver)
        };
        out.push(VfResult { bdf, driver });
    }
    Ok(out)
}

fn summary(plan: &Plan, req: &SriovRequest) -> String {
    let pf = plan.pf;
    let now = if plan.cap.num_vfs == req.num_vfs {
        format!("{pf} has {} VF(s)", req.num_vfs)
    } else {
        format!("{pf}: {} VF(s) to {}", plan.cap.num_vfs, req.num_vfs)
    };
    match plan.boot_num_vfs {
        Some(n) => format!("{now}; {n} at boot"),
        None => now,
    }
}

/// The PF's VFs before and after, and the rule file when it changes.
fn diffs(plan: &Plan) -> Vec<Diff> {
    let side = |vfs: &[Bdf], autoprobe: bool| -> String {
        let list: Vec<String> = vfs.iter().map(Bdf::to_string).collect();
        format!(
            "{} sriov_numvfs {} sriov_drivers_autoprobe {}\n{}",
            plan.pf,
            vfs.len(),
            u8::from(autoprobe),
            list.iter().map(|v| format!("{v}\n")).collect::<String>()
        )
    };
    let mut out = vec![Diff {
        before_header: "SR-IOV virtual functions".into(),
        after_header: "SR-IOV virtual functions".into(),
        before: side(&plan.vfs_before, plan.cap.drivers_autoprobe),
        after: side(&plan.vfs_after, plan.autoprobe),
    }];
    if plan.rule_before != plan.rule_after {
        let path = ManagedFile::SriovRule.path().to_string();
        out.push(Diff {
            before_header: path.clone(),
            after_header: path,
            before: plan.rule_before.clone().unwrap_or_default(),
            after: plan.rule_after.clone().unwrap_or_default(),
        });
    }
    out
}
