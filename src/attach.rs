//! Hot-plugging devices into running guests, and out.
//!
//! [`plan`] reads what a guest holds (`xl pci-list`, parsed by
//! [`parse_pci_list`]) and which devices are assignable, and returns the
//! `xl pci-attach`/`pci-detach` commands that bring the guest to the
//! request: only what is missing is attached, only what is there is
//! detached. Every refusal xl would make is found first, with a message
//! that says what to do. [`apply`] runs the commands.
//!
//! ```
//! use xenpci::attach::parse_pci_list;
//! let rows = parse_pci_list("Vdev Device\n00.0 0000:00:05.0\n").unwrap();
//! assert_eq!(rows[0].bdf.to_string(), "0000:00:05.0");
//! assert_eq!(rows[0].vslot, 0);
//! ```

use serde::{Deserialize, Serialize};

use crate::bdf::Bdf;
use crate::host::{xs_pci_path, CommandOutput, Domain, Host, HostError, PCIBACK};
use crate::spec::{Device, PciSpec};

/// Attached or not.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AttachState {
    /// Attached to the guest.
    #[default]
    Present,
    /// Not attached to the guest.
    Absent,
}

/// One row of `xl pci-list`: a device a guest holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GuestDevice {
    /// The guest's virtual slot.
    pub vslot: u8,
    /// The guest's virtual function.
    pub vfunc: u8,
    /// The host device.
    pub bdf: Bdf,
}

/// The checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// The guest: a name or a domid, already checked by [`check_domain`].
    pub domain: String,
    /// The devices.
    pub devices: Vec<PciSpec>,
    /// Attached or not.
    pub state: AttachState,
    /// Detach with `-f` (libxl's destroy: no guest cooperation).
    pub force: bool,
    /// Check mode: a device not assignable yet is a warning, not a failure.
    pub check: bool,
    /// Devices an earlier step of the same plan makes assignable (or frees
    /// from another guest): not checked against the host as it is now.
    pub ready: Vec<Bdf>,
}

/// The plan: the guest, what it holds, and the xl commands to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The guest.
    pub domain: Domain,
    /// What it holds now.
    pub before: Vec<GuestDevice>,
    /// `xl` argument lists, in order.
    pub commands: Vec<Vec<String>>,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

/// Why a request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No device has this assignable name.
    #[error("no assignable device is named {0:?} (see pci_assignable's name)")]
    UnknownName(String),
    /// The domain is not running.
    #[error("domain {domain} is not running (running: {running})")]
    NoDomain {
        /// As given.
        domain: String,
        /// The running guests.
        running: String,
    },
    /// A device that cannot be attached as it is.
    #[error("{bdf} is not assignable: {why}; make it assignable first (pci_assignable with state: present), or set seize=1 in its spec")]
    NotAssignable {
        /// The device.
        bdf: Bdf,
        /// Its state.
        why: String,
    },
    /// xl failed.
    #[error("`{}` failed with rc {}: {}{}", .out.command_line(), .out.rc, .out.error_line(), hint(&.out.stderr))]
    Xl {
        /// What xl did.
        out: Box<CommandOutput>,
        /// The commands that had succeeded before.
        done: Vec<String>,
    },
    /// The host refused a step.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// What to do about xl's less obvious failures.
fn hint(stderr: &str) -> &'static str {
    if stderr.contains("Operation not supported") || stderr.contains("no IOMMU?") {
        " (the guest was created without a pci list and without passthrough = \"enabled\", \
         so Xen cannot hot-plug devices into it: set passthrough: enabled with \
         domain_pci_config and restart the guest; without an IOMMU, pass-through is not possible at all)"
    } else {
        ""
    }
}

/// A domain argument that is safe to hand to xl: a domid, or a name that
/// xl cannot take for an option and that holds no blank or control byte.
pub fn check_domain(domain: &str) -> Result<(), AttachError> {
    let bad = domain.is_empty()
        || domain.starts_with('-')
        || domain.len() > 64
        || domain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/');
    if bad {
        return Err(AttachError::Invalid(format!(
            "domain {domain:?}: give a domain name (no leading '-', blanks, '/' or control characters) or a domid"
        )));
    }
    Ok(())
}

