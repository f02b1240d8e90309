//! What dom0 uses a PCI device for: the dom0 guard's evidence, gathered
//! from sysfs, `/proc` and `ip`.
//!
//! "On the device" means: the sysfs folder of the block device or network
//! interface (its links resolved) lies inside the device's own folder,
//! `/sys/devices/pci0000:00/.../BDF`. That covers functions behind a bridge
//! and disks behind a controller (`.../0000:03:00.0/nvme/nvme0/nvme0n1`),
//! and excludes virtual devices (`/sys/devices/virtual/...`).
//!
//! - Block: every disk of `/sys/block` on the device and its partitions
//!   (subfolders with a `partition` file), each one [`BlockUse`]. Its
//!   `holders/` (md, LVM and other dm devices) are followed to the end; a
//!   mount or swap of the disk itself or of anything holding it counts for
//!   it. Mounts are matched by device number (`/proc/self/mountinfo`'s
//!   `major:minor` against the `dev` attribute), which needs no `/dev`
//!   names, and by source name (`/dev/NAME`, `/dev/mapper/DM-NAME`) for
//!   filesystems such as btrfs that report a virtual device number, or
//!   when only `/proc/self/mounts` is there. Swap is matched by name in
//!   `/proc/swaps`.
//! - Network: every interface of `/sys/class/net` whose `device` link
//!   resolves into the device, `up` from `IFF_UP` in `flags` (or
//!   `operstate` when `flags` is missing), its `master` link, and its
//!   addresses and main-table routes from `ip -j`. IPv6 link-local
//!   addresses and the `fe80::/64` route are left out: the kernel gives
//!   them to any interface that is up, so they say nothing more than `up`.
//!
//! A missing file means "not used that way": a device with no disk and no
//! interface has an empty [`Dom0Use`].

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cmd;
use super::sysfs::{link_name, parse_hex, read_opt, sysfs_err, SYSFS_BLOCK, SYSFS_CLASS_NET};
use crate::host::{BlockUse, HostError, NetUse};

/// `IFF_UP` of `<linux/if.h>`: administratively up.
const IFF_UP: u32 = 0x1;
/// How deep holders may stack (dm on md on a partition is three).
const MAX_HOLDER_DEPTH: usize = 16;

/// A block device node: a disk, a partition, or a holder.
#[derive(Debug, Clone)]
struct BlockNode {
    /// Kernel name, `nvme0n1p2`, `dm-0`.
    name: String,
    /// Its sysfs folder, resolved.
    dir: PathBuf,
    /// `major:minor` from `dev`.
    dev: Option<String>,
    /// The device-mapper name (`dm/name`), `vg0-root`.
    dm_name: Option<String>,
}

impl BlockNode {
    fn read(dir: PathBuf) -> Result<Self, HostError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dev = read_opt(&dir.join("dev"))?.map(|t| t.trim().to_string());
        let dm_name = read_opt(&dir.join("dm/name"))?.map(|t| t.trim().to_string());
        Ok(BlockNode {
            name,
            dir,
            dev,
            dm_name,
        })
    }

    /// Whether a mount source or swap file names this node.
    fn named_by(&self, source: &str) -> bool {
        let Some(rest) = source.strip_prefix("/dev/") else {
            return false;
        };
        rest == self.name
            || self
                .dm_name
                .as_deref()
                .is_some_and(|dm| rest.strip_prefix("mapper/") == Some(dm))
    }
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    /// `major:minor`, from `mountinfo` only.
    pub(super) dev: Option<String>,
    /// What was mounted, `/dev/nvme0n1p2`.
    pub(super) source: String,
    /// Where.
    pub(super) target: String,
}

