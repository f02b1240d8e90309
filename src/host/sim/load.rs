//! Reading and writing a snapshot file: [`parse`] (serde, whose errors
//! name the JSON path, line and column; then `expand`, which makes defaults
//! explicit and generates the virtual functions of `sriov` blocks; then
//! `validate`, which checks every cross-reference) and
//! [`Snapshot::to_json`] (`compact` undoes `expand`, so a file the simulator
//! wrote reads back to the same state and an unchanged VF is not spelled
//! out).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::lookup::default_matching;
use super::snapshot::{SimDevice, SimDom0Use, Snapshot, Sriov};
use crate::bdf::Bdf;
use crate::host::PCIBACK;

/// Reads, expands and checks a snapshot. The error is a sentence for
/// `HostError::Snapshot`, naming the line and column (serde_json's; a JSON
/// path would need serde_path_to_error, about 26 KB in each binary).
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let mut snap: Snapshot =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    snap.expand()?;
    snap.validate()?;
    Ok(snap)
}

impl Snapshot {
    /// The file text: compacted, pretty-printed, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.compact())
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        text.push('\n');
        text
    }

    /// The virtual function `i` of `pf` as its `sriov` block generates it.
    pub(super) fn generated_vf(pf: &SimDevice, sriov: &Sriov, i: u16) -> Result<SimDevice, String> {
        let rid =
            (u32::from(pf.bdf.bus) << 8) | u32::from(pf.bdf.dev) << 3 | u32::from(pf.bdf.func);
        let vf_rid = rid + u32::from(sriov.offset) + u32::from(i) * u32::from(sriov.stride);
        if vf_rid > 0xffff {
            return Err(format!(
                "{}: VF {i} would lie beyond bus ff (offset {}, stride {})",
                pf.bdf, sriov.offset, sriov.stride
            ));
        }
        // The casts keep the bits of a 16-bit routing ID.
        let bdf = Bdf {
            domain: pf.bdf.domain,
            bus: (vf_rid >> 8) as u8,
            dev: ((vf_rid >> 3) & 0x1f) as u8,
            func: (vf_rid & 7) as u8,
        };
        Ok(SimDevice {
            bdf,
            vendor: pf.vendor,
            device: sriov.vf_device,
            subsystem_vendor: pf.subsystem_vendor,
            subsystem_device: pf.subsystem_device,
            class: pf.class,
            driver: sriov.vf_driver.clone(),
            drivers_that_match: Some(
                sriov
                    .vf_drivers_that_match
                    .clone()
                    .unwrap_or_else(|| default_matching(sriov.vf_driver.as_ref())),
            ),
            boot_vga: false,
            is_bridge: None,
            conventional_bridge: false,
            iommu_group: sriov.vf_iommu_group_first.map(|g| g + u32::from(i)),
            parent: pf.parent,
            physfn: Some(pf.bdf),
            sriov: None,
            dom0_use: SimDom0Use::default(),
            quarantined: false,
            reset: true,
            bind_fails: sriov.vf_bind_fails.clone(),
            assign_fails: None,
        })
    }

    /// Every VF `sriov` blocks generate, with the PF's BDF.
    fn generated_vfs(&self) -> Result<Vec<SimDevice>, String> {
        let mut out = Vec::new();
        for pf in &self.devices {
            if let Some(sriov) = &pf.sriov {
                for i in 0..sriov.num_vfs {
                    out.push(Self::generated_vf(pf, sriov, i)?);
                }
            }
        }
        Ok(out)
    }

    /// Makes defaults explicit and generates the VFs not listed by hand.
    fn expand(&mut self) -> Result<(), String> {
        for d in &mut self.devices {
            if d.drivers_that_match.is_none() {
                d.drivers_that_match = Some(default_matching(d.driver.as_ref()));
            }
        }
        // Where each BDF is in `devices` (the first of a BDF listed twice,
        // which `validate` refuses), generated VFs included as they join.
        let mut at: HashMap<Bdf, usize> = HashMap::with_capacity(self.devices.len());
        for (i, d) in self.devices.iter().enumerate() {
            at.entry(d.bdf).or_insert(i);
        }
        for vf in self.generated_vfs()? {
            match at.get(&vf.bdf).map(|&i| &self.devices[i]) {
                None => {
                    at.insert(vf.bdf, self.devices.len());
                    self.devices.push(vf);
                }
                Some(listed) if listed.physfn == vf.physfn => {}
                Some(listed) => {
                    return Err(format!(
                        "devices: {} is listed, but it is also VF of {} (give it \"physfn\": \"{}\" or change the sriov block)",
                        listed.bdf,
                        vf.physfn.map(|b| b.to_string()).unwrap_or_default(),
                        vf.physfn.map(|b| b.to_string()).unwrap_or_default(),
                    ))
                }
            }
        }
        self.devices.sort_by_key(|d| d.bdf);
        for dom in &mut self.domains {
            if dom.passthrough.is_none() {
                let p = if dom.devices.is_empty() {
                    "disabled"
                } else {
                    "enabled"
                };
                dom.passthrough = Some(p.to_string());
            }
        }
        normalize_xenstore(&mut self.xenstore);
        Ok(())
    }

    /// Undoes `expand`: drops VFs equal to their generated form and
    /// defaults equal to what `expand` would fill in.
    fn compact(&self) -> Snapshot {
        let mut out = self.clone();
        // A failure here was refused when the snapshot was read.
        let generated: HashMap<Bdf, SimDevice> = self
            .generated_vfs()
            .unwrap_or_default()
            .into_iter()
            .map(|vf| (vf.bdf, vf))
            .collect();
        out.devices.retain(|d| generated.get(&d.bdf) != Some(d));
        for d in &mut out.devices {
            if d.drivers_that_match.as_deref() == Some(&default_matching(d.driver.as_ref())[..]) {
                d.drivers_that_match = None;
            }
        }
        normalize_xenstore(&mut out.xenstore);
        out
    }

    /// Checks every cross-reference; the first problem is the error.
    fn validate(&self) -> Result<(), String> {
        let mut drivers = BTreeSet::new();
        for d in &self.drivers {
            if d.is_empty() || d.contains(['/', '\0']) || d == "." || d == ".." {
                return Err(format!("drivers: {d:?} is not a driver name"));
            }
            if !drivers.insert(d.as_str()) {
                return Err(format!("drivers: {d} is listed twice"));
            }
        }
        let mut seen = BTreeSet::new();
        for d in &self.devices {
            let at = format!("devices: {}", d.bdf);
            if !seen.insert(d.bdf) {
                return Err(format!("{at} is listed twice"));
            }
            if let Some(drv) = &d.driver {
                if !drivers.contains(drv.as_str()) {
                    return Err(format!(
                        "{at}: its driver {drv} is not loaded (add it to \"drivers\")"
                    ));
                }
            }
            if let Some(p) = &d.parent {
                match self.dev(p) {
                    None => return Err(format!("{at}: parent {p} is not a device")),
                    Some(pd) if !pd.is_bridge() => {
                        return Err(format!("{at}: parent {p} is not a bridge"))
                    }
                    _ => {}
                }
                if self.ancestors(&d.bdf).len() > self.devices.len() {
                    return Err(format!("{at}: its parents form a loop"));
                }
            }
            if let Some(pf) = &d.physfn {
                match self.dev(pf) {
                    None => return Err(format!("{at}: physfn {pf} is not a device")),
                    Some(p) if p.physfn.is_some() => {
                        return Err(format!("{at}: physfn {pf} is itself a VF"))
                    }
                    _ => {}
                }
                if d.sriov.is_some() {
                    return Err(format!("{at}: a VF cannot have an sriov block"));
                }
            }
            if d.quarantined && self.holder(&d.bdf).is_some() {
                return Err(format!(
                    "{at}: a guest holds it, so Xen cannot also have it quarantined"
                ));
            }
        }
        for p in &self.pciback.permissive {
            if self.dev(p).and_then(|d| d.driver.as_deref()) != Some(PCIBACK) {
                return Err(format!(
                    "pciback.permissive: {p} is not bound to pciback (the kernel forgets the flag on unbind)"
                ));
            }
        }
        let pciback_state = !self.pciback.slots.is_empty() || !self.pciback.permissive.is_empty();
        if pciback_state && !drivers.contains(PCIBACK) {
            return Err("pciback has slots but is not in \"drivers\"".to_string());
        }
        for path in self.xenstore.keys() {
            if !path.starts_with('/')
                || (path.len() > 1 && path.ends_with('/'))
                || path.contains("//")
            {
                return Err(format!(
                    "xenstore: {path:?} is not an absolute xenstore path"
                ));
            }
        }
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::from(["Domain-0"]);
        let mut held = BTreeSet::new();
        for dom in &self.domains {
            let at = format!("domains: {} ({})", dom.name, dom.domid);
            // DOMID_FIRST_RESERVED is 0x7ff0.
            if dom.domid == 0 || dom.domid >= 0x7ff0 {
                return Err(format!(
                    "{at}: a guest's domid is 1 to 32751 (Domain-0 is implicit)"
                ));
            }
            if !ids.insert(dom.domid) {
                return Err(format!("{at}: domid {} is used twice", dom.domid));
            }
            if dom.name.is_empty() || !names.insert(dom.name.as_str()) {
                return Err(format!("{at}: the name is empty or used twice"));
            }
            if let Some(p) = &dom.passthrough {
                if !["enabled", "disabled", "sync_pt", "share_pt"].contains(&p.as_str()) {
                    return Err(format!(
                        "{at}: passthrough {p:?} is not enabled, disabled, sync_pt or share_pt"
                    ));
                }
            }
            for a in &dom.devices {
                if self.dev(&a.bdf).is_none() {
                    return Err(format!("{at}: holds {}, which is not a device", a.bdf));
                }
                if !held.insert(a.bdf) {
                    return Err(format!("{at}: {} is held twice", a.bdf));
                }
                if a.vslot > 0x1f {
                    return Err(format!(
                        "{at}: vslot {:#x} of {} is above 0x1f",
                        a.vslot, a.bdf
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Drops `""` entries that a child already implies, so a folder is spelled
/// out only when it is empty.
pub fn normalize_xenstore(map: &mut BTreeMap<String, String>) {
    let implied: Vec<String> = map
        .iter()
        .filter(|(k, v)| {
            v.is_empty() && {
                let prefix = if k.as_str() == "/" {
                    "/".to_string()
                } else {
                    format!("{k}/")
                };
                map.range(prefix.clone()..)
                    .next()
                    .is_some_and(|(c, _)| c.starts_with(&prefix))
            }
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in implied {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::sim::snapshot::Faults;
    use crate::host::sim::snapshot::{Hex16, Hex24};
    use nix::errno::Errno;

    const MINIMAL: &str = r#"{
  "drivers": ["e1000e", "pciback"],
  "devices": [
    {"bdf": "00:00.0", "vendor": "0x8086", "device": "0x1237", "class": "0x060000"},
    {"bdf": "00:19.0", "vendor": 32902, "device": "0x15bb", "class": 131072, "driver": "e1000e"}
  ]
}"#;

    #[test]
    fn minimal_snapshot_reads_with_defaults() {
        let s = parse(MINIMAL).expect("parse");
        assert!(s.toolstack && s.iommu);
        let nic = s.dev(&Bdf::parse("00:19.0").unwrap()).unwrap();
        assert_eq!(nic.vendor, Hex16(0x8086));
        assert_eq!(nic.class, Hex24(0x020000));
        assert_eq!(nic.matching(), ["e1000e".to_string()]);
        assert!(s.dev(&Bdf::parse("00:00.0").unwrap()).unwrap().is_bridge());
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let bad = MINIMAL.replace("\"0x15bb\"", "\"15bb\"");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("15bb"), "{err}");
        assert!(err.contains("line 5 column"), "{err}");
        let err = parse("{\"drivers\": [}").unwrap_err();
        assert!(
            err.starts_with("invalid JSON") && err.contains("line 1 column 14"),
            "{err}"
        );
        let err = parse(&MINIMAL.replace("\"drivers\"", "\"driverz\"")).unwrap_err();
        assert!(err.contains("unknown field `driverz`"), "{err}");
    }

    #[test]
    fn validation_catches_cross_references() {
        let unloaded = MINIMAL.replace("[\"e1000e\", \"pciback\"]", "[\"pciback\"]");
        assert!(parse(&unloaded)
            .unwrap_err()
            .contains("e1000e is not loaded"));
        let orphan = MINIMAL.replace(
            "\"driver\": \"e1000e\"",
            "\"driver\": \"e1000e\", \"parent\": \"00:01.0\"",
        );
        assert!(parse(&orphan)
            .unwrap_err()
            .contains("parent 0000:00:01.0 is not a device"));
        let twice = MINIMAL.replace("00:19.0", "00:00.0");
        assert!(parse(&twice).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn sriov_expands_in_routing_id_order_and_folds_back() {
        let text = r#"{
  "drivers": ["ixgbe", "ixgbevf"],
  "devices": [
    {"bdf": "81:00.0", "vendor": "0x8086", "device": "0x10fb", "class": "0x020000",
     "driver": "ixgbe", "sriov": {"num_vfs": 64, "vf_device": "0x10ed",
     "vf_driver": "ixgbevf", "vf_iommu_group_first": 100}}
  ]
}"#;
        let mut s = parse(text).expect("parse");
        assert_eq!(s.devices.len(), 65);
        let pf = Bdf::parse("81:00.0").unwrap();
        let vfs = s.virtfns(&pf);
        assert_eq!(vfs.first().unwrap().to_string(), "0000:81:00.1");
        assert_eq!(vfs.last().unwrap().to_string(), "0000:81:08.0");
        let last = s.dev(vfs.last().unwrap()).unwrap();
        assert_eq!((last.iommu_group, last.physfn), (Some(163), Some(pf)));
        // Unchanged VFs are not written out; a changed one is.
        assert!(!s.to_json().contains("81:00.1"));
        s.dev_mut(&vfs[0]).unwrap().driver = None;
        let text2 = s.to_json();
        assert!(text2.contains("\"bdf\": \"0000:81:00.1\""), "{text2}");
        assert_eq!(parse(&text2).expect("reparse"), s);
    }

    #[test]
    fn round_trip_keeps_the_state() {
        let s = parse(MINIMAL).expect("parse");
        let again = parse(&s.to_json()).expect("reparse");
        assert_eq!(again, s);
        assert_eq!(again.to_json(), s.to_json());
    }

    #[test]
    fn xenstore_keeps_only_empty_folders() {
        let mut m = BTreeMap::from([
            ("/libxl/pci".to_string(), String::new()),
            ("/libxl/pci/0000-07-00-0".to_string(), String::new()),
            ("/libxl/pci/0000-08-00-0".to_string(), String::new()),
            ("/libxl/pci/0000-08-00-0/name".to_string(), "x".to_string()),
        ]);
        normalize_xenstore(&mut m);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["/libxl/pci/0000-07-00-0", "/libxl/pci/0000-08-00-0/name"]
        );
    }

    #[test]
    fn faults_read_as_list_or_map() {
        let l: Faults = serde_json::from_str(r#"["pciback"]"#).unwrap();
        assert_eq!(l.errno_for("pciback"), Some(Errno::ENODEV));
        let m: Faults = serde_json::from_str(r#"{"pciback": "EIO"}"#).unwrap();
        assert_eq!(m.errno_for("pciback"), Some(Errno::EIO));
        assert_eq!(m.errno_for("e1000e"), None);
        assert!(serde_json::from_str::<Faults>(r#"{"pciback": "EWHAT"}"#).is_err());
    }
}
