//! What libxl gets from a spec: the config's `pci_*` defaults
//! ([`PciDefaults`]), the values libxl finally uses ([`ResolvedPci`]), and
//! the `libxl_device_pci` fields xl leaves ([`LibxlPciView`]) as the C
//! oracle prints them ([`xl_oracle_json`]).

use serde::{Deserialize, Serialize};

use super::{Device, PciSpec, RdmPolicy};
use crate::bdf::Func;

/// libxl's `LIBXL_PCI_FUNC_ALL` (`~0U`): `vfunc_mask` for function `*`.
pub const LIBXL_PCI_FUNC_ALL: u32 = u32::MAX;

impl PciSpec {
    /// What libxl finally uses for this spec: the options not written take
    /// `defaults` (as `xl_parse.c` presets them), then
    /// `libxl__device_pci_setdefault()` turns an invalid rdm policy into
    /// strict. Use [`PciDefaults::default`] for `xl pci-attach`.
    pub fn resolve(&self, defaults: &PciDefaults) -> ResolvedPci {
        let rdm_policy = match self.rdm_policy.unwrap_or(defaults.rdm_policy) {
            RdmPolicy::Invalid => RdmPolicy::Strict,
            p => p,
        };
        ResolvedPci {
            device: self.device.clone(),
            vslot: self.vslot,
            permissive: self.permissive.unwrap_or(defaults.permissive),
            msitranslate: self.msitranslate.unwrap_or(defaults.msitranslate),
            seize: self.seize.unwrap_or(defaults.seize),
            power_mgmt: self.power_mgmt.unwrap_or(defaults.power_mgmt),
            rdm_policy,
        }
    }

    /// The `libxl_device_pci` that `xl pci-attach` hands to libxl: the
    /// struct after `libxl_device_pci_init()` (all zero, `rdm_policy` -1,
    /// `name` NULL) and `xlu_pci_parse_spec_string()`.
    pub fn libxl_view(&self) -> LibxlPciView {
        self.libxl_view_with(&PciDefaults::default())
    }

    /// The `libxl_device_pci` after `xl_parse.c` built it for one entry of a
    /// config's `pci = [...]`: `libxl_device_pci_init()`, then the `pci_*`
    /// defaults and the global rdm policy from `defaults`, then the parse.
    pub fn libxl_view_with(&self, defaults: &PciDefaults) -> LibxlPciView {
        let (domain, bus, dev, func, vfunc_mask, name) = match &self.device {
            Device::Bdf(p) => {
                let (func, mask) = match p.func {
                    Func::One(f) => (f, 1),
                    Func::All => (0, LIBXL_PCI_FUNC_ALL),
                };
                (i32::from(p.domain), p.bus, p.dev, func, mask, None)
            }
            // Nothing touches the address for a name: it stays as init left it.
            Device::Name(n) => (0, 0, 0, 0, 0, Some(n.clone())),
        };
        let flag = |v: Option<bool>, d: bool| u8::from(v.unwrap_or(d));
        LibxlPciView {
            domain,
            bus,
            dev,
            func,
            vdevfn: self.vslot.map_or(0, |v| u32::from(v) << 3),
            vfunc_mask,
            permissive: flag(self.permissive, defaults.permissive),
            msitranslate: flag(self.msitranslate, defaults.msitranslate),
            seize: flag(self.seize, defaults.seize),
            power_mgmt: flag(self.power_mgmt, defaults.power_mgmt),
            rdm_policy: self.rdm_policy.unwrap_or(defaults.rdm_policy).libxl_value(),
            name,
        }
    }
}

/// The per-device defaults `xl_parse.c` presets before parsing each entry of
/// a config's `pci = [...]`. `Default` is what `xl pci-attach` uses (and a
/// config without `pci_*` settings): all off, rdm policy invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciDefaults {
    /// `pci_permissive`, as a C bool (see [`PciDefaults::flag_from_long`]).
    pub permissive: bool,
    /// `pci_msitranslate`.
    pub msitranslate: bool,
    /// `pci_seize`.
    pub seize: bool,
    /// `pci_power_mgmt`.
    pub power_mgmt: bool,
    /// The global policy (`b_info->u.hvm.rdm.policy`), invalid unless the
    /// config's `rdm` sets it.
    pub rdm_policy: RdmPolicy,
}

impl Default for PciDefaults {
    fn default() -> PciDefaults {
        PciDefaults {
            permissive: false,
            msitranslate: false,
            seize: false,
            power_mgmt: false,
            rdm_policy: RdmPolicy::Invalid,
        }
    }
}

impl PciDefaults {
    /// How `xl_parse.c` turns `pci_permissive = N` (read with
    /// `xlu_cfg_get_long()`) into the default: the long goes into an `int`
    /// (its low 32 bits), then into the C bool of `libxl_device_pci`.
    /// So `4294967296` is off.
    pub fn flag_from_long(value: i64) -> bool {
        // Truncation is the point: it is what the C assignment does.
        value as i32 != 0
    }
}