/// Reads `/proc/self/mountinfo`: `ID PARENT MAJ:MIN ROOT TARGET OPTS
/// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS` (proc(5)).
pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let Some(sep) = words.iter().position(|w| *w == "-") else {
            continue;
        };
        if sep < 6 || words.len() < sep + 3 {
            continue;
        }
        out.push(Mount {
            dev: Some(words[2].to_string()),
            source: unescape(words[sep + 2]),
            target: unescape(words[4]),
        });
    }
    out
}

/// Reads `/proc/self/mounts`: `SOURCE TARGET FSTYPE OPTS 0 0` (fstab(5)).
pub(super) fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let source = words.next()?;
            let target = words.next()?;
            Some(Mount {
                dev: None,
                source: unescape(source),
                target: unescape(target),
            })
        })
        .collect()
}

/// Reads `/proc/swaps`: a header, then `FILENAME TYPE SIZE USED PRIORITY`.
/// The name is escaped as in the mount tables, and separated by blanks.
pub(super) fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(unescape))
        .collect()
}

/// Undoes the kernel's `\040`-style octal escapes (`seq_escape`: space,
/// tab, newline, backslash).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let oct = bytes.get(i + 1..i + 4);
            if let Some(oct) = oct.filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b))) {
                let value = oct.iter().fold(0u16, |v, b| v * 8 + u16::from(b - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the block and net scans need from the host: roots and tools.
pub(super) struct Scan<'a> {
    pub(super) sys: &'a Path,
    pub(super) proc: &'a Path,
    pub(super) ip: &'a Path,
}

impl Scan<'_> {
    /// Disks (and partitions) whose sysfs folder lies inside `device`.
    pub(super) fn block(&self, device: &Path) -> Result<Vec<BlockUse>, HostError> {
        let disks = self.disks_on(device)?;
        if disks.is_empty() {
            return Ok(Vec::new());
        }
        let mounts = self.mounts()?;
        let swaps = self.swaps()?;
        let mut out = Vec::new();
        for disk in disks {
            let parts = partitions(&disk.dir)?;
            for node in std::iter::once(disk).chain(parts) {
                out.push(use_of(&node, &mounts, &swaps)?);
            }
        }
        Ok(out)
    }

    fn disks_on(&self, device: &Path) -> Result<Vec<BlockNode>, HostError> {
        let mut out = Vec::new();
        for (name, dir) in resolved_entries(&self.sys.join(SYSFS_BLOCK))? {
            if dir.starts_with(device) {
                let mut node = BlockNode::read(dir)?;
                node.name = name;
                out.push(node);
            }
        }
        Ok(out)
    }

    /// The mount table: `mountinfo` (device numbers), else `mounts`.
    fn mounts(&self) -> Result<Vec<Mount>, HostError> {
        if let Some(text) = read_opt(&self.proc.join("self/mountinfo"))? {
            return Ok(parse_mountinfo(&text));
        }
        Ok(read_opt(&self.proc.join("self/mounts"))?
            .map(|t| parse_mounts(&t))
            .unwrap_or_default())
    }

    fn swaps(&self) -> Result<Vec<String>, HostError> {
        Ok(read_opt(&self.proc.join("swaps"))?
            .map(|t| parse_swaps(&t))
            .unwrap_or_default())
    }

    /// Interfaces whose `device` link resolves inside `device`.
    pub(super) fn net(&self, device: &Path) -> Result<Vec<NetUse>, HostError> {
        let mut out = Vec::new();
        for (name, dir) in resolved_entries(&self.sys.join(SYSFS_CLASS_NET))? {
            // Virtual interfaces (lo, bridges, bonds) have no `device`.
            let Ok(dev) = fs::canonicalize(dir.join("device")) else {
                continue;
            };
            if !dev.starts_with(device) {
                continue;
            }
            let up = match read_opt(&dir.join("flags"))?.as_deref().and_then(parse_hex) {
                Some(flags) => flags & IFF_UP != 0,
                None => read_opt(&dir.join("operstate"))?.is_some_and(|s| s.trim() == "up"),
            };
            let master = link_name(&dir.join("master"))?;
            let (addresses, routes) = self.ip_use(&name)?;
            out.push(NetUse {
                name,
                up,
                addresses,
                routes,
                master,
            });
        }
        Ok(out)
    }

    /// `ip -j addr show dev X`, `ip -j route show dev X`, and the same for
    /// IPv6 routes (`-6`), which `route show` leaves out.
    fn ip_use(&self, iface: &str) -> Result<(Vec<String>, Vec<String>), HostError> {
        let addr = self.ip_json(&["-j", "addr", "show", "dev", iface])?;
        let mut routes = self.ip_json(&["-j", "route", "show", "dev", iface])?;
        routes.extend(self.ip_json(&["-j", "-6", "route", "show", "dev", iface])?);
        Ok((parse_ip_addr(&addr), parse_ip_route(&routes)))
    }

    /// The array `ip -j` prints; none when the interface has gone meanwhile
    /// (`Device "X" does not exist.`).
    fn ip_json(&self, args: &[&str]) -> Result<Vec<Value>, HostError> {
        let out = cmd::run(self.ip, args, None)?;
        if out.rc != 0 {
            if out.stderr.contains("does not exist") {
                return Ok(Vec::new());
            }
            return Err(cmd::failed(&out));
        }
        if out.stdout.trim().is_empty() {
            return Ok(Vec::new());
        }
        match serde_json::from_str::<Value>(&out.stdout) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(HostError::Other(format!(
                "{}: not a JSON array: {}",
                out.command_line(),
                out.stdout.trim()
            ))),
        }
    }
}

