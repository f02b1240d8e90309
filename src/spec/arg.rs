//! Specs as module arguments: [`SpecArg`] (a spec string or a
//! [`PciSpecObject`]), [`VslotArg`], and the serde and schemars forms of
//! [`PciSpec`], all checked as strictly as [`PciSpec::parse_strict`].

use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::name::check_name;
use super::strict::{check_func_all, check_vslot_text, VSLOT_ZERO};
use super::{Device, PciSpec, RdmPolicy, SpecError, MAX_VSLOT};
use crate::bdf::BdfPattern;

/// A device spec as a module argument: a PCI_SPEC_STRING in xl's grammar or
/// an object with the same fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SpecArg {
    /// A PCI_SPEC_STRING as in xl's `pci = [...]` and `xl pci-attach`,
    /// e.g. `07:00.0@8,permissive=1` or `name=gpu`. Forms that xl would read
    /// differently from how they look (`permissive=yes`, a parameter given
    /// twice, ...) are refused with an explanation.
    Text(String),
    /// The same as an object.
    Object(PciSpecObject),
}

impl<'de> Deserialize<'de> for SpecArg {
    // By hand rather than `untagged`, so that a wrong object field gets its
    // own message instead of "data did not match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpecArg, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(SpecArg::Text(s)),
            v @ serde_json::Value::Object(_) => PciSpecObject::deserialize(v)
                .map(SpecArg::Object)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a PCI device spec must be a string or an object, not {other}"
            ))),
        }
    }
}

impl SpecArg {
    /// The spec this argument gives: strings through
    /// [`PciSpec::parse_strict`], objects through [`PciSpecObject::to_spec`].
    pub fn to_spec(&self) -> Result<PciSpec, SpecError> {
        match self {
            SpecArg::Text(s) => PciSpec::parse_strict(s),
            SpecArg::Object(o) => o.to_spec(),
        }
    }

    /// [`SpecArg::to_spec`], for a device to attach or to list: function
    /// `*` also needs a vslot, which libxl demands when it adds the device
    /// ("Must specify a v-slot for multi-function devices"). Removing
    /// `BB:DD.*` needs none.
    pub fn to_spec_to_add(&self) -> Result<PciSpec, SpecError> {
        let spec = self.to_spec()?;
        check_func_all(&spec).map_err(|problem| SpecError::Refused {
            input: match self {
                SpecArg::Text(s) => s.clone(),
                SpecArg::Object(o) => serde_json::to_string(o).unwrap_or_default(),
            },
            problem,
        })?;
        Ok(spec)
    }
}

/// A PCI device spec as an object. Exactly one of `bdf` and `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PciSpecObject {
    /// Host PCI address `[DDDD:]BB:DD.F` in hex, e.g. `0000:07:00.0`; the
    /// function may be `*` for all functions of the device (then `vslot`
    /// is required, except to remove it).
    // A String, not a BdfPattern, so that a bad value gets to_spec()'s
    // explanation; the schema still shows the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BdfPattern>")]
    pub bdf: Option<String>,
    /// Guest slot (device number the guest sees, bus 0), 1 to 31. A number
    /// is taken as is; a string is hex, as xl reads it (`"1f"`). Omit it to
    /// let libxl choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vslot: Option<VslotArg>,
    /// Allow the guest to write all of the device's PCI config space
    /// (xl's `permissive`). Use with caution. Unset: the config's
    /// `pci_permissive`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissive: Option<bool>,
    /// Turn on MSI-INTx translation (xl's `msitranslate`). Unset: the
    /// config's `pci_msitranslate`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msitranslate: Option<bool>,
    /// Let xl make the device assignable itself if it is not (xl's
    /// `seize`): it will take a device dom0 is using without asking.
    /// Unset: the config's `pci_seize`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seize: Option<bool>,
    /// HVM only: let the guest set the device's D0-D3hot power states (xl's
    /// `power_mgmt`). Unset: the config's `pci_power_mgmt`, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_mgmt: Option<bool>,
    /// HVM/x86 only: reserved device memory policy for this device,
    /// `strict` or `relaxed`. Unset: the config's `rdm` policy, else strict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdm_policy: Option<RdmPolicy>,
    /// The name the device was made assignable with (`xl
    /// pci-assignable-add -n NAME`), instead of `bdf`: 1 to 64 printable
    /// characters, without blanks or commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A vslot as an argument: a number, or a string of hex digits as xl reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum VslotArg {
    /// The slot number itself, 1 to 31.
    Number(#[schemars(range(min = 1, max = 31))] u64),
    /// Hex digits, as in xl's `@1f` or `vslot=1f`.
    Hex(#[schemars(regex(pattern = r"^[0-9a-fA-F]{1,2}$"))] String),
}

impl<'de> Deserialize<'de> for VslotArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<VslotArg, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(VslotArg::Hex(s)),
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(VslotArg::Number)
                .ok_or_else(|| D::Error::custom(format!("vslot must be 1 to 31, not {n}"))),
            other => Err(D::Error::custom(format!(
                "vslot must be a number or a hex string, not {other}"
            ))),
        }
    }
}

