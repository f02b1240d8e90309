//! Injection tries: arguments with shell metacharacters reach `xl` as one
//! argument each and are never interpreted, and domain names that `xl`
//! would take for an option are refused before anything runs.
//!
//! Two sides:
//! - the simulated dom0 (`XENPCI_HOST`), through the module binaries: what
//!   the simulated `xl` received is what its records hold afterwards (an
//!   assignable name in libxl's xenstore record, the spec's name on the
//!   guest's backend) and what the result's `actions`/`commands` say;
//! - the real-host side ([`RealHost`] with fake `xl` and xenstore tools in
//!   a scratch folder, which record their argv), through the same library
//!   engine the modules run, and through the `pci_attach` binary with the
//!   fakes on `PATH` (for runs that stop before touching the host).
//!
//! Every try carries canaries: `$(touch CANARY)`, `` `touch CANARY` ``,
//! `;touch CANARY`. A shell anywhere on the way would create the file.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use xenpci::assignable::{self, AssignRequest, AssignState, Method};
use xenpci::attach::{self, AttachRequest, AttachState};
use xenpci::bdf::BdfPattern;
use xenpci::host::real::{RealHost, Roots};
use xenpci::spec::PciSpec;

use crate::util::{run_module, run_on_shipped, Ran};

const ASSIGNABLE: &str = "pci_assignable";
const ATTACH: &str = "pci_attach";
const INFO: &str = "pci_info";

/// A folder for canaries, and words that would create them under a shell.
/// Short paths: an assignable name holds at most 64 characters.
struct Canaries {
    dir: tempfile::TempDir,
}

