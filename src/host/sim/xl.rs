//! The simulated `xl` command line (Xen 4.17.7's `tools/xl/`): global
//! options and command lookup (`xl.c`, `xl_cmdtable.c`), per-command
//! option parsing with GNU `getopt_long` as `def_getopt` drives it
//! (`xl_utils.c`; both in `xl_cmd.rs`), `find_domain`, and the commands `pci-assignable-add`,
//! `-remove`, `-list`, `pci-attach`, `pci-detach`, `pci-list` (`xl_pci.c`)
//! and plain `list` (`xl_info.c`), printing what they print.
//!
//! A real xl command this file does not simulate is a `HostError::Other`
//! saying so, never a made-up answer.

use std::fmt::Write as _;

use super::libxl::{Level, Libxl, Logger, ERROR_NOTFOUND};
use super::snapshot::Snapshot;
use super::xl_cmd::{getopt, lookup, Cmd, Exit, Run, CMDS};
use crate::bdf::{Bdf, BdfPattern, Func};
use crate::host::{CommandOutput, HostError};
use crate::spec::{PciSpec, SpecError};

/// Runs `xl ARGS` on the simulated host.
pub fn run(s: &mut Snapshot, args: &[String]) -> Result<CommandOutput, HostError> {
    let mut argv = vec!["xl".to_string()];
    argv.extend(args.iter().cloned());
    let mut verbosity = 0;
    let mut dryrun = false;
    let mut rest = args;
    // `getopt(argc, argv, "+vftTN")`: options up to the first non-option.
    while let Some(a) = rest.first() {
        if a == "--" {
            rest = &rest[1..];
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'v' => verbosity += 1,
                'N' => dryrun = true,
                'f' | 't' | 'T' => {}
                _ => {
                    return Ok(done(
                        argv,
                        1,
                        String::new(),
                        "unknown global option\n".to_string(),
                    ))
                }
            }
        }
        rest = &rest[1..];
    }
    let Some((cmd, cmd_args)) = rest.split_first() else {
        return Err(not_simulated("xl without a subcommand (its full help)"));
    };
    if !s.toolstack {
        // libxl_ctx_alloc fails first on a host without Xen.
        let mut log = Logger::new(verbosity);
        log.ctx_log(
            "xencall",
            Level::Error,
            "",
            None,
            Some(nix::errno::Errno::ENOENT),
            "Could not obtain handle on privileged command interface",
        );
        let at = super::libxl::Site("libxl.c", 102, "libxl_ctx_alloc");
        log.log(
            Level::Error,
            at,
            None,
            Some(nix::errno::Errno::ENOENT),
            "cannot open libxc handle",
        );
        log.out.push_str("cannot init xl context\n");
        return Ok(done(argv, 1, String::new(), log.out));
    }
    let Some(name) = lookup(cmd) else {
        if cmd == "help" {
            return Err(not_simulated("xl help"));
        }
        return Ok(done(
            argv,
            1,
            String::new(),
            "command not implemented\n".to_string(),
        ));
    };
    let Some(spec) = CMDS.iter().find(|c| c.name == name) else {
        return Err(not_simulated(&format!("xl {name}")));
    };
    let mut r = Run {
        out: String::new(),
        log: Logger::new(verbosity),
    };
    if dryrun {
        r.err("command does not implement -N (dryrun) option\n");
        return Ok(done(argv, 1, r.out, r.log.out));
    }
    let rc = match getopt(&mut r, spec, cmd_args)
        .and_then(|(opts, pos)| command(&mut r, s, spec, &opts, &pos))
    {
        Ok(rc) | Err(Exit(rc)) => rc,
    };
    if rc == NOT_SIMULATED {
        return Err(not_simulated(&format!("xl {}", args.join(" "))));
    }
    Ok(done(argv, rc, r.out, r.log.out))
}

/// A marker rc for an option the simulator does not support.
const NOT_SIMULATED: i32 = i32::MIN;

fn not_simulated(what: &str) -> HostError {
    HostError::Other(format!(
        "the simulated host (XENPCI_HOST) does not run `{what}`"
    ))
}

fn done(argv: Vec<String>, rc: i32, stdout: String, stderr: String) -> CommandOutput {
    CommandOutput {
        argv,
        rc,
        stdout,
        stderr,
    }
}

/// `find_domain`: all digits (even none) is a domid, used as is; else a
/// name, which must run.
fn find_domain(r: &mut Run, s: &Snapshot, p: &str) -> Result<u32, Exit> {
    if p.bytes().all(|c| c.is_ascii_digit()) {
        // strtoul, then the cast to uint32_t.
        let v = p
            .parse::<u64>()
            .unwrap_or(if p.is_empty() { 0 } else { u64::MAX });
        return Ok(v as u32);
    }
    if p == "Domain-0" {
        return Ok(0);
    }
    match s.domains.iter().find(|d| d.name == p) {
        Some(d) => Ok(d.domid),
        None => {
            r.err(&format!("{p} is an invalid domain identifier (rc=-6)\n"));
            Err(Exit(1))
        }
    }
}

/// xl's own parse error for a spec: `xlu_pci_parse_spec_string` prints
/// unknown options and RDM policies without a newline, then xl says the
/// spec is malformed and exits 2.
fn malformed_spec(r: &mut Run, who: &str, text: &str, e: &SpecError) -> Exit {
    match e {
        SpecError::UnknownOption { key, .. } => {
            r.err(&format!("Unknown PCI_SPEC_STRING option: {key}"))
        }
        SpecError::BadRdmPolicy { value, .. } => r.err(&format!("Unknown RDM policy: {value}")),
        _ => {}
    }
    r.err(&format!("{who}: malformed PCI_SPEC_STRING \"{text}\"\n"));
    Exit(2)
}