impl PciSpecObject {
    /// Checks the object as [`PciSpec::parse_strict`] checks a string.
    pub fn to_spec(&self) -> Result<PciSpec, SpecError> {
        let input = serde_json::to_string(self).unwrap_or_default();
        let refuse = |problem: String| SpecError::Refused {
            input: input.clone(),
            problem,
        };
        let device = match (&self.bdf, &self.name) {
            (Some(b), None) => Device::Bdf(BdfPattern::parse(b)?),
            (None, Some(n)) => {
                check_name(n).map_err(&refuse)?;
                Device::Name(n.clone())
            }
            (Some(_), Some(_)) => return Err(SpecError::BdfAndName { input }),
            (None, None) => return Err(SpecError::NoDevice { input }),
        };
        let vslot = match &self.vslot {
            None => None,
            Some(VslotArg::Hex(text)) => {
                check_vslot_text(text, &format!("vslot={text}")).map_err(&refuse)?;
                u8::from_str_radix(text, 16).ok()
            }
            Some(VslotArg::Number(0)) => return Err(refuse(VSLOT_ZERO.into())),
            Some(VslotArg::Number(n)) => match u8::try_from(*n) {
                Ok(v) if v <= MAX_VSLOT => Some(v),
                _ => {
                    return Err(SpecError::BadVslot {
                        input,
                        value: n.to_string(),
                        problem: "the slot must be 1 to 31 (1f)".into(),
                    })
                }
            },
        };
        if self.rdm_policy == Some(RdmPolicy::Invalid) {
            return Err(refuse(
                "rdm_policy must be strict or relaxed, or left out".into(),
            ));
        }
        let spec = PciSpec {
            device,
            vslot,
            permissive: self.permissive,
            msitranslate: self.msitranslate,
            seize: self.seize,
            power_mgmt: self.power_mgmt,
            rdm_policy: self.rdm_policy,
        };
        Ok(spec)
    }
}

impl From<PciSpec> for PciSpecObject {
    fn from(spec: PciSpec) -> PciSpecObject {
        let (bdf, name) = match spec.device {
            Device::Bdf(p) => (Some(p.to_string()), None),
            Device::Name(n) => (None, Some(n)),
        };
        PciSpecObject {
            bdf,
            vslot: spec.vslot.map(|v| VslotArg::Number(v.into())),
            permissive: spec.permissive,
            msitranslate: spec.msitranslate,
            seize: spec.seize,
            power_mgmt: spec.power_mgmt,
            rdm_policy: spec.rdm_policy,
            name,
        }
    }
}

impl TryFrom<PciSpecObject> for PciSpec {
    type Error = SpecError;
    fn try_from(o: PciSpecObject) -> Result<PciSpec, SpecError> {
        o.to_spec()
    }
}

impl JsonSchema for PciSpec {
    fn schema_name() -> String {
        PciSpecObject::schema_name()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        PciSpecObject::json_schema(gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_arg_forms() {
        let text: SpecArg = serde_json::from_str(r#""07:00.0@8,seize=1""#).unwrap();
        let object: SpecArg =
            serde_json::from_str(r#"{"bdf":"0000:07:00.0","vslot":8,"seize":true}"#).unwrap();
        let hex: SpecArg =
            serde_json::from_str(r#"{"bdf":"07:00.0","vslot":"08","seize":true}"#).unwrap();
        assert_eq!(text.to_spec(), object.to_spec());
        assert_eq!(hex.to_spec(), object.to_spec());
        let spec = object.to_spec().unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"bdf":"0000:07:00.0","vslot":8,"seize":true})
        );
        assert_eq!(
            serde_json::from_value::<PciSpec>(serde_json::to_value(&spec).unwrap()).unwrap(),
            spec
        );
        for (bad, msg) in [
            (r#"{"bdf":"07:00.0","name":"x"}"#, "both"),
            (r#"{}"#, "names no device"),
            (r#"{"bdf":"07:00.0","vslot":0}"#, "vslot 0"),
            (r#"{"bdf":"07:00.0","vslot":32}"#, "1 to 31"),
            (r#"{"name":"a,b"}"#, "ends name= in a PCI spec"),
            (
                r#"{"bdf":"07:00.0","rdm_policy":"invalid"}"#,
                "strict or relaxed",
            ),
            (r#"{"bdf":"07:0x1f.0"}"#, "0000:07:1f.0"),
            (r#""07:00.0,permissive=yes""#, "atoi"),
        ] {
            let arg: SpecArg = serde_json::from_str(bad).unwrap();
            let e = arg.to_spec().expect_err(bad);
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
        // `*` without a vslot: fine to remove, refused to add.
        let all: SpecArg = serde_json::from_str(r#"{"bdf":"07:00.*"}"#).unwrap();
        assert!(all.to_spec().is_ok());
        let e = all.to_spec_to_add().unwrap_err();
        assert!(e.to_string().contains("needs a vslot"), "{e}");
        let e = SpecArg::Text("07:00.*".into())
            .to_spec_to_add()
            .unwrap_err();
        assert!(e.to_string().starts_with("\"07:00.*\": "), "{e}");
        let e =
            serde_json::from_str::<SpecArg>(r#"{"bdf":"07:00.0","permisive":true}"#).unwrap_err();
        assert!(e.to_string().contains("permisive"), "{e}");
        assert!(serde_json::from_str::<SpecArg>("7").is_err());
    }
}