impl Canaries {
    fn new() -> Canaries {
        let dir = tempfile::Builder::new()
            .prefix("c")
            .tempdir_in("/tmp")
            .expect("canary folder");
        Canaries { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("UTF-8")
            .to_string()
    }

    /// Names and spec words without blanks (`${IFS}` stands for one), as
    /// xl's grammars take them: each would run `touch` under a shell.
    fn words(&self) -> Vec<String> {
        vec![
            format!("$(touch${{IFS}}{})", self.path("a")),
            format!("`touch${{IFS}}{}`", self.path("b")),
            format!("x;touch${{IFS}}{}", self.path("c")),
            format!("x|touch${{IFS}}{}&", self.path("d")),
        ]
    }

    /// Asserts that no canary was created.
    fn assert_quiet(&self) {
        let made: Vec<String> = fs::read_dir(self.dir.path())
            .expect("read canaries")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(made.is_empty(), "a shell ran: created {made:?}");
    }
}

// ---------------------------------------------------------------------------
// The simulated dom0, through the binaries.

/// pci_assignable: a name full of shell syntax is passed to
/// `xl pci-assignable-add -n` as one argument, which stores it as it is.
#[test]
fn assignable_name_reaches_xl_as_one_argument() {
    let canaries = Canaries::new();
    for name in canaries.words() {
        let args = json!({"devices": "03:00.0", "name": name});
        let (ran, changes, _dir) = run_on_shipped(ASSIGNABLE, "typical", &json!({}), &args);
        assert!(!ran.failed(), "{name}: {}", ran.stdout);
        assert_eq!(
            ran.json["actions"][1],
            json!(format!("xl pci-assignable-add -n {name} 0000:03:00.0")),
            "{name}"
        );
        let record = &changes[r#".xenstore["/libxl/pci/0000-03-00-0/name"]"#];
        assert_eq!(record["after"], json!(name), "{name}: {changes}");
        assert_eq!(
            ran.json["assignable"][0],
            json!({"bdf": "0000:03:00.0", "name": name}),
            "{name}"
        );
    }
    canaries.assert_quiet();
}

/// pci_assignable and pci_info: device strings with shell syntax or a path
/// are refused as BDFs before the host is read.
#[test]
fn device_strings_with_shell_syntax_are_refused() {
    let canaries = Canaries::new();
    let mut words = canaries.words();
    words.extend([
        "03:00.0;reboot".to_string(),
        "03:00.0 04:00.0".to_string(),
        "../../../../tmp/x".to_string(),
        "-r".to_string(),
        "--help".to_string(),
    ]);
    for w in &words {
        for (bin, args) in [
            (ASSIGNABLE, json!({"devices": [w]})),
            (
                ASSIGNABLE,
                json!({"devices": "03:00.0", "state": "absent", "bdf": w}),
            ),
            (INFO, json!({"devices": [w]})),
        ] {
            let (ran, changes, _dir) = run_on_shipped(bin, "typical", &json!({}), &args);
            assert!(ran.failed(), "{w}: {}", ran.stdout);
            assert_eq!(changes, json!({}), "{w}");
            assert_eq!(ran.json["actions"], json!([]), "{w}");
        }
    }
    canaries.assert_quiet();
}

/// pci_attach: a device named with shell syntax (`name=...`) is looked up
/// and handed to `xl pci-attach` as one argument; the guest's backend
/// records the name as it is.
#[test]
fn attach_name_spec_reaches_xl_as_one_argument() {
    let canaries = Canaries::new();
    for name in canaries.words() {
        let patch = json!({"xenstore": {"/libxl/pci/0000-07-00-0/name": name}});
        let spec = format!("name={name}");
        let args = json!({"domain": "vm1", "devices": spec});
        let (ran, changes, _dir) = run_on_shipped(ATTACH, "typical", &patch, &args);
        assert!(!ran.failed(), "{name}: {}", ran.stdout);
        assert_eq!(
            ran.json["commands"],
            json!([format!("xl pci-attach 1 {spec}")])
        );
        let held = &changes[".domains[1].devices[0000:07:00.0].name"];
        assert_eq!(held["after"], json!(name), "{name}: {changes}");
    }
    canaries.assert_quiet();
}

/// pci_attach: spec strings with shell syntax after the BDF, and domains
/// with it, never run anything: refused by the grammar, or looked up as
/// plain names that no guest has.
#[test]
fn attach_refuses_or_looks_up_shell_syntax() {
    let canaries = Canaries::new();
    for w in canaries.words() {
        for args in [
            json!({"domain": "vm1", "devices": format!("07:00.0,{w}")}),
            json!({"domain": "vm1", "devices": format!("07:00.0@{w}")}),
            json!({"domain": "vm1", "devices": [{"bdf": "07:00.0", "rdm_policy": w}]}),
            json!({"domain": w, "devices": "07:00.0"}),
        ] {
            let (ran, changes, _dir) = run_on_shipped(ATTACH, "typical", &json!({}), &args);
            assert!(ran.failed(), "{args}: {}", ran.stdout);
            assert_eq!(changes, json!({}), "{args}");
            assert_eq!(ran.json["actions"], json!([]), "{args}");
        }
    }
    canaries.assert_quiet();
}

/// Domain names that begin with `-` are refused before the host is even
/// opened: no snapshot is needed, and none is touched.
#[test]
fn dash_domains_are_refused_on_the_simulator() {
    for domain in ["-f", "--help", "-v", "-", "-1", "--", "-N"] {
        let (ran, changes, _dir) = run_on_shipped(
            ATTACH,
            "typical",
            &json!({}),
            &json!({"domain": domain, "devices": "07:00.0", "state": "absent"}),
        );
        assert!(ran.failed(), "{domain}: {}", ran.stdout);
        assert!(
            ran.msg().contains("no leading '-'"),
            "{domain}: {}",
            ran.msg()
        );
        assert_eq!(changes, json!({}), "{domain}");
    }
}

// ---------------------------------------------------------------------------
// The real-host side, with fake tools that record their argv.

/// `xl list` as the fake answers it.
const XL_LIST: &str =
    "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
Domain-0                                     0   768     2     r-----      12.3\n\
vm1                                          1   512     1     -b----       0.4\n";

/// A scratch dom0 for [`RealHost`]: one NIC (03:00.0 on e1000e) in a
/// sysfs-like tree, pciback loaded, the toolstack "running", and fake
/// `xl`, `xenstore-*` and `ip` that record every argv in `argv.log`
/// (count, program, arguments, each NUL-terminated).
struct FakeDom0 {
    dir: tempfile::TempDir,
}

impl FakeDom0 {
    fn new(assignable_name: &str) -> FakeDom0 {
        let dir = tempfile::tempdir().expect("scratch");
        let d = FakeDom0 { dir };
        let dev = "sys/devices/pci0000:00/0000:00:1c.1/0000:03:00.0";
        d.write(&format!("{dev}/vendor"), "0x8086\n");
        d.write(&format!("{dev}/device"), "0x10d3\n");
        d.write(&format!("{dev}/class"), "0x020000\n");
        d.write(&format!("{dev}/driver_override"), "(null)\n");
        fs::write(d.root().join(dev).join("config"), [0u8; 64]).expect("config");
        d.link(&format!("{dev}/driver"), "sys/bus/pci/drivers/e1000e");
        d.link("sys/bus/pci/devices/0000:03:00.0", dev);
        for drv in ["e1000e", "pciback"] {
            for f in ["bind", "unbind", "new_id", "remove_id"] {
                d.write(&format!("sys/bus/pci/drivers/{drv}/{f}"), "");
            }
        }
        d.link("sys/bus/pci/drivers/e1000e/0000:03:00.0", dev);
        for f in ["new_slot", "remove_slot", "slots", "permissive"] {
            d.write(&format!("sys/bus/pci/drivers/pciback/{f}"), "");
        }
        d.write("sys/bus/pci/drivers_probe", "");
        d.write("proc/xen/capabilities", "control_d\n");
        d.write("proc/self/mountinfo", "");
        d.write("proc/self/mounts", "");
        d.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        d.write("dev/kmsg", "");
        d.write("xl-list.txt", XL_LIST);
        d.write("name.txt", assignable_name);
        let record = r#"printf '%s\0' "$#" "$(basename "$0")" "$@" >> "$here/argv.log""#;
        d.script(
            "bin/xl",
            &format!(
                "#!/bin/sh\nhere=$(cd \"$(dirname \"$0\")/..\" && pwd)\n{record}\n\
                 case \"$1\" in\nlist) cat \"$here/xl-list.txt\" ;;\nesac\nexit 0\n"
            ),
        );
        // xenstore-VERB [-R] -- PATH [VALUE]
        d.script(
            "bin/xenstore",
            &format!(
                "#!/bin/sh\nhere=$(cd \"$(dirname \"$0\")/..\" && pwd)\n{record}\n\
                 tool=$(basename \"$0\")\nwhile [ $# -gt 0 ]; do case \"$1\" in --) shift; break ;; -*) shift ;; *) break ;; esac; done\n\
                 case \"$tool:$1\" in\n\
                 xenstore-read:/local/domain/0/name) printf 'Domain-0' ;;\n\
                 xenstore-read:/libxl/pci/0000-03-00-0/name) cat \"$here/name.txt\" ;;\n\
                 xenstore-read:*) echo \"$tool: couldn't read path $1\" >&2; exit 1 ;;\n\
                 xenstore-list:/libxl/pci) echo 0000-03-00-0 ;;\n\
                 xenstore-list:*) echo \"$tool: could not list path $1\" >&2; exit 1 ;;\n\
                 esac\nexit 0\n"
            ),
        );
        for verb in ["read", "write", "rm", "list"] {
            symlink("xenstore", d.root().join(format!("bin/xenstore-{verb}"))).expect("link");
        }
        d.script(
            "bin/ip",
            &format!(
                "#!/bin/sh\nhere=$(cd \"$(dirname \"$0\")/..\" && pwd)\n{record}\necho '[]'\n"
            ),
        );
        d
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn script(&self, rel: &str, text: &str) {
        self.write(rel, text);
        fs::set_permissions(self.root().join(rel), fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }

    /// A symlink at `link` to `target` (both relative to the root).
    fn link(&self, link: &str, target: &str) {
        let l = self.root().join(link);
        fs::create_dir_all(l.parent().expect("parent")).expect("mkdir");
        symlink(self.root().join(target), l).expect("symlink");
    }

    fn bin(&self) -> PathBuf {
        self.root().join("bin")
    }

    fn host(&self) -> RealHost {
        let r = self.root();
        RealHost::with_roots(Roots {
            sys: r.join("sys"),
            proc: r.join("proc"),
            dev: r.join("dev"),
            files: r.join("files"),
            xl: self.bin().join("xl"),
            xenstore: self.bin().join("xenstore"),
            ip: self.bin().join("ip"),
            modprobe: self.bin().join("modprobe"),
            update_initramfs: self.bin().join("update-initramfs"),
        })
    }

    /// Every recorded run: program name and arguments.
    fn argv(&self) -> Vec<Vec<String>> {
        let Ok(bytes) = fs::read(self.root().join("argv.log")) else {
            return Vec::new();
        };
        let mut words = bytes
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned());
        let mut out = Vec::new();
        while let Some(count) = words.next() {
            let Ok(n) = count.parse::<usize>() else { break };
            let run: Vec<String> = words.by_ref().take(n + 1).collect();
            out.push(run);
        }
        out
    }

    /// The runs of `xl`, without the program name.
    fn xl_runs(&self) -> Vec<Vec<String>> {
        self.argv()
            .into_iter()
            .filter(|r| r[0] == "xl")
            .map(|r| r[1..].to_vec())
            .collect()
    }
}

/// pci_assignable's engine on the real side: the name reaches
/// `xl pci-assignable-add -n NAME BDF` as one argument. (The fake xl binds
/// nothing, so the engine then finds the device still on e1000e and fails:
/// what matters here is the argv.)
#[test]
fn real_side_assignable_name_is_one_argument() {
    let canaries = Canaries::new();
    for name in canaries.words() {
        let dom0 = FakeDom0::new("");
        let mut host = dom0.host();
        let req = AssignRequest {
            devices: vec![BdfPattern::parse("03:00.0").expect("bdf")],
            state: AssignState::Present,
            rebind: true,
            name: Some(name.clone()),
            persistent: false,
            force: false,
            method: Method::Xl,
            detached: Vec::new(),
            unhide: Vec::new(),
        };
        assignable::check_name(&name).expect("xl takes the name");
        let plan = assignable::plan(&host, &req).expect("plan");
        let _ = assignable::apply(&mut host, &plan);
        // `xl info` only reads (the plan asks it about the IOMMU).
        let runs: Vec<Vec<String>> = dom0
            .xl_runs()
            .into_iter()
            .filter(|r| r[0] != "info")
            .collect();
        assert_eq!(
            runs,
            vec![vec![
                "pci-assignable-add".to_string(),
                "-n".to_string(),
                name.clone(),
                "0000:03:00.0".to_string()
            ]],
            "{name}"
        );
    }
    canaries.assert_quiet();
}

/// pci_attach's engine on the real side: a `name=` spec with shell syntax
/// is looked up in (fake) xenstore and reaches `xl pci-attach DOMID SPEC`
/// as one argument; the domain reaches xl as its domid.
#[test]
fn real_side_attach_spec_is_one_argument() {
    let canaries = Canaries::new();
    for name in canaries.words() {
        let dom0 = FakeDom0::new(&name);
        let mut host = dom0.host();
        let spec = format!("name={name},seize=1");
        let req = AttachRequest {
            domain: "vm1".into(),
            devices: vec![PciSpec::parse_xl(&spec).expect("xl's grammar takes it")],
            state: AttachState::Present,
            force: false,
            check: false,
            ready: Vec::new(),
        };
        let plan = attach::plan(&mut host, &req).expect("plan");
        attach::apply(&mut host, &plan).expect("apply");
        let runs = dom0.xl_runs();
        let attach_run = runs
            .iter()
            .find(|r| r[0] == "pci-attach")
            .unwrap_or_else(|| panic!("{name}: no pci-attach in {runs:?}"));
        assert_eq!(attach_run.len(), 3, "{attach_run:?}");
        assert_eq!(attach_run[1], "1");
        assert!(
            attach_run[2].starts_with(&format!("name={name}")),
            "{attach_run:?}"
        );
    }
    canaries.assert_quiet();
}

/// The pci_attach binary on the real side (fake tools first on `PATH`):
/// a domain that begins with `-` or holds a blank is refused before any
/// program runs; `$(id)` is looked up in `xl list` as a plain name and
/// nothing else runs. Check mode, so that nothing on this machine is
/// locked or written.
#[test]
fn real_side_attach_binary_refuses_dash_domains() {
    let canaries = Canaries::new();
    let mut domains: Vec<String> = ["-f", "--help", "-v", "-", "0; reboot", "vm1 -f"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    domains.extend(canaries.words().into_iter().map(|w| format!("-{w}")));
    for domain in &domains {
        let dom0 = FakeDom0::new("");
        let ran = run_attach_on_path(&dom0, &json!({"domain": domain, "devices": "07:00.0"}));
        assert!(ran.failed(), "{domain}: {}", ran.stdout);
        assert!(
            ran.msg().starts_with(&format!("domain {:?}", domain)),
            "{}",
            ran.msg()
        );
        assert_eq!(
            dom0.argv(),
            Vec::<Vec<String>>::new(),
            "{domain}: a program ran"
        );
    }
    for domain in ["$(id)", "`id`", "x;id", "a|b&", "$(reboot)"] {
        let dom0 = FakeDom0::new("");
        let ran = run_attach_on_path(&dom0, &json!({"domain": domain, "devices": "07:00.0"}));
        assert!(ran.failed(), "{domain}: {}", ran.stdout);
        assert!(ran.msg().contains("is not running"), "{}", ran.msg());
        assert_eq!(dom0.xl_runs(), vec![vec!["list".to_string()]], "{domain}");
    }
    canaries.assert_quiet();
}

fn run_attach_on_path(dom0: &FakeDom0, args: &Value) -> Ran {
    let path = format!(
        "{}:{}",
        dom0.bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut args = args.clone();
    args["_ansible_check_mode"] = json!(true);
    run_module(ATTACH, &args, &[("PATH", &path)])
}
