//! The simulated `xl` command line (Xen 4.17.7's `tools/xl/`): global
//! options and command lookup (`xl.c`, `xl_cmdtable.c`), per-command
//! option parsing with GNU `getopt_long` as `def_getopt` drives it
//! (`xl_utils.c`), `find_domain`, and the commands `pci-assignable-add`,
//! `-remove`, `-list`, `pci-attach`, `pci-detach`, `pci-list` (`xl_pci.c`)
//! and plain `list` (`xl_info.c`), printing what they print.
//!
//! A real xl command this file does not simulate is a `HostError::Other`
//! saying so, never a made-up answer.

use std::fmt::Write as _;

use super::libxl::{Level, Libxl, Logger, ERROR_NOTFOUND};
use super::snapshot::Snapshot;
use crate::bdf::{Bdf, BdfPattern, Func};
use crate::host::{CommandOutput, HostError};
use crate::spec::{PciSpec, SpecError};

/// Every command of xl 4.17 on x86 (`cmd_table`), for its unique-prefix
/// lookup (`cmdtable_lookup`): `xl pci-assignable-l` is `-list`.
const CMD_NAMES: &[&str] = &[
    "create", "config-update", "list", "destroy", "shutdown", "reboot", "pci-attach",
    "pci-detach", "pci-list", "pci-assignable-add", "pci-assignable-remove",
    "pci-assignable-list", "pause", "unpause", "console", "vncviewer", "save", "migrate",
    "restore", "migrate-receive", "dump-core", "cd-insert", "cd-eject", "mem-max", "mem-set",
    "button-press", "vcpu-list", "vcpu-pin", "vcpu-set", "vm-list", "info", "sharing",
    "sched-credit", "sched-credit2", "sched-rtds", "domid", "domname", "rename", "trigger",
    "sysrq", "debug-keys", "set-parameters", "dmesg", "top", "network-attach", "network-list",
    "network-detach", "channel-list", "block-attach", "block-list", "block-detach",
    "vtpm-attach", "vtpm-list", "vtpm-detach", "vkb-attach", "vkb-list", "vkb-detach",
    "vdispl-attach", "vdispl-list", "vdispl-detach", "vsnd-attach", "vsnd-list", "vsnd-detach",
    "uptime", "claims", "cpupool-create", "cpupool-list", "cpupool-destroy", "cpupool-rename",
    "cpupool-cpu-add", "cpupool-cpu-remove", "cpupool-migrate", "cpupool-numa-split",
    "getenforce", "setenforce", "loadpolicy", "remus", "devd", "psr-hwinfo", "psr-cmt-attach",
    "psr-cmt-detach", "psr-cmt-show", "psr-cat-set", "psr-cat-show", "psr-mba-set",
    "psr-mba-show", "usbctrl-attach", "usbctrl-detach", "usbdev-attach", "usbdev-detach",
    "usb-list", "qemu-monitor-command",
];

/// A simulated command's `cmd_spec` and `SWITCH_FOREACH_OPT` arguments.
struct Cmd {
    name: &'static str,
    modifies: bool,
    desc: &'static str,
    usage: &'static str,
    options: Option<&'static str>,
    /// The short options (`getopt` syntax).
    short: &'static str,
    /// The long options: name, takes an argument, short equivalent.
    long: &'static [(&'static str, bool, char)],
    /// The positional arguments required.
    required: usize,
}

const HELP: (&str, bool, char) = ("help", false, 'h');

