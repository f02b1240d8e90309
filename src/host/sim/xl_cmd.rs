//! xl's command table and option parsing: the names `cmdtable_lookup`
//! matches prefixes against (`xl_cmdtable.c`), the `cmd_spec` of each
//! simulated command (help text as `help()` in `xl.c` prints it), and GNU
//! `getopt_long` as `def_getopt` drives it (`xl_utils.c`).

use std::fmt::Write as _;

use super::libxl::Logger;

/// Every command of xl 4.17 on x86 (`cmd_table`), for its unique-prefix
/// lookup (`cmdtable_lookup`): `xl pci-assignable-l` is `-list`.
pub(super) const CMD_NAMES: &[&str] = &[
    "create",
    "config-update",
    "list",
    "destroy",
    "shutdown",
    "reboot",
    "pci-attach",
    "pci-detach",
    "pci-list",
    "pci-assignable-add",
    "pci-assignable-remove",
    "pci-assignable-list",
    "pause",
    "unpause",
    "console",
    "vncviewer",
    "save",
    "migrate",
    "restore",
    "migrate-receive",
    "dump-core",
    "cd-insert",
    "cd-eject",
    "mem-max",
    "mem-set",
    "button-press",
    "vcpu-list",
    "vcpu-pin",
    "vcpu-set",
    "vm-list",
    "info",
    "sharing",
    "sched-credit",
    "sched-credit2",
    "sched-rtds",
    "domid",
    "domname",
    "rename",
    "trigger",
    "sysrq",
    "debug-keys",
    "set-parameters",
    "dmesg",
    "top",
    "network-attach",
    "network-list",
    "network-detach",
    "channel-list",
    "block-attach",
    "block-list",
    "block-detach",
    "vtpm-attach",
    "vtpm-list",
    "vtpm-detach",
    "vkb-attach",
    "vkb-list",
    "vkb-detach",
    "vdispl-attach",
    "vdispl-list",
    "vdispl-detach",
    "vsnd-attach",
    "vsnd-list",
    "vsnd-detach",
    "uptime",
    "claims",
    "cpupool-create",
    "cpupool-list",
    "cpupool-destroy",
    "cpupool-rename",
    "cpupool-cpu-add",
    "cpupool-cpu-remove",
    "cpupool-migrate",
    "cpupool-numa-split",
    "getenforce",
    "setenforce",
    "loadpolicy",
    "remus",
    "devd",
    "psr-hwinfo",
    "psr-cmt-attach",
    "psr-cmt-detach",
    "psr-cmt-show",
    "psr-cat-set",
    "psr-cat-show",
    "psr-mba-set",
    "psr-mba-show",
    "usbctrl-attach",
    "usbctrl-detach",
    "usbdev-attach",
    "usbdev-detach",
    "usb-list",
    "qemu-monitor-command",
];

/// The options given, in order, with their values.
pub(super) type Opts = Vec<(char, Option<String>)>;

/// A simulated command's `cmd_spec` and `SWITCH_FOREACH_OPT` arguments.
pub(super) struct Cmd {
    pub(super) name: &'static str,
    pub(super) modifies: bool,
    pub(super) desc: &'static str,
    pub(super) usage: &'static str,
    pub(super) options: Option<&'static str>,
    /// The short options (`getopt` syntax).
    pub(super) short: &'static str,
    /// The long options: name, takes an argument, short equivalent.
    pub(super) long: &'static [(&'static str, bool, char)],
    /// The positional arguments required.
    pub(super) required: usize,
}

const HELP: (&str, bool, char) = ("help", false, 'h');

pub(super) const CMDS: &[Cmd] = &[
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
        long: &[
            ("long", false, 'l'),
            ("verbose", false, 'v'),
            ("context", false, 'Z'),
            ("cpupool", false, 'c'),
            ("numa", false, 'n'),
            HELP,
        ],
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
pub(super) struct Run {
    pub(super) out: String,
    pub(super) log: Logger,
}

/// An early `exit(code)`.
pub(super) struct Exit(pub(super) i32);

impl Run {
    pub(super) fn err(&mut self, text: &str) {
        self.log.out.push_str(text);
    }

    /// `help(command)`, to stdout.
    pub(super) fn help(&mut self, cmd: &Cmd) {
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

/// `cmdtable_lookup`: an exact name, else a unique prefix.
pub(super) fn lookup(cmd: &str) -> Option<&'static str> {
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
pub(super) fn getopt(r: &mut Run, cmd: &Cmd, args: &[String]) -> Result<(Opts, Vec<String>), Exit> {
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
