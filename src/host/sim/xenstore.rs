//! The simulated xenstore: the snapshot's `path: value` map, read as a
//! tree, plus the nodes xenstored would hold for the running guests, which
//! are computed from `domains` rather than stored twice.
//!
//! As in xenstored, a node exists when it has a value or a child; removing a
//! node removes its subtree and leaves its parent in place (so libxl's
//! `/libxl/pci/DDDD-BB-DD-F` folder stays, empty, after
//! `pci-assignable-remove` drops its last record).

use std::collections::{BTreeMap, BTreeSet};

use super::snapshot::Snapshot;
use crate::host::HostError;

/// Where the computed nodes live; writes under it are refused.
const COMPUTED_ROOT: &str = "/local/domain";

/// `XenbusStateConnected`: what pciback leaves in `state` and `state-N`.
const CONNECTED: &str = "4";

impl Snapshot {
    /// The nodes computed from `domains`: each guest's `name` and `domid`,
    /// and for a guest with devices the PCI backend that
    /// `libxl__create_pci_backend` and `libxl__device_pci_add_xenstore`
    /// write (`num_devs`, `key-N`, `dev-N`, `vdevfn-N`, `name-N`, `opts-N`,
    /// `state-N`).
    pub fn computed_nodes(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("/local/domain/0/name".to_string(), "Domain-0".to_string());
        m.insert("/local/domain/0/domid".to_string(), "0".to_string());
        for dom in &self.domains {
            let id = dom.domid;
            m.insert(format!("/local/domain/{id}/name"), dom.name.clone());
            m.insert(format!("/local/domain/{id}/domid"), id.to_string());
            if dom.devices.is_empty() {
                continue;
            }
            let be = format!("/local/domain/0/backend/pci/{id}/0");
            let mut put = |k: &str, v: String| {
                m.insert(format!("{be}/{k}"), v);
            };
            put("frontend", format!("/local/domain/{id}/device/pci/0"));
            put("frontend-id", id.to_string());
            put("online", "1".to_string());
            put("state", CONNECTED.to_string());
            put("domain", dom.name.clone());
            put("num_devs", dom.devices.len().to_string());
            for (i, a) in dom.devices.iter().enumerate() {
                put(&format!("key-{i}"), a.bdf.to_string());
                put(&format!("dev-{i}"), a.bdf.to_string());
                if a.vslot != 0 {
                    put(
                        &format!("vdevfn-{i}"),
                        format!("{:x}", u32::from(a.vslot) << 3),
                    );
                }
                if let Some(n) = &a.name {
                    put(&format!("name-{i}"), n.clone());
                }
                put(&format!("opts-{i}"), a.opts.clone());
                put(&format!("state-{i}"), CONNECTED.to_string());
            }
        }
        m
    }

    /// `xenstore-read`: the value, `None` when the node does not exist.
    pub fn xs_get(&self, path: &str) -> Option<String> {
        let path = trim(path);
        if let Some(v) = self.xenstore.get(path) {
            return Some(v.clone());
        }
        let computed = self.computed_nodes();
        if let Some(v) = computed.get(path) {
            return Some(v.clone());
        }
        let has_child = |m: &BTreeMap<String, String>| !children(m, path).is_empty();
        (path == "/" || has_child(&self.xenstore) || has_child(&computed)).then(String::new)
    }

    /// `xenstore-list`: the names of the children, sorted; none when absent.
    pub fn xs_children(&self, path: &str) -> Vec<String> {
        let path = trim(path);
        let mut out = children(&self.xenstore, path);
        out.extend(children(&self.computed_nodes(), path));
        out.into_iter().collect()
    }

    /// `xenstore-write`.
    pub fn xs_set(&mut self, path: &str, value: &str) -> Result<(), HostError> {
        let path = check_writable(path)?;
        self.xenstore.insert(path.to_string(), value.to_string());
        normalize_around(&mut self.xenstore, path);
        Ok(())
    }

    /// `xenstore-rm`: the node and its subtree; the parent stays. An absent
    /// node is not an error (it is gone, as asked).
    pub fn xs_remove(&mut self, path: &str) -> Result<(), HostError> {
        let path = check_writable(path)?;
        let existed = self.xs_get(path).is_some();
        let prefix = format!("{path}/");
        let below: Vec<String> = self
            .xenstore
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.xenstore.remove(&k);
        }
        self.xenstore.remove(path);
        if existed {
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !parent.is_empty() && self.xs_get(parent).is_none() {
                    self.xenstore.insert(parent.to_string(), String::new());
                }
            }
        }
        Ok(())
    }
}

/// What `load::normalize_xenstore` does to a map that was normal until
/// `path` was written: its folders now have a child, so an empty value of
/// theirs is implied, and so is `path`'s own when it is empty and has
/// children. Only those entries are looked at, not the whole map.
fn normalize_around(map: &mut BTreeMap<String, String>, path: &str) {
    let prefix = format!("{path}/");
    let has_child = map
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix));
    if has_child && map.get(path).is_some_and(String::is_empty) {
        map.remove(path);
    }
    let mut cur = path;
    while cur != "/" {
        let Some((parent, _)) = cur.rsplit_once('/') else {
            break;
        };
        let parent = if parent.is_empty() { "/" } else { parent };
        if map.get(parent).is_some_and(String::is_empty) {
            map.remove(parent);
        }
        cur = parent;
    }
}