/// What `parse_bdf` leaves in `libxl_device_pci`: `*` is function 0.
fn xl_bdf(p: BdfPattern) -> Bdf {
    let func = match p.func {
        Func::One(f) => f,
        Func::All => 0,
    };
    Bdf {
        domain: p.domain,
        bus: p.bus,
        dev: p.dev,
        func,
    }
}

fn has(opts: &[(char, Option<String>)], c: char) -> bool {
    opts.iter().any(|(o, _)| *o == c)
}

/// The command itself, after its options.
fn command(
    r: &mut Run,
    s: &mut Snapshot,
    cmd: &Cmd,
    opts: &[(char, Option<String>)],
    pos: &[String],
) -> Result<i32, Exit> {
    let failed = |rc: i32| i32::from(rc != 0);
    match cmd.name {
        "pci-assignable-add" => {
            let name = opts
                .iter()
                .rev()
                .find(|(c, _)| *c == 'n')
                .and_then(|(_, v)| v.clone());
            let bdf = match BdfPattern::parse_xl(&pos[0]) {
                // `parse_bdf` reads `*` as function 0 of the device.
                Ok(p) => xl_bdf(p),
                Err(_) => {
                    r.err(&format!(
                        "pci-assignable-add: malformed BDF \"{}\"\n",
                        pos[0]
                    ));
                    return Err(Exit(2));
                }
            };
            let rc = Libxl { s, log: &mut r.log }.assignable_add(&bdf, name.as_deref(), true);
            Ok(failed(rc.err().unwrap_or(0)))
        }
        "pci-assignable-remove" => {
            let rebind = has(opts, 'r');
            let ident = &pos[0];
            // Remove by name first, by BDF only if no device has that name
            // (`name2bdf` fails only with ERROR_NOTFOUND).
            let by_name = Libxl { s, log: &mut r.log }.name2bdf(ident);
            let bdf = match by_name {
                Ok(b) => b,
                Err((rc, _)) => match BdfPattern::parse_xl(ident) {
                    Ok(p) if rc == ERROR_NOTFOUND => xl_bdf(p),
                    _ => {
                        r.err(&format!("pci-assignable-remove: malformed BDF '{ident}'\n"));
                        return Err(Exit(2));
                    }
                },
            };
            let rc = Libxl { s, log: &mut r.log }.assignable_remove(&bdf, rebind);
            Ok(failed(rc.err().unwrap_or(0)))
        }
        "pci-assignable-list" => {
            let names = has(opts, 'n');
            let list = Libxl { s, log: &mut r.log }
                .assignable_list()
                .unwrap_or_default();
            for (bdf, name) in list {
                let name = if names {
                    name.unwrap_or_default()
                } else {
                    String::new()
                };
                let _ = writeln!(r.out, "{bdf} {name}");
            }
            Ok(0)
        }
        "pci-list" => {
            let domid = find_domain(r, s, &pos[0])?;
            if let Some(list) = (Libxl { s, log: &mut r.log }).device_pci_list(domid) {
                r.out.push_str("Vdev Device\n");
                for a in list {
                    let _ = writeln!(r.out, "{:02x}.{:01x} {}", a.vslot, 0, a.bdf);
                }
            }
            Ok(0)
        }
        "pci-attach" | "pci-detach" => {
            let domid = find_domain(r, s, &pos[0])?;
            let spec =
                PciSpec::parse_xl(&pos[1]).map_err(|e| malformed_spec(r, cmd.name, &pos[1], &e))?;
            let mut lx = Libxl { s, log: &mut r.log };
            let rc = if cmd.name == "pci-attach" {
                lx.device_pci_add(domid, &spec)
            } else {
                lx.device_pci_remove(domid, &spec, has(opts, 'f'))
            };
            Ok(failed(rc))
        }
        "list" => list(r, s, opts, pos),
        _ => Ok(NOT_SIMULATED),
    }
}

/// `main_list` without options: Domain-0 and the guests, or one domain.
fn list(
    r: &mut Run,
    s: &Snapshot,
    opts: &[(char, Option<String>)],
    pos: &[String],
) -> Result<i32, Exit> {
    if !opts.is_empty() {
        return Ok(NOT_SIMULATED);
    }
    let mut rows: Vec<(String, u32, u32, u32, &str)> = vec![(
        "Domain-0".to_string(),
        0,
        s.dom0.memory_mb,
        s.dom0.vcpus,
        "r-----",
    )];
    rows.extend(
        s.domains
            .iter()
            .map(|d| (d.name.clone(), d.domid, d.memory_mb, d.vcpus, "-b----")),
    );
    // libxl_list_domain returns them by domid.
    rows.sort_by_key(|row| row.1);
    match pos {
        [] => {}
        [one] => {
            let domid = find_domain(r, s, one)?;
            rows.retain(|row| row.1 == domid);
            if rows.is_empty() {
                r.err(&format!("Error: Domain '{one}' does not exist.\n"));
                return Ok(1);
            }
        }
        _ => {
            let cmd = CMDS
                .iter()
                .find(|c| c.name == "list")
                .expect("list is in CMDS");
            r.help(cmd);
            return Ok(1);
        }
    }
    r.out
        .push_str("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
    for (name, domid, mem, vcpus, state) in rows {
        let _ = writeln!(
            r.out,
            "{name:<40} {domid:>5} {mem:>5} {vcpus:>5}     {state}  {:>8.1}",
            0.0
        );
    }
    Ok(0)
}

#[cfg(test)]
#[path = "xl_tests.rs"]
mod tests;
