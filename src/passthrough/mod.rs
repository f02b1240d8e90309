//! A whole host's pass-through as one plan: which guest holds which device.
//!
//! Built on the other engines, never beside them: [`assignable`] makes the
//! listed devices assignable (behind the dom0 guard) and gives unlisted ones
//! back, [`attach`] moves devices in and out of running guests, [`domcfg`]
//! writes each guest's config. What this engine adds is the order the host
//! needs and the knowledge that ties the steps together: an attach planned
//! here knows that an earlier step makes its device assignable or frees it
//! from another guest ([`attach::AttachRequest::ready`]), a give-back knows
//! an earlier step detaches its device ([`AssignRequest::detached`]), so the
//! preview is the run. [`apply`] runs the plan and, when a step fails, undoes
//! the steps already done, in reverse.

mod apply;

pub use apply::{apply, Applied, Failed};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::assignable::{self, AssignError, AssignRequest, AssignState, Method};
use crate::attach::{self, AttachError, AttachRequest, AttachState, GuestDevice};
use crate::bdf::{Bdf, BdfPattern};
use crate::domcfg::{self, DomCfgError, EditSpec, HostDevices, ListState, PciRequest};
use crate::host::{Domain, Host, HostError, PCIBACK};
use crate::spec::PciSpec;

/// What happens to devices on pciback that no guest lists.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unlisted {
    /// Left as they are.
    #[default]
    Keep,
    /// Detached from the guests listed here and given back to their dom0
    /// drivers (a device an unlisted guest holds stays with it).
    GiveBack,
}

/// One guest of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRequest {
    /// Its name (as `xl list` shows it).
    pub name: String,
    /// Exactly the devices it should hold.
    pub devices: Vec<PciSpec>,
    /// Its config file, whose `pci` list becomes exactly these devices.
    pub config: Option<PathBuf>,
}

/// The checked request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The guests, each with exactly the devices it should hold.
    pub guests: Vec<GuestRequest>,
    /// Keep the listed devices on pciback across reboots.
    pub persistent: bool,
    /// What happens to devices on pciback that no guest lists.
    pub unlisted: Unlisted,
    /// Override the dom0 guard; detach with `-f`.
    pub force: bool,
    /// Check mode: plan only, take no lock.
    pub check: bool,
    /// Back up each config file before it changes.
    pub backup: bool,
}

/// Why a request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// A request that cannot work as given.
    #[error("{0}")]
    Invalid(String),
    /// pciback refused, or the guard did.
    #[error(transparent)]
    Assign(#[from] AssignError),
    /// A guest refused, or xl did.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A config file cannot be edited.
    #[error(transparent)]
    Config(#[from] DomCfgError),
    /// The host refused a step.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// One guest's part of the plan.
#[derive(Debug)]
pub struct GuestPlan {
    /// Its name.
    pub name: String,
    /// The running domain, if it runs.
    pub domain: Option<Domain>,
    /// What it holds now.
    pub before: Vec<GuestDevice>,
    /// The devices it should hold, each with its host device.
    pub wanted: Vec<(Bdf, PciSpec)>,
    /// Its config edit, read and planned (locked unless in check mode).
    pub config: Option<domcfg::PreparedEdit>,
}

/// The plan, stage by stage in the order the host needs.
#[derive(Debug)]
pub struct Plan {
    /// Each guest of the request.
    pub guests: Vec<GuestPlan>,
    /// Make the listed devices assignable (and, with `persistent`, the boot
    /// files); `None` when there is nothing to make assignable.
    pub assign: Option<assignable::Plan>,
    /// Detach from running guests what they should no longer hold.
    pub detaches: Vec<attach::Plan>,
    /// Attach to running guests what they lack.
    pub attaches: Vec<attach::Plan>,
    /// Give unlisted devices back to dom0 (`unlisted: give_back`).
    pub give_back: Option<assignable::Plan>,
    /// Where running guests, their configs and the request disagree.
    pub drift: Vec<String>,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether anything changes.
    pub fn changed(&self) -> bool {
        self.assign.as_ref().is_some_and(assignable::Plan::changed)
            || !self.detaches.is_empty()
            || !self.attaches.is_empty()
            || self
                .give_back
                .as_ref()
                .is_some_and(assignable::Plan::changed)
            || self
                .guests
                .iter()
                .any(|g| g.config.as_ref().is_some_and(|c| c.plan.changed()))
    }

    /// The steps in words, in order.
    pub fn actions(&self, write: &domcfg::WriteSpec<'_>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.assign {
            out.extend(assign_actions(p));
        }
        for p in self.detaches.iter().chain(&self.attaches) {
            out.extend(p.commands.iter().map(|c| format!("xl {}", c.join(" "))));
        }
        for g in &self.guests {
            if let Some(c) = &g.config {
                out.extend(c.actions(write));
            }
        }
        if let Some(p) = &self.give_back {
            out.extend(assign_actions(p));
        }
        out
    }
}

fn assign_actions(p: &assignable::Plan) -> impl Iterator<Item = String> + '_ {
    let devices = p
        .devices
        .iter()
        .flat_map(|d| d.steps.iter().map(|s| s.to_string()));
    devices.chain(p.boot.steps.iter().map(|s| s.to_string()))
}