const CMDS: &[Cmd] = &[
    Cmd {
        name: "list",
        modifies: false,
        desc: "List information about all/some domains",
        usage: "[options] [Domain]\n",
        options: Some(
            "-l, --long              Output all VM details\n\
             -v, --verbose           Prints out UUIDs and security context\n\
             -Z, --context           Prints out security context\n\
             -c, --cpupool           Prints the cpupool the domain is in\n\
             -n, --numa              Prints out NUMA node affinity",
        ),
        short: "lvhZcn",
        long: &[("long", false, 'l'), ("verbose", false, 'v'), ("context", false, 'Z'),
                ("cpupool", false, 'c'), ("numa", false, 'n'), HELP],
        required: 0,
    },
    Cmd {
        name: "pci-attach",
        modifies: true,
        desc: "Insert a new pass-through pci device",
        usage: "<Domain> <PCI_SPEC_STRING>",
        options: None,
        short: "",
        long: &[HELP],
        required: 2,
    },
    Cmd {
        name: "pci-detach",
        modifies: true,
        desc: "Remove a domain's pass-through pci device",
        usage: "<Domain> <PCI_SPEC_STRING>",
        options: None,
        short: "f",
        long: &[HELP],
        required: 2,
    },
    Cmd {
        name: "pci-list",
        modifies: false,
        desc: "List pass-through pci devices for a domain",
        usage: "<Domain>",
        options: None,
        short: "",
        long: &[HELP],
        required: 1,
    },
    Cmd {
        name: "pci-assignable-add",
        modifies: true,
        desc: "Make a device assignable for pci-passthru",
        usage: "[options] <BDF>",
        options: Some(
            "-n NAME, --name=NAME    Name the assignable device.\n\
             -h                      Print this help.\n",
        ),
        short: "n:",
        long: &[("name", true, 'n'), HELP],
        required: 1,
    },
    Cmd {
        name: "pci-assignable-remove",
        modifies: true,
        desc: "Remove a device from being assignable",
        usage: "[options] <BDF>|NAME",
        options: Some(
            "-h                      Print this help.\n\
             -r                      Attempt to re-assign the device to the\n\
             \x20                       original driver.",
        ),
        short: "r",
        long: &[HELP],
        required: 1,
    },
    Cmd {
        name: "pci-assignable-list",
        modifies: false,
        desc: "List all the assignable pci devices",
        usage: "[options]",
        options: Some(
            "-h                      Print this help.\n\
             -n, --show-names        Display assignable device names where\n\
             \x20                       supplied.\n",
        ),
        short: "n",
        long: &[("show-names", false, 'n'), HELP],
        required: 0,
    },
];

/// What a run printed and its exit code; `exit` ends it early, as xl's
/// `exit()` calls do.
struct Run {
    out: String,
    log: Logger,
}

/// An early `exit(code)`.
struct Exit(i32);

impl Run {
    fn err(&mut self, text: &str) {
        self.log.out.push_str(text);
    }

    /// `help(command)`, to stdout.
    fn help(&mut self, cmd: &Cmd) {
        let _ = write!(
            self.out,
            "Usage: xl [-vtT{}] {} {}\n\n{}.\n\n",
            if cmd.modifies { "f" } else { "" },
            cmd.name,
            cmd.usage,
            cmd.desc
        );
        if let Some(o) = cmd.options {
            let _ = writeln!(self.out, "Options:\n\n{o}");
        }
    }
}

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
                _ => return Ok(done(argv, 1, String::new(), "unknown global option\n".to_string())),
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
        log.ctx_log("xencall", Level::Error, "", None, Some(nix::errno::Errno::ENOENT), "Could not obtain handle on privileged command interface");
        let at = super::libxl::Site("libxl.c", 102, "libxl_ctx_alloc");
        log.log(Level::Error, at, None, Some(nix::errno::Errno::ENOENT), "cannot open libxc handle");
        log.out.push_str("cannot init xl context\n");
        return Ok(done(argv, 1, String::new(), log.out));
    }
    let Some(name) = lookup(cmd) else {
        if cmd == "help" {
            return Err(not_simulated("xl help"));
        }
        return Ok(done(argv, 1, String::new(), "command not implemented\n".to_string()));
    };
    let Some(spec) = CMDS.iter().find(|c| c.name == name) else {
        return Err(not_simulated(&format!("xl {name}")));
    };
    let mut r = Run { out: String::new(), log: Logger::new(verbosity) };
    if dryrun {
        r.err("command does not implement -N (dryrun) option\n");
        return Ok(done(argv, 1, r.out, r.log.out));
    }
    let rc = match getopt(&mut r, spec, cmd_args).and_then(|(opts, pos)| command(&mut r, s, spec, &opts, &pos)) {
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
    HostError::Other(format!("the simulated host (XENPCI_HOST) does not run `{what}`"))
}

fn done(argv: Vec<String>, rc: i32, stdout: String, stderr: String) -> CommandOutput {
    CommandOutput { argv, rc, stdout, stderr }
}

/// `cmdtable_lookup`: an exact name, else a unique prefix.
fn lookup(cmd: &str) -> Option<&'static str> {
    if let Some(n) = CMD_NAMES.iter().find(|n| **n == cmd) {
        return Some(n);
    }
    let mut hits = CMD_NAMES.iter().filter(|n| n.starts_with(cmd));
    match (hits.next(), hits.next()) {
        (Some(n), None) => Some(n),
        _ => None,
    }
}

