//! Running a [`Plan`], all or nothing: each stage that changes the host
//! leaves an [`Undo`]; when a later stage fails, the undos run in reverse
//! (a detach re-attached, a bind given back to its driver, a config
//! restored to its old bytes, the boot files as they were), and the failure
//! says what failed, what was undone and what could not be.

use std::path::PathBuf;

use crate::assignable::{self, AssignRequest, AssignState, BootFile, BootStep, Method};
use crate::attach::{self, GuestDevice};
use crate::bdf::Bdf;
use crate::domcfg::{FileEdit, WriteSpec};
use crate::fileio::{self, WriteOptions};
use crate::host::{Domain, Host};

use super::{pattern, PassthroughError, Plan};

/// What a run did.
#[derive(Debug)]
pub struct Applied {
    /// The steps taken, in words.
    pub actions: Vec<String>,
    /// The config files written (or left as they were), per guest in
    /// request order.
    pub edits: Vec<Option<FileEdit>>,
    /// Things a person should know.
    pub warnings: Vec<String>,
}

/// A run that failed: why, what it had done, and how that was undone.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: PassthroughError,
    /// The steps taken before the failure, in words.
    pub done: Vec<String>,
    /// The steps that undid them, in words.
    pub undone: Vec<String>,
    /// What could not be undone, one sentence each.
    pub not_undone: Vec<String>,
}

impl From<crate::host::HostError> for Box<Failed> {
    /// The snapshot of a simulated dom0 that cannot be saved: nothing of
    /// the run is kept, so nothing was done.
    fn from(e: crate::host::HostError) -> Self {
        Box::new(Failed {
            error: e.into(),
            done: Vec::new(),
            undone: Vec::new(),
            not_undone: Vec::new(),
        })
    }
}

/// One way back from a stage that ran.
#[derive(Debug)]
enum Undo {
    /// Devices made assignable: give them back to their drivers.
    GiveBack(Vec<Bdf>),
    /// Boot files written: put back what they held.
    Boot(Vec<BootFile>, bool),
    /// A device detached from a guest: attach it again at its slot.
    Reattach(Domain, GuestDevice),
    /// A device attached to a guest: detach it.
    Detach(Domain, Bdf),
    /// A config file written: its old bytes.
    Restore(PathBuf, Vec<u8>),
    /// Devices given back to dom0: make them assignable again.
    Take(Vec<Bdf>),
}

/// Runs `plan`: assign, detach, attach, configs, give back. The configs are
/// staged (written beside, validated) before anything changes.
pub fn apply(
    host: &mut dyn Host,
    plan: Plan,
    write: &WriteSpec<'_>,
) -> Result<Applied, Box<Failed>> {
    let mut run = Run {
        done: Vec::new(),
        undo: Vec::new(),
        warnings: Vec::new(),
        stranded: Vec::new(),
    };
    let mut staged = Vec::new();
    for g in &plan.guests {
        let s = match &g.config {
            Some(c) => c.stage(write).map_err(|e| run.fail(host, e.into()))?,
            None => None,
        };
        staged.push(s);
    }
    if let Some(p) = &plan.assign {
        run.assign(host, p)?;
    }
    for p in &plan.detaches {
        run.hotplug(host, p, true)?;
    }
    for p in &plan.attaches {
        run.hotplug(host, p, false)?;
    }
    let mut edits = Vec::new();
    for (g, s) in plan.guests.into_iter().zip(staged) {
        let Some(c) = g.config else {
            edits.push(None);
            continue;
        };
        let (target, before) = (c.target.clone(), c.before.clone());
        let changes = s.is_some();
        match c.finish(s, write) {
            Ok(edit) => {
                if changes {
                    run.done.extend(edit.actions.iter().cloned());
                    run.undo.push(Undo::Restore(target, before));
                }
                edits.push(Some(edit));
            }
            Err(e) => {
                run.done.extend(e.done.iter().cloned());
                if e.replaced {
                    run.undo.push(Undo::Restore(target, before));
                }
                return Err(run.fail(host, e.error.into()));
            }
        }
    }
    if let Some(p) = &plan.give_back {
        run.give_back(host, p)?;
    }
    Ok(Applied {
        actions: run.done,
        edits,
        warnings: run.warnings,
    })
}