/// Plans `req` on `host`: every guest, device and file is checked before
/// anything changes, so a refused request changes nothing.
pub fn plan(host: &mut dyn Host, req: &Request) -> Result<Plan, PassthroughError> {
    let domains = host.domains()?;
    let mut guests = Vec::new();
    let mut owner: BTreeMap<Bdf, String> = BTreeMap::new();
    for g in &req.guests {
        guests.push(plan_guest(host, req, g, &domains, &mut owner)?);
    }
    let held = holdings(host, &domains, &guests)?;
    let listed: BTreeSet<&str> = guests.iter().map(|g| g.name.as_str()).collect();
    let mut detaches = Vec::new();
    let mut detached = Vec::new();
    for (domain, devices) in &held {
        let lose: Vec<&GuestDevice> = devices
            .iter()
            .filter(|d| match owner.get(&d.bdf) {
                Some(o) => o != &domain.name,
                None => listed.contains(domain.name.as_str()),
            })
            .collect();
        if lose.is_empty() {
            continue;
        }
        detached.extend(lose.iter().map(|d| d.bdf));
        let areq = AttachRequest {
            domain: domain.domid.to_string(),
            devices: lose.iter().map(|d| bdf_spec(d.bdf)).collect(),
            state: AttachState::Absent,
            force: req.force,
            check: req.check,
            ready: Vec::new(),
        };
        detaches.push(attach::plan(host, &areq)?);
    }
    let given_back = give_back_set(host, req, &owner, &held, &listed)?;
    let mut warnings = Vec::new();
    let assign = plan_assign(host, req, &owner, &given_back)?;
    let ready: Vec<Bdf> = owner.keys().copied().collect();
    let mut attaches = Vec::new();
    for g in &guests {
        let Some(domain) = &g.domain else { continue };
        let lacking: Vec<PciSpec> = g
            .wanted
            .iter()
            .filter(|(b, _)| !g.before.iter().any(|d| d.bdf == *b))
            .map(|(_, s)| s.clone())
            .collect();
        let areq = AttachRequest {
            domain: domain.domid.to_string(),
            devices: g.wanted.iter().map(|(_, s)| s.clone()).collect(),
            state: AttachState::Present,
            force: req.force,
            check: req.check,
            ready: ready.clone(),
        };
        // Planned over every wanted device, so that options that differ from
        // what is attached are warned about; only the lacking ones attach.
        let p = attach::plan(host, &areq)?;
        warnings.extend(p.warnings.iter().cloned());
        if !lacking.is_empty() {
            attaches.push(p);
        }
    }
    let give_back = if given_back.is_empty() {
        None
    } else {
        let areq = AssignRequest {
            devices: given_back.iter().map(|b| pattern(*b)).collect(),
            state: AssignState::Absent,
            rebind: true,
            method: Method::Auto,
            detached,
            ..AssignRequest::default()
        };
        Some(assignable::plan(host, &areq)?)
    };
    for p in assign.iter().chain(&give_back) {
        warnings.extend(p.warnings.iter().cloned());
    }
    let drift = drift(&guests, &owner);
    Ok(Plan {
        guests,
        assign,
        detaches,
        attaches,
        give_back,
        drift,
        warnings,
    })
}

/// One guest: is it running, which host device each of its specs names
/// (each device listed for one guest only), and its config's edit.
fn plan_guest(
    host: &mut dyn Host,
    req: &Request,
    g: &GuestRequest,
    domains: &[Domain],
    owner: &mut BTreeMap<Bdf, String>,
) -> Result<GuestPlan, PassthroughError> {
    attach::check_domain(&g.name)?;
    let domain = domains.iter().find(|d| d.name == g.name).cloned();
    if domain.as_ref().is_some_and(|d| d.domid == 0) {
        return Err(PassthroughError::Invalid(format!(
            "{}: dom0 is not a guest; devices go back to dom0 with unlisted: give_back",
            g.name
        )));
    }
    if domain.is_none() && g.config.is_none() {
        let running: Vec<&str> = domains
            .iter()
            .filter(|d| d.domid != 0)
            .map(|d| d.name.as_str())
            .collect();
        return Err(PassthroughError::Invalid(format!(
            "guest {} is not running and has no config: give its config, or start it (running: {})",
            g.name,
            running.join(", ")
        )));
    }
    let mut wanted = Vec::new();
    for spec in &g.devices {
        for bdf in attach::host_functions(host, spec)? {
            if let Some(other) = owner.insert(bdf, g.name.clone()) {
                let whom = if other == g.name {
                    format!("twice for {other}")
                } else {
                    format!("for both {other} and {}", g.name)
                };
                return Err(PassthroughError::Invalid(format!("{bdf} is listed {whom}")));
            }
            wanted.push((bdf, spec.clone()));
        }
    }
    let before = match &domain {
        Some(d) => attach::guest_devices(host, d)?,
        None => Vec::new(),
    };
    let config = match &g.config {
        Some(path) => {
            let preq = PciRequest {
                devices: g.devices.clone(),
                state: ListState::Exact,
                ..PciRequest::default()
            };
            let how = EditSpec {
                check: req.check,
                ..EditSpec::default()
            };
            Some(domcfg::prepare(path, &preq, &how, &HostDevices::of(host))?)
        }
        None => None,
    };
    Ok(GuestPlan {
        name: g.name.clone(),
        domain,
        before,
        wanted,
        config,
    })
}