/// What libxl finally uses for a device: see [`PciSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedPci {
    /// The host device.
    pub device: Device,
    /// The guest slot, `None` when libxl picks one.
    pub vslot: Option<u8>,
    /// Permissive config space access.
    pub permissive: bool,
    /// MSI-INTx translation.
    pub msitranslate: bool,
    /// Seize the device if not assignable.
    pub seize: bool,
    /// Guest power management.
    pub power_mgmt: bool,
    /// Strict or relaxed, never invalid.
    pub rdm_policy: RdmPolicy,
}

/// The fields of `libxl_device_pci` after xl parsed a spec, as a C oracle
/// prints them: `{"domain":..,"bus":..,"dev":..,"func":..,"vdevfn":..,
/// "vfunc_mask":..,"permissive":..,"msitranslate":..,"seize":..,
/// "power_mgmt":..,"rdm_policy":..,"name":null|".."}`.
///
/// Booleans are C `bool`s printed with `%d`: 0 or 1. `rdm_policy` is
/// libxl's integer (-1 invalid, 0 strict, 1 relaxed). For a named device
/// the address fields and `vfunc_mask` stay 0, as `libxl_device_pci_init()`
/// left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibxlPciView {
    /// `domain` (an `int` in libxl).
    pub domain: i32,
    /// `bus`.
    pub bus: u8,
    /// `dev`.
    pub dev: u8,
    /// `func` (0 for `*`).
    pub func: u8,
    /// `vdevfn`: vslot << 3.
    pub vdevfn: u32,
    /// `vfunc_mask`: 1 for one function, `0xffffffff` for `*`, 0 for a name.
    pub vfunc_mask: u32,
    /// `permissive`, 0 or 1.
    pub permissive: u8,
    /// `msitranslate`, 0 or 1.
    pub msitranslate: u8,
    /// `seize`, 0 or 1.
    pub seize: u8,
    /// `power_mgmt`, 0 or 1.
    pub power_mgmt: u8,
    /// `rdm_policy` as libxl's integer.
    pub rdm_policy: i32,
    /// `name`, `null` when NULL.
    pub name: Option<String>,
}

/// What the C oracle prints for `input` given to
/// `xlu_pci_parse_spec_string()` on a `libxl_device_pci_init()`ed struct:
/// `{"rc":0, ...`[`LibxlPciView`]`}` on success, `{"rc":N}` on failure
/// (`N` as [`SpecError::xl_rc`](super::SpecError::xl_rc)). `None` when
/// xl's behaviour on this input is undefined, so the comparison must skip it.
pub fn xl_oracle_json(input: &str) -> Option<serde_json::Value> {
    match PciSpec::parse_xl(input) {
        Ok(spec) => {
            let mut value = serde_json::to_value(spec.libxl_view()).ok()?;
            if let serde_json::Value::Object(map) = &mut value {
                map.insert("rc".into(), 0.into());
            }
            Some(value)
        }
        Err(e) => e.xl_rc().map(|rc| serde_json::json!({ "rc": rc })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle view (what the C program prints) of an input.
    macro_rules! view {
        ($input:expr => $json:tt) => {
            assert_eq!(
                xl_oracle_json($input),
                Some(serde_json::json!($json)),
                "{:?}",
                $input
            )
        };
    }

    #[test]
    fn oracle_views() {
        view!("07:00.0" => {"rc":0,"domain":0,"bus":7,"dev":0,"func":0,"vdevfn":0,"vfunc_mask":1,
            "permissive":0,"msitranslate":0,"seize":0,"power_mgmt":0,"rdm_policy":-1,"name":null});
        view!("0001:07:00.*@3,permissive=1,rdm_policy=relaxed" => {"rc":0,"domain":1,"bus":7,"dev":0,
            "func":0,"vdevfn":24,"vfunc_mask":4294967295u32,"permissive":1,"msitranslate":0,"seize":0,
            "power_mgmt":0,"rdm_policy":1,"name":null});
        view!("name=foo" => {"rc":0,"domain":0,"bus":0,"dev":0,"func":0,"vdevfn":0,"vfunc_mask":0,
            "permissive":0,"msitranslate":0,"seize":0,"power_mgmt":0,"rdm_policy":-1,"name":"foo"});
        view!("07:00.0,name=foo" => {"rc":-6});
        view!("07:00.0,rdm_policy=bogus" => {"rc":-3});
    }

    #[test]
    fn config_defaults() {
        let defaults = PciDefaults {
            permissive: true,
            rdm_policy: RdmPolicy::Relaxed,
            ..PciDefaults::default()
        };
        let spec = PciSpec::parse_xl("07:00.0,permissive=0,seize=1").unwrap();
        let view = spec.libxl_view_with(&defaults);
        assert_eq!((view.permissive, view.seize, view.rdm_policy), (0, 1, 1));
        let resolved = PciSpec::parse_xl("07:00.0").unwrap().resolve(&defaults);
        assert!(resolved.permissive);
        assert_eq!(resolved.rdm_policy, RdmPolicy::Relaxed);
        let attach = PciSpec::parse_xl("07:00.0,rdm_policy=invalid")
            .unwrap()
            .resolve(&PciDefaults::default());
        assert_eq!(attach.rdm_policy, RdmPolicy::Strict);
        assert!(!PciDefaults::flag_from_long(1 << 32));
        assert!(PciDefaults::flag_from_long(2));
    }
}