struct Run {
    done: Vec<String>,
    undo: Vec<Undo>,
    warnings: Vec<String>,
    /// What a stage's own rollback could not put back.
    stranded: Vec<String>,
}

impl Run {
    fn assign(&mut self, host: &mut dyn Host, p: &assignable::Plan) -> Result<(), Box<Failed>> {
        let moved = |n: usize| -> Vec<Bdf> {
            p.devices[..n]
                .iter()
                .filter(|d| !d.steps.is_empty())
                .map(|d| d.bdf)
                .collect()
        };
        let rebuilds = p.boot.steps.contains(&BootStep::RebuildInitramfs);
        match assignable::apply(host, p) {
            Ok(a) => {
                self.done.extend(a.actions);
                self.warnings.extend(a.warnings);
                self.undo.push(Undo::GiveBack(moved(p.devices.len())));
                if !p.boot.steps.is_empty() {
                    self.undo.push(Undo::Boot(p.boot.files.clone(), rebuilds));
                }
                Ok(())
            }
            Err(f) => {
                // The engine put back the device that failed; those before
                // it are on pciback, and the boot files were written only
                // when every device was.
                self.done.extend(f.actions.iter().cloned());
                self.strand(&f);
                self.undo.push(Undo::GiveBack(moved(f.devices_done)));
                if f.devices_done == p.devices.len() && !p.boot.steps.is_empty() {
                    self.undo.push(Undo::Boot(p.boot.files.clone(), rebuilds));
                }
                Err(self.fail(host, f.error.into()))
            }
        }
    }

    /// Runs a detach (`out`) or attach plan's commands, one undo each.
    fn hotplug(
        &mut self,
        host: &mut dyn Host,
        p: &attach::Plan,
        out: bool,
    ) -> Result<(), Box<Failed>> {
        for args in &p.commands {
            let one = attach::Plan {
                commands: vec![args.clone()],
                ..p.clone()
            };
            attach::apply(host, &one).map_err(|e| self.fail(host, e.into()))?;
            self.done.push(format!("xl {}", args.join(" ")));
            let bdf = args
                .last()
                .and_then(|a| Bdf::parse(a.split([',', '@']).next()?).ok());
            match (out, bdf) {
                (true, Some(b)) => {
                    if let Some(g) = p.before.iter().find(|g| g.bdf == b) {
                        self.undo.push(Undo::Reattach(p.domain.clone(), *g));
                    }
                }
                (false, Some(b)) => self.undo.push(Undo::Detach(p.domain.clone(), b)),
                _ => {}
            }
        }
        Ok(())
    }

    fn give_back(&mut self, host: &mut dyn Host, p: &assignable::Plan) -> Result<(), Box<Failed>> {
        match assignable::apply(host, p) {
            Ok(a) => {
                self.done.extend(a.actions);
                self.warnings.extend(a.warnings);
                Ok(())
            }
            Err(f) => {
                self.done.extend(f.actions.iter().cloned());
                self.strand(&f);
                let given: Vec<Bdf> = p.devices[..f.devices_done].iter().map(|d| d.bdf).collect();
                self.undo.push(Undo::Take(given));
                Err(self.fail(host, f.error.into()))
            }
        }
    }

    fn strand(&mut self, f: &assignable::ApplyFailure) {
        if let Some(b) = f.stranded {
            self.stranded.push(format!(
                "{b}: the step that failed could not be rolled back (see msg)"
            ));
        }
    }