/// `path` without a trailing slash (xenstore paths have none).
fn trim(path: &str) -> &str {
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// The names directly below `path` in `map`.
fn children(map: &BTreeMap<String, String>, path: &str) -> BTreeSet<String> {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    map.range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| k[prefix.len()..].split('/').next().map(str::to_string))
        .filter(|c| !c.is_empty())
        .collect()
}

/// Refuses what the simulator cannot store: relative paths, and nodes that
/// are computed from `domains`.
fn check_writable(path: &str) -> Result<&str, HostError> {
    let path = trim(path);
    if !path.starts_with('/') || path == "/" || path.contains("//") {
        return Err(HostError::Other(format!(
            "simulated xenstore: {path:?} is not an absolute node path"
        )));
    }
    if path == COMPUTED_ROOT || path.starts_with(&format!("{COMPUTED_ROOT}/")) {
        return Err(HostError::Other(format!(
            "simulated xenstore: {path} is computed from the snapshot's \"domains\" and cannot be changed"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::load::parse;
    use super::*;

    fn host() -> Snapshot {
        parse(
            r#"{
  "drivers": ["pciback"],
  "devices": [
    {"bdf": "07:00.0", "vendor": "0x8086", "device": "0x10d3", "class": "0x020000", "driver": "pciback"}
  ],
  "xenstore": {"/libxl/pci/0000-07-00-0/driver_path": "/sys/bus/pci/drivers/e1000e",
               "/libxl/pci/0000-07-00-0/domid": "1"},
  "domains": [{"domid": 1, "name": "vm1", "devices": [{"bdf": "07:00.0", "vslot": 5}]}]
}"#,
        )
        .expect("parse")
    }

    #[test]
    fn folders_exist_through_their_children() {
        let s = host();
        assert_eq!(s.xs_get("/libxl/pci").as_deref(), Some(""));
        assert_eq!(s.xs_children("/libxl/pci"), ["0000-07-00-0"]);
        assert_eq!(
            s.xs_children("/libxl/pci/0000-07-00-0"),
            ["domid", "driver_path"]
        );
        assert_eq!(s.xs_get("/libxl/pci/0000-08-00-0"), None);
        assert!(s.xs_children("/nowhere").is_empty());
    }

    #[test]
    fn rm_removes_the_subtree_and_keeps_the_parent() {
        let mut s = host();
        s.xs_remove("/libxl/pci/0000-07-00-0/domid").unwrap();
        s.xs_remove("/libxl/pci/0000-07-00-0/driver_path").unwrap();
        assert_eq!(s.xs_get("/libxl/pci/0000-07-00-0").as_deref(), Some(""));
        assert!(s.xs_children("/libxl/pci/0000-07-00-0").is_empty());
        s.xs_remove("/libxl/pci").unwrap();
        assert_eq!(s.xs_get("/libxl/pci"), None);
        assert_eq!(s.xs_get("/libxl").as_deref(), Some(""));
        s.xs_remove("/libxl/never").expect("absent is fine");
    }

    #[test]
    fn guest_nodes_are_computed_and_read_only() {
        let s = host();
        let be = "/local/domain/0/backend/pci/1/0";
        assert_eq!(s.xs_get(&format!("{be}/num_devs")).as_deref(), Some("1"));
        assert_eq!(
            s.xs_get(&format!("{be}/dev-0")).as_deref(),
            Some("0000:07:00.0")
        );
        assert_eq!(s.xs_get(&format!("{be}/vdevfn-0")).as_deref(), Some("28"));
        assert_eq!(s.xs_get("/local/domain/1/name").as_deref(), Some("vm1"));
        assert_eq!(s.xs_children("/local/domain/0/backend/pci"), ["1"]);
        let mut s = s;
        assert!(s.xs_set("/local/domain/1/name", "x").is_err());
        assert!(s.xs_set("relative", "x").is_err());
    }

    /// Writes and removals keep the map as `normalize_xenstore` would make
    /// it, though they only look at the nodes they touch.
    #[test]
    fn writes_keep_the_map_normal() {
        let mut s = host();
        s.xs_set("/a", "").unwrap();
        let ops: [(&str, Option<&str>); 12] = [
            ("/a/b/c", Some("1")),
            ("/a/b", Some("")),
            ("/a", Some("")),
            ("/a/b/c", None),
            ("/a/b", Some("")),
            ("/a/b/d", Some("")),
            ("/a/b", None),
            ("/libxl/pci/0000-07-00-0", Some("")),
            ("/libxl/pci/0000-07-00-0/domid", None),
            ("/libxl/pci/0000-07-00-0/driver_path", None),
            ("/libxl/pci/0000-07-00-0/name", Some("nic")),
            ("/libxl", None),
        ];
        for (path, value) in ops {
            match value {
                Some(v) => s.xs_set(path, v).unwrap(),
                None => s.xs_remove(path).unwrap(),
            }
            let mut normal = s.xenstore.clone();
            super::super::load::normalize_xenstore(&mut normal);
            assert_eq!(s.xenstore, normal, "after {path} {value:?}");
        }
        assert_eq!(s.xs_get("/a").as_deref(), Some(""));
        assert_eq!(s.xs_get("/a/b"), None);
    }
}