/// What every running guest holds (dom0 aside), the listed ones as read.
fn holdings(
    host: &mut dyn Host,
    domains: &[Domain],
    guests: &[GuestPlan],
) -> Result<Vec<(Domain, Vec<GuestDevice>)>, PassthroughError> {
    let mut out = Vec::new();
    for d in domains.iter().filter(|d| d.domid != 0) {
        let devices = match guests.iter().find(|g| g.domain.as_ref() == Some(d)) {
            Some(g) => g.before.clone(),
            None => attach::guest_devices(host, d)?,
        };
        out.push((d.clone(), devices));
    }
    Ok(out)
}

/// With `unlisted: give_back`: the devices on pciback that no guest lists
/// and that no unlisted guest keeps.
fn give_back_set(
    host: &dyn Host,
    req: &Request,
    owner: &BTreeMap<Bdf, String>,
    held: &[(Domain, Vec<GuestDevice>)],
    listed: &BTreeSet<&str>,
) -> Result<Vec<Bdf>, PassthroughError> {
    if req.unlisted == Unlisted::Keep {
        return Ok(Vec::new());
    }
    let kept: BTreeSet<Bdf> = held
        .iter()
        .filter(|(d, _)| !listed.contains(d.name.as_str()))
        .flat_map(|(_, devs)| devs.iter().map(|d| d.bdf))
        .collect();
    Ok(host
        .pci_devices()?
        .into_iter()
        .filter(|d| d.driver.as_deref() == Some(PCIBACK))
        .map(|d| d.bdf)
        .filter(|b| !owner.contains_key(b) && !kept.contains(b))
        .collect())
}

/// The listed devices made assignable; with `persistent`, the boot files
/// hide them and no longer hide the devices given back.
fn plan_assign(
    host: &dyn Host,
    req: &Request,
    owner: &BTreeMap<Bdf, String>,
    given_back: &[Bdf],
) -> Result<Option<assignable::Plan>, PassthroughError> {
    let unhide = if req.persistent {
        given_back.to_vec()
    } else {
        Vec::new()
    };
    if owner.is_empty() && unhide.is_empty() {
        return Ok(None);
    }
    let areq = AssignRequest {
        devices: owner.keys().map(|b| pattern(*b)).collect(),
        state: AssignState::Present,
        rebind: true,
        persistent: req.persistent,
        force: req.force,
        method: Method::Auto,
        unhide,
        ..AssignRequest::default()
    };
    Ok(Some(assignable::plan(host, &areq)?))
}

/// Where a running guest and its config disagree, and where either differs
/// from the request: one sentence each.
fn drift(guests: &[GuestPlan], owner: &BTreeMap<Bdf, String>) -> Vec<String> {
    let mut out = Vec::new();
    for g in guests {
        let listed = g
            .config
            .as_ref()
            .and_then(|c| domcfg::config_bdfs(&c.before, &c.target));
        if let (Some(_), Some(listed), Some(c)) = (&g.domain, &listed, &g.config) {
            let held: Vec<Bdf> = g.before.iter().map(|d| d.bdf).collect();
            out.extend(domcfg::config_drift(&g.name, &c.target, &held, listed));
        }
        if g.domain.is_some() {
            for d in g
                .before
                .iter()
                .filter(|d| owner.get(&d.bdf) != Some(&g.name))
            {
                out.push(format!(
                    "{}: holds {}, which the request does not give it",
                    g.name, d.bdf
                ));
            }
        }
        for (b, _) in g
            .wanted
            .iter()
            .filter(|(b, _)| !g.before.iter().any(|d| d.bdf == *b))
        {
            if g.domain.is_some() {
                out.push(format!("{}: lacks {b}, which the request gives it", g.name));
            }
        }
    }
    out
}

fn pattern(b: Bdf) -> BdfPattern {
    BdfPattern::from(b)
}

fn bdf_spec(b: Bdf) -> PciSpec {
    PciSpec::new(crate::spec::Device::Bdf(pattern(b)))
}