/// `def_getopt` over GNU `getopt_long`: options anywhere (until `--`),
/// clustered short options, `--long[=value]` and unique long prefixes. An
/// unknown option or a missing value prints ``option `X' not supported.``
/// and exits 2 (for an unknown long option glibc leaves `optopt` 0, so xl
/// prints a NUL there); `-h`/`--help` prints the help and exits 0; too few
/// positional arguments print what is missing, the help, and exit 2.
fn getopt(r: &mut Run, cmd: &Cmd, args: &[String]) -> Result<(Vec<(char, Option<String>)>, Vec<String>), Exit> {
    let mut opts = Vec::new();
    let mut pos = Vec::new();
    let bad = |r: &mut Run, c: char| -> Exit {
        if c == 'h' {
            r.help(cmd);
            return Exit(0);
        }
        r.err(&format!("option `{c}' not supported.\n"));
        Exit(2)
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            pos.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (key, value) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (long, None),
            };
            let exact = cmd.long.iter().find(|l| l.0 == key);
            let mut prefixed = cmd.long.iter().filter(|l| l.0.starts_with(key));
            let found = exact.or(match (prefixed.next(), prefixed.next()) {
                (Some(l), None) => Some(l),
                _ => None,
            });
            let Some(&(_, has_arg, c)) = found else {
                return Err(bad(r, '\0'));
            };
            let value = match (has_arg, value) {
                (true, Some(v)) => Some(v),
                (true, None) if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                (false, None) => None,
                _ => return Err(bad(r, c)),
            };
            if c == 'h' {
                return Err(bad(r, 'h'));
            }
            opts.push((c, value));
            continue;
        }
        if !a.starts_with('-') || a == "-" {
            pos.push(a.clone());
            continue;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            let at = cmd.short.find(c).filter(|_| c != ':');
            let Some(at) = at else {
                return Err(bad(r, c));
            };
            if c == 'h' {
                return Err(bad(r, 'h'));
            }
            if cmd.short[at + 1..].starts_with(':') {
                let value = if j < chars.len() {
                    chars[j..].iter().collect()
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(bad(r, c));
                };
                opts.push((c, Some(value)));
                break;
            }
            opts.push((c, None));
        }
    }
    if pos.len() < cmd.required {
        let n = cmd.required;
        r.err(&format!(
            "'xl {}' requires at least {n} argument{}.\n\n",
            cmd.name,
            if n > 1 { "s" } else { "" }
        ));
        r.help(cmd);
        return Err(Exit(2));
    }
    Ok((opts, pos))
}

/// `find_domain`: all digits (even none) is a domid, used as is; else a
/// name, which must run.
fn find_domain(r: &mut Run, s: &Snapshot, p: &str) -> Result<u32, Exit> {
    if p.bytes().all(|c| c.is_ascii_digit()) {
        // strtoul, then the cast to uint32_t.
        let v = p.parse::<u64>().unwrap_or(if p.is_empty() { 0 } else { u64::MAX });
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
        SpecError::UnknownOption { key, .. } => r.err(&format!("Unknown PCI_SPEC_STRING option: {key}")),
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
    Bdf { domain: p.domain, bus: p.bus, dev: p.dev, func }
}

fn has(opts: &[(char, Option<String>)], c: char) -> bool {
    opts.iter().any(|(o, _)| *o == c)
}

/// The command itself, after its options.
fn command(r: &mut Run, s: &mut Snapshot, cmd: &Cmd, opts: &[(char, Option<String>)], pos: &[String]) -> Result<i32, Exit> {
    let failed = |rc: i32| i32::from(rc != 0);
    match cmd.name {
        "pci-assignable-add" => {
            let name = opts.iter().rev().find(|(c, _)| *c == 'n').and_then(|(_, v)| v.clone());
            let bdf = match BdfPattern::parse_xl(&pos[0]) {
                // `parse_bdf` reads `*` as function 0 of the device.
                Ok(p) => xl_bdf(p),
                Err(_) => {
                    r.err(&format!("pci-assignable-add: malformed BDF \"{}\"\n", pos[0]));
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
                    Err(_) => {
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
            let list = Libxl { s, log: &mut r.log }.assignable_list().unwrap_or_default();
            for (bdf, name) in list {
                let name = if names { name.unwrap_or_default() } else { String::new() };
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
            let spec = PciSpec::parse_xl(&pos[1]).map_err(|e| malformed_spec(r, cmd.name, &pos[1], &e))?;
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
fn list(r: &mut Run, s: &Snapshot, opts: &[(char, Option<String>)], pos: &[String]) -> Result<i32, Exit> {
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
            let cmd = CMDS.iter().find(|c| c.name == "list").expect("list is in CMDS");
            r.help(cmd);
            return Ok(1);
        }
    }
    r.out.push_str("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
    for (name, domid, mem, vcpus, state) in rows {
        let _ = writeln!(r.out, "{name:<40} {domid:>5} {mem:>5} {vcpus:>5}     {state}  {:>8.1}", 0.0);
    }
    Ok(0)
}