/// `(name, resolved folder)` of each entry of a folder of links such as
/// `/sys/block`, sorted by name; none when the folder is missing.
fn resolved_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, HostError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sysfs_err("list", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| sysfs_err("list", dir, &e))?;
        // A dangling link is a device going away: not in use any more.
        if let Ok(real) = fs::canonicalize(entry.path()) {
            out.push((entry.file_name().to_string_lossy().into_owned(), real));
        }
    }
    out.sort();
    Ok(out)
}

/// The partitions of a disk: subfolders with a `partition` file, in the
/// order of their number.
fn partitions(disk: &Path) -> Result<Vec<BlockNode>, HostError> {
    let entries = fs::read_dir(disk).map_err(|e| sysfs_err("list", disk, &e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| sysfs_err("list", disk, &e))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(number) = read_opt(&entry.path().join("partition"))? else {
            continue;
        };
        let number: u32 = number.trim().parse().unwrap_or(u32::MAX);
        found.push((number, BlockNode::read(entry.path())?));
    }
    found.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    Ok(found.into_iter().map(|(_, n)| n).collect())
}

/// The nodes holding `node` (`holders/`), resolved.
fn holders(node: &BlockNode) -> Result<Vec<BlockNode>, HostError> {
    resolved_entries(&node.dir.join("holders"))?
        .into_iter()
        .map(|(_, dir)| BlockNode::read(dir))
        .collect()
}