    /// The failure, after undoing every stage done, last first.
    fn fail(&mut self, host: &mut dyn Host, error: PassthroughError) -> Box<Failed> {
        let mut undone = Vec::new();
        let mut not_undone = std::mem::take(&mut self.stranded);
        while let Some(u) = self.undo.pop() {
            if let Err(e) = undo(host, &u, &mut undone) {
                not_undone.push(format!("{}: {e}", describe(&u)));
            }
        }
        Box::new(Failed {
            error,
            done: std::mem::take(&mut self.done),
            undone,
            not_undone,
        })
    }
}

fn describe(u: &Undo) -> String {
    let list = |v: &[Bdf]| v.iter().map(Bdf::to_string).collect::<Vec<_>>().join(", ");
    match u {
        Undo::GiveBack(v) => format!("giving {} back to dom0", list(v)),
        Undo::Boot(..) => "restoring the boot files".into(),
        Undo::Reattach(d, g) => format!("attaching {} to {} again", g.bdf, d.name),
        Undo::Detach(d, b) => format!("detaching {b} from {}", d.name),
        Undo::Restore(p, _) => format!("restoring {}", p.display()),
        Undo::Take(v) => format!("making {} assignable again", list(v)),
    }
}

fn undo(host: &mut dyn Host, u: &Undo, actions: &mut Vec<String>) -> Result<(), String> {
    match u {
        Undo::GiveBack(v) | Undo::Take(v) if v.is_empty() => Ok(()),
        Undo::GiveBack(v) => reassign(host, v, AssignState::Absent, actions),
        Undo::Take(v) => reassign(host, v, AssignState::Present, actions),
        Undo::Boot(files, rebuild) => {
            let mut steps: Vec<BootStep> = files
                .iter()
                .filter(|f| f.before != f.after)
                .map(|f| match &f.before {
                    Some(text) => BootStep::Write(f.file, text.clone()),
                    None => BootStep::Remove(f.file),
                })
                .collect();
            if *rebuild {
                steps.push(BootStep::RebuildInitramfs);
            }
            assignable::boot::apply_boot(host, &steps, actions).map_err(|(e, _)| e.to_string())
        }
        Undo::Reattach(d, g) => {
            let spec = format!("{}@{:02x}", g.bdf, g.vslot);
            xl(
                host,
                d,
                vec!["pci-attach".into(), d.domid.to_string(), spec],
                actions,
            )
        }
        Undo::Detach(d, b) => xl(
            host,
            d,
            vec!["pci-detach".into(), d.domid.to_string(), b.to_string()],
            actions,
        ),
        Undo::Restore(path, bytes) => {
            fileio::atomic_write(path, bytes, &WriteOptions::default())
                .map_err(|e| e.to_string())?;
            actions.push(format!("restore {}", path.display()));
            Ok(())
        }
    }
}

fn reassign(
    host: &mut dyn Host,
    devices: &[Bdf],
    state: AssignState,
    actions: &mut Vec<String>,
) -> Result<(), String> {
    let req = AssignRequest {
        devices: devices.iter().map(|b| pattern(*b)).collect(),
        state,
        rebind: true,
        // These were ours a moment ago: the guard has had its say.
        force: true,
        method: Method::Auto,
        ..AssignRequest::default()
    };
    let plan = assignable::plan(host, &req).map_err(|e| e.to_string())?;
    match assignable::apply(host, &plan) {
        Ok(a) => {
            actions.extend(a.actions);
            Ok(())
        }
        Err(f) => {
            actions.extend(f.actions.iter().cloned());
            Err(f.error.to_string())
        }
    }
}

fn xl(
    host: &mut dyn Host,
    d: &Domain,
    args: Vec<String>,
    actions: &mut Vec<String>,
) -> Result<(), String> {
    let plan = attach::Plan {
        domain: d.clone(),
        before: Vec::new(),
        commands: vec![args],
        warnings: Vec::new(),
    };
    let done = attach::apply(host, &plan).map_err(|e| e.to_string())?;
    actions.extend(done);
    Ok(())
}