/// Parses `xl pci-list` (4.17): a `Vdev Device` header, then
/// `%02x.%01x %04x:%02x:%02x.%01x` rows; nothing at all when the guest holds
/// no device.
pub fn parse_pci_list(text: &str) -> Result<Vec<GuestDevice>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.split_whitespace().eq(["Vdev", "Device"]) {
            continue;
        }
        let bad = || format!("unexpected line in xl pci-list output: {line:?}");
        let (vdev, dev) = line.split_once(' ').ok_or_else(bad)?;
        let (slot, func) = vdev.split_once('.').ok_or_else(bad)?;
        out.push(GuestDevice {
            vslot: u8::from_str_radix(slot, 16).map_err(|_| bad())?,
            vfunc: u8::from_str_radix(func, 16).map_err(|_| bad())?,
            bdf: Bdf::parse(dev.trim()).map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// What `domain` holds, from `xl pci-list`.
pub fn guest_devices(
    host: &mut dyn Host,
    domain: &Domain,
) -> Result<Vec<GuestDevice>, AttachError> {
    let args = vec!["pci-list".to_string(), domain.domid.to_string()];
    let out = host.xl(&args)?;
    if out.rc != 0 {
        return Err(AttachError::Xl {
            out: Box::new(out),
            done: Vec::new(),
        });
    }
    parse_pci_list(&out.stdout).map_err(AttachError::Invalid)
}

/// Finds the running guest named or numbered `domain`.
pub fn find_domain(host: &dyn Host, domain: &str) -> Result<Domain, AttachError> {
    let all = host.domains()?;
    let found = all
        .iter()
        .find(|d| d.name == domain || d.domid.to_string() == domain)
        .cloned();
    match found {
        Some(d) if d.domid == 0 => Err(AttachError::Invalid(
            "domain 0 is dom0 itself: devices for dom0 are not hot-plugged (use pci_assignable state: absent)".into(),
        )),
        Some(d) => Ok(d),
        None => Err(AttachError::NoDomain {
            domain: domain.to_string(),
            running: all.iter().filter(|d| d.domid != 0).map(|d| d.name.clone()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Plans `req`: which devices to attach and detach.
pub fn plan(host: &mut dyn Host, req: &AttachRequest) -> Result<Plan, AttachError> {
    let domain = find_domain(host, &req.domain)?;
    let before = guest_devices(host, &domain)?;
    let mut commands = Vec::new();
    let mut warnings = Vec::new();
    let mut guest_checked = false;
    for spec in &req.devices {
        let found = match (req.state, &spec.device) {
            // Detaching `BB:DD.*` detaches every function the guest holds
            // (libxl's remove walks them all).
            (AttachState::Absent, Device::Bdf(p)) if p.bdf().is_none() => Ok(before
                .iter()
                .filter(|g| p.matches(&g.bdf))
                .map(|g| g.bdf)
                .collect()),
            _ => host_functions(host, spec),
        };
        let bdfs = match found {
            // As for a device not assignable yet: an earlier task of the
            // play (pci_assignable with this name) may only have planned it.
            Err(AttachError::UnknownName(name))
                if req.check && req.state == AttachState::Present =>
            {
                check_guest_can_take(host, &domain)?;
                warnings.push(format!(
                    "no assignable device is named {name:?} yet; the attach will fail unless an earlier task names one"
                ));
                let dom = domain.domid.to_string();
                commands.push(vec!["pci-attach".into(), dom, spec.to_string()]);
                continue;
            }
            other => other?,
        };
        let held: Vec<&GuestDevice> = before.iter().filter(|g| bdfs.contains(&g.bdf)).collect();
        let dom = domain.domid.to_string();
        match req.state {
            AttachState::Present if held.len() == bdfs.len() => {
                for g in held {
                    warnings.extend(differences(host, domain.domid, g, spec)?);
                }
            }
            AttachState::Present => {
                if !guest_checked {
                    check_guest_can_take(host, &domain)?;
                    guest_checked = true;
                }
                for b in bdfs.iter().filter(|b| !req.ready.contains(b)) {
                    let ready = if spec.seize == Some(true) {
                        check_seizable(host, b)
                    } else {
                        check_assignable(host, b)
                    };
                    match ready {
                        // In check mode an earlier task of the same play may
                        // only have planned to make the device assignable (or
                        // to detach it elsewhere): say so, and plan on.
                        Err(AttachError::NotAssignable { bdf, why }) if req.check => warnings.push(format!(
                            "{bdf} is not assignable yet ({why}); the attach will fail unless an earlier task makes it so"
                        )),
                        other => other?,
                    }
                }
                commands.push(vec!["pci-attach".into(), dom, spec.to_string()]);
            }
            AttachState::Absent => {
                for g in held {
                    let mut args = vec!["pci-detach".to_string()];
                    if req.force {
                        args.push("-f".into());
                    }
                    args.extend([dom.clone(), g.bdf.to_string()]);
                    commands.push(args);
                }
            }
        }
    }
    Ok(Plan {
        domain,
        before,
        commands,
        warnings,
    })
}

/// What Xen refuses for any device hot-plugged into `domain`, found before
/// xl runs so that check mode fails where the run would: without an IOMMU,
/// or for a guest created with `passthrough` disabled, `xc_assign_device`
/// fails with `EOPNOTSUPP` (`iommu_do_domctl`: `!is_iommu_enabled(d)`).
/// No earlier task of a play changes either: the first needs a reboot of
/// the host, the second a new guest.
fn check_guest_can_take(host: &dyn Host, domain: &Domain) -> Result<(), AttachError> {
    if host.iommu_enabled()? == Some(false) {
        return Err(AttachError::Invalid(
            "Xen runs without an IOMMU, so no device can be passed through to a guest: \
             enable VT-d or AMD-Vi in the firmware (and leave Xen's iommu option on), then reboot"
                .into(),
        ));
    }
    if host.domain_passthrough(domain.domid)?.as_deref() == Some("disabled") {
        return Err(AttachError::Invalid(format!(
            "{} was created with passthrough disabled (its config had no pci list and no \
             passthrough = \"enabled\"), so Xen cannot hot-plug devices into it: set \
             passthrough: enabled with domain_pci_config and restart the guest",
            domain.name
        )));
    }
    Ok(())
}

/// The host functions a spec names (`name=` looked up in libxl's records,
/// `*` expanded to the functions present).
pub fn host_functions(host: &dyn Host, spec: &PciSpec) -> Result<Vec<Bdf>, AttachError> {
    match &spec.device {
        Device::Name(name) => {
            for node in host.xs_directory("/libxl/pci")? {
                let Ok(bdf) = Bdf::from_xenstore_form(&node) else {
                    continue;
                };
                if host.xs_read(&xs_pci_path(&bdf, Some("name")))?.as_deref() == Some(name.as_str())
                {
                    return Ok(vec![bdf]);
                }
            }
            Err(AttachError::UnknownName(name.clone()))
        }
        Device::Bdf(p) => match p.bdf() {
            Some(b) => Ok(vec![b]),
            // libxl 4.17 hot-plugs only the highest function of `BB:DD.*`
            // (while detach walks them all): refuse rather than half-attach.
            None => Err(AttachError::Invalid(format!(
                "{p}: xl 4.17 hot-plugs only one function of a multi-function spec; \
                 list the functions one by one (a config file may keep BB:DD.* for guest creation)"
            ))),
        },
    }
}

/// How an attached device differs from the request: its slot, and the
/// options libxl recorded in the backend (`opts-N`), as warnings.
fn differences(
    host: &dyn Host,
    domid: u32,
    g: &GuestDevice,
    spec: &PciSpec,
) -> Result<Vec<String>, HostError> {
    let mut out = Vec::new();
    if let Some(want) = spec.vslot.filter(|w| *w != g.vslot) {
        out.push(format!(
            "{} is attached at vslot {:02x}, not {want:02x} as asked; detach and attach it to change that",
            g.bdf, g.vslot
        ));
    }
    let opts = backend_opts(host, domid, &g.bdf)?;
    let wanted = [
        ("permissive", spec.permissive),
        ("msitranslate", spec.msitranslate),
        ("power_mgmt", spec.power_mgmt),
    ];
    for (key, want) in wanted {
        let Some(want) = want else { continue };
        let have = opts.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if have.is_some_and(|v| (v != "0") != want) {
            out.push(format!(
                "{} is attached with {key}={}, not {key}={} as asked; detach and attach it to change that",
                g.bdf,
                have.unwrap_or("?"),
                u8::from(want)
            ));
        }
    }
    Ok(out)
}

/// The options libxl wrote for `bdf` in the guest's pci backend
/// (`/local/domain/0/backend/pci/DOMID/0/opts-N`), as key/value pairs.
fn backend_opts(
    host: &dyn Host,
    domid: u32,
    bdf: &Bdf,
) -> Result<Vec<(String, String)>, HostError> {
    let be = format!("/local/domain/0/backend/pci/{domid}/0");
    for node in host.xs_directory(&be)? {
        let Some(n) = node.strip_prefix("dev-") else {
            continue;
        };
        let dev = host.xs_read(&format!("{be}/{node}"))?;
        if dev.as_deref().and_then(|d| Bdf::parse(d).ok()) != Some(*bdf) {
            continue;
        }
        let opts = host.xs_read(&format!("{be}/opts-{n}"))?.unwrap_or_default();
        return Ok(opts
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect());
    }
    Ok(Vec::new())
}

/// `seize=1` makes libxl take a device from its dom0 driver: the dom0 guard
/// of pci_assignable applies, without a way around it here.
fn check_seizable(host: &dyn Host, bdf: &Bdf) -> Result<(), AttachError> {
    let dev = host
        .pci_device(bdf)?
        .ok_or_else(|| AttachError::Invalid(format!("no PCI device {bdf} on this host")))?;
    if dev.driver.as_deref() == Some(PCIBACK) {
        return check_assignable(host, bdf);
    }
    let all = host.pci_devices()?;
    let mut reasons = crate::guard::refusals(&dev, &host.dom0_use(bdf)?);
    reasons.extend(crate::guard::Fates::new(&all).refusal(&dev, &[*bdf]));
    if reasons.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
    Err(AttachError::Invalid(format!(
        "refusing to seize {bdf}, which dom0 uses: {}; if you mean it, use pci_assignable with force: true first",
        why.join("; ")
    )))
}

/// libxl's `libxl_pci_assignable`: bound to pciback and held by no guest.
fn check_assignable(host: &dyn Host, bdf: &Bdf) -> Result<(), AttachError> {
    let dev = host
        .pci_device(bdf)?
        .ok_or_else(|| AttachError::Invalid(format!("no PCI device {bdf} on this host")))?;
    let why = match dev.driver.as_deref() {
        Some(PCIBACK) => match host.xs_read(&xs_pci_path(bdf, Some("domid")))? {
            Some(d) => format!("domain {d} holds it"),
            None => return Ok(()),
        },
        Some(d) => format!("it is bound to {d}"),
        None => "it has no driver (not on pciback)".into(),
    };
    Err(AttachError::NotAssignable { bdf: *bdf, why })
}

/// Runs the plan's commands, stopping at the first failure. Returns each
/// command line run.
pub fn apply(host: &mut dyn Host, plan: &Plan) -> Result<Vec<String>, AttachError> {
    let mut done = Vec::new();
    for args in &plan.commands {
        let out = host.xl(args)?;
        // xl prints libxl errors with rc 0 (the kernel's reset warning):
        // only the exit code says failure.
        if out.rc != 0 {
            return Err(AttachError::Xl {
                out: Box::new(out),
                done,
            });
        }
        done.push(format!("xl {}", args.join(" ")));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_list_rows() {
        assert_eq!(parse_pci_list("").unwrap(), vec![]);
        let rows = parse_pci_list("Vdev Device\n00.0 0000:00:05.0\n1f.7 0001:ff:1f.7\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].vslot, rows[1].vfunc), (0x1f, 7));
        assert!(parse_pci_list("Vdev Device\ngarbage\n").is_err());
    }

    #[test]
    fn domain_names_that_reach_xl() {
        for bad in ["-f", "", "0; reboot", "$(id)", "a b", "a/b", "x\n"] {
            let ok = check_domain(bad).is_ok();
            // `$(id)` has no blank: it passes as one plain argument, never
            // through a shell.
            assert_eq!(ok, bad == "$(id)", "{bad:?}");
        }
        assert!(check_domain("vm1").is_ok());
        assert!(check_domain("7").is_ok());
    }
}