/// The use of one disk or partition: its own mounts and swap, and those of
/// everything stacked on it.
fn use_of(node: &BlockNode, mounts: &[Mount], swaps: &[String]) -> Result<BlockUse, HostError> {
    let direct = holders(node)?;
    let mut stack: Vec<BlockNode> = vec![node.clone()];
    let mut seen: BTreeSet<PathBuf> = BTreeSet::from([node.dir.clone()]);
    let mut frontier = direct.clone();
    for _ in 0..MAX_HOLDER_DEPTH {
        let mut next = Vec::new();
        for h in frontier {
            if seen.insert(h.dir.clone()) {
                next.extend(holders(&h)?);
                stack.push(h);
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    let mut targets: Vec<String> = Vec::new();
    for m in mounts {
        let hit = stack
            .iter()
            .any(|n| (m.dev.is_some() && m.dev == n.dev) || n.named_by(&m.source));
        if hit && !targets.contains(&m.target) {
            targets.push(m.target.clone());
        }
    }
    Ok(BlockUse {
        name: node.name.clone(),
        mounts: targets,
        swap: swaps.iter().any(|s| stack.iter().any(|n| n.named_by(s))),
        holders: direct.into_iter().map(|h| h.name).collect(),
    })
}

/// `ip -j addr`: `[{"ifname": .., "addr_info": [{"family", "local",
/// "prefixlen", "scope"}]}]` as `10.0.0.2/24`.
pub(super) fn parse_ip_addr(items: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let Some(infos) = item.get("addr_info").and_then(Value::as_array) else {
            continue;
        };
        for info in infos {
            let family = info.get("family").and_then(Value::as_str);
            let scope = info.get("scope").and_then(Value::as_str);
            if family == Some("inet6") && scope == Some("link") {
                continue;
            }
            let (Some(local), Some(len)) = (
                info.get("local").and_then(Value::as_str),
                info.get("prefixlen").and_then(Value::as_u64),
            ) else {
                continue;
            };
            out.push(format!("{local}/{len}"));
        }
    }
    out
}

/// `ip -j route`: `[{"dst": "default", "gateway": "10.0.0.1"}, ...]` as
/// `default via 10.0.0.1`, `10.0.0.0/24`.
pub(super) fn parse_ip_route(items: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let Some(dst) = item.get("dst").and_then(Value::as_str) else {
            continue;
        };
        if dst == "fe80::/64" {
            continue;
        }
        let route = match item.get("gateway").and_then(Value::as_str) {
            Some(gw) => format!("{dst} via {gw}"),
            None => dst.to_string(),
        };
        if !out.contains(&route) {
            out.push(route);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mountinfo_keeps_device_numbers_and_unescapes() {
        let text = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
                    30 22 0:44 / /mnt/my\\040disk rw - btrfs /dev/sdb1 rw\n\
                    31 22 0:45 / /x rw shared:5 master:2 - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].dev.as_deref(), Some("259:2"));
        assert_eq!(
            (m[0].source.as_str(), m[0].target.as_str()),
            ("/dev/nvme0n1p2", "/")
        );
        assert_eq!(m[1].target, "/mnt/my disk");
        assert_eq!(m[2].source, "tmpfs");
    }

    #[test]
    fn mounts_and_swaps() {
        let m = parse_mounts("/dev/sda1 /boot ext4 rw 0 0\nproc /proc proc rw 0 0\n");
        assert_eq!(m[0].source, "/dev/sda1");
        assert_eq!(m[1].target, "/proc");
        let s = parse_swaps(
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-1  partition\t1000\t0\t-2\n",
        );
        assert_eq!(s, ["/dev/dm-1"]);
    }

    #[test]
    fn unescape_handles_edges() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("end\\04"), "end\\04");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn ip_json_is_read_without_link_local_noise() {
        let addr = json!([{ "ifname": "eno1", "addr_info": [
            { "family": "inet", "local": "10.0.0.2", "prefixlen": 24, "scope": "global" },
            { "family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link" },
            { "family": "inet6", "local": "2001:db8::2", "prefixlen": 64, "scope": "global" }
        ]}]);
        let Value::Array(addr) = addr else {
            unreachable!()
        };
        assert_eq!(parse_ip_addr(&addr), ["10.0.0.2/24", "2001:db8::2/64"]);
        let routes = json!([
            { "dst": "default", "gateway": "10.0.0.1", "protocol": "dhcp" },
            { "dst": "10.0.0.0/24", "protocol": "kernel", "scope": "link" },
            { "dst": "fe80::/64", "protocol": "kernel" }
        ]);
        let Value::Array(routes) = routes else {
            unreachable!()
        };
        assert_eq!(
            parse_ip_route(&routes),
            ["default via 10.0.0.1", "10.0.0.0/24"]
        );
    }
}
