//! [`PciSpec::parse_strict`]: xl's grammar minus what xl would read
//! differently from how it looks, each refusal saying what xl would make of
//! the text and what to write instead. The checks are shared with
//! [`PciSpecObject::to_spec`](super::PciSpecObject::to_spec).

use std::collections::BTreeSet;

use super::name::check_name;
use super::xl::{scan_vslot, xl_atoi};
use super::{Device, PciSpec, RdmPolicy, SpecError};
use crate::bdf::{scan_plain, scan_xl, Func, XlBdfError};

/// The keys of the spec grammar, in canonical order.
const KEYS: [&str; 8] = [
    "bdf",
    "vslot",
    "permissive",
    "msitranslate",
    "seize",
    "power_mgmt",
    "rdm_policy",
    "name",
];

impl PciSpec {
    /// Parses a spec given by a user: xl's grammar, but refusing with
    /// [`SpecError::Refused`] (saying what xl would make of it and what to
    /// write instead) what xl would read differently from how it looks:
    ///
    /// - a NUL byte (xl stops reading there);
    /// - a BDF or vslot not written as plain hex digits (`07: 00.0`,
    ///   `07:0x1f.0`, `+1`, wrap-around, more digits than `DDDD:BB:DD.F`),
    ///   or followed by text xl ignores (`bdf=07:00.0junk`, `vslot=3zz`);
    /// - vslot 0 (libxl reads vdevfn 0 as "pick a slot");
    /// - a boolean option other than `0` or `1` (xl uses `atoi()`);
    /// - a parameter given twice (xl keeps the last; `@N` counts as
    ///   `vslot`, the positional BDF as `bdf`);
    /// - `rdm_policy=invalid`;
    /// - a name no device can have (see [`check_name`]).
    ///
    /// Function `*` without a vslot is accepted here: removing it needs no
    /// slot; [`crate::spec::SpecArg::to_spec_to_add`] refuses it for adding.
    ///
    /// Anything xl itself rejects is rejected with the same error as
    /// [`PciSpec::parse_xl`].
    pub fn parse_strict(input: &str) -> Result<PciSpec, SpecError> {
        let refuse = |problem: String| SpecError::Refused {
            input: input.to_string(),
            problem,
        };
        if input.contains('\0') {
            return Err(refuse(
                "contains a NUL byte; xl stops reading there: remove it".into(),
            ));
        }
        let spec = PciSpec::parse_xl(input)?;

        // xl accepted the text, so every item after the first is KEY=VALUE
        // with a known key, and the first item is a positional BDF exactly
        // when it has no `=`.
        let body = input.strip_suffix(',').unwrap_or(input);
        let mut seen = BTreeSet::new();
        let mut once = |key: &'static str| {
            if seen.insert(key) {
                Ok(())
            } else {
                Err(refuse(format!(
                    "{key} is given more than once; xl silently keeps the last one: give it once"
                )))
            }
        };
        for (index, item) in body.split(',').enumerate() {
            let Some((key, value)) = item.split_once('=') else {
                if index != 0 {
                    return Err(refuse(format!("{item:?} is not KEY=VALUE")));
                }
                let (bdf_text, vslot_text) = match item.split_once('@') {
                    Some((b, v)) => (b, Some(v)),
                    None => (item, None),
                };
                check_bdf_text(bdf_text).map_err(&refuse)?;
                once("bdf")?;
                if let Some(v) = vslot_text {
                    check_vslot_text(v, &format!("@{v}")).map_err(&refuse)?;
                    once("vslot")?;
                }
                continue;
            };
            let key = KEYS
                .into_iter()
                .find(|k| *k == key)
                .ok_or_else(|| refuse(format!("unknown option {key:?}")))?;
            once(key)?;
            match key {
                "bdf" => check_bdf_text(value).map_err(&refuse)?,
                "vslot" => check_vslot_text(value, item).map_err(&refuse)?,
                "rdm_policy" => {
                    if RdmPolicy::from_xl(value) == Some(RdmPolicy::Invalid) {
                        return Err(refuse(format!(
                            "{item}: xl passes libxl's 'invalid' (-1) policy, which libxl \
                             replaces with strict (or xl with the config's rdm policy): \
                             write rdm_policy=strict or rdm_policy=relaxed, or leave it out"
                        )));
                    }
                }
                "name" => check_name(value).map_err(&refuse)?,
                _ => {
                    if value != "0" && value != "1" {
                        let read = xl_atoi(value);
                        let (word, digit) = if read != 0 { ("on", 1) } else { ("off", 0) };
                        return Err(refuse(format!(
                            "{item}: xl reads the value with atoi() as {read} ({word}); \
                             write {key}={digit} (or {key}={})",
                            1 - digit
                        )));
                    }
                }
            }
        }
        Ok(spec)
    }
}

pub(super) const VSLOT_ZERO: &str =
    "vslot 0 is not a slot: libxl reads vdevfn 0 as \"not set\" and \
     picks a slot itself: leave vslot out, or give 1 to 1f";

/// Strict BDF text in a spec: plain hex digits only, nothing after.
fn check_bdf_text(text: &str) -> Result<(), String> {
    match scan_plain(text.as_bytes()) {
        Some((_, end)) if end == text.len() => Ok(()),
        _ => match scan_xl(text.as_bytes(), 0) {
            Ok((p, _)) => Err(format!("xl reads the BDF {text:?} as {p}: write {p}")),
            Err(XlBdfError::Invalid(problem) | XlBdfError::Undefined(problem)) => {
                Err(format!("invalid BDF {text:?}: {problem}"))
            }
        },
    }
}

/// Strict vslot text: one or two hex digits, 1 to `1f`.
pub(super) fn check_vslot_text(text: &str, shown: &str) -> Result<(), String> {
    let plain = !text.is_empty() && text.len() <= 2 && text.bytes().all(|c| c.is_ascii_hexdigit());
    match scan_vslot(text.as_bytes(), 0) {
        Ok((0, _)) if plain => Err(VSLOT_ZERO.into()),
        Ok(_) if plain => Ok(()),
        Ok((v, _)) => Err(format!(
            "xl reads {shown} as slot {v:02x}{}: write {v:02x}",
            if v == 0 { " (\"not set\")" } else { "" }
        )),
        Err(problem) => Err(format!("invalid vslot {text:?}: {problem}")),
    }
}

/// libxl refuses function `*` without a vslot (`device_pci_add_stubdom_done()`
/// in `libxl_pci.c`: "Must specify a v-slot for multi-function devices").
pub(super) fn check_func_all(spec: &PciSpec) -> Result<(), String> {
    match &spec.device {
        Device::Bdf(p) if p.func == Func::All && spec.vslot.is_none() => Err(format!(
            "{p} (all functions) needs a vslot: libxl refuses it otherwise \
             (\"Must specify a v-slot for multi-function devices\"): add @SLOT"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// parse_strict accepts with this canonical form.
    macro_rules! strict_ok {
        ($input:expr => $canonical:expr) => {{
            let spec = PciSpec::parse_strict($input)
                .unwrap_or_else(|e| panic!("{:?} should pass strict: {e}", $input));
            assert_eq!(spec.to_string(), $canonical);
        }};
    }
    /// xl accepts but parse_strict refuses; the message contains the text.
    macro_rules! refused {
        ($input:expr => $msg:expr) => {{
            assert!(PciSpec::parse_xl($input).is_ok(), "xl accepts {:?}", $input);
            let e = PciSpec::parse_strict($input).expect_err($input);
            assert!(
                matches!(e, SpecError::Refused { .. }),
                "{:?}: {e:?}",
                $input
            );
            assert!(e.to_string().contains($msg), "{:?}: {e}", $input);
        }};
    }

    #[test]
    fn strict_accepts_clean_forms() {
        strict_ok!("07:00.0" => "0000:07:00.0");
        strict_ok!("0000:07:1F.7@1f,permissive=1,seize=0" => "0000:07:1f.7@1f,permissive=1,seize=0");
        strict_ok!("bdf=07:00.0,vslot=8,rdm_policy=Relaxed," => "0000:07:00.0@08,rdm_policy=relaxed");
        strict_ok!("07:00.*@8" => "0000:07:00.*@08");
        strict_ok!("name=gpu,power_mgmt=1" => "name=gpu,power_mgmt=1");
        strict_ok!("name=a=b" => "name=a=b");
    }

    #[test]
    fn strict_refuses_surprises() {
        refused!("07:00.0,permissive=yes" => "atoi() as 0 (off); write permissive=0");
        refused!("07:00.0,permissive=2" => "atoi() as 2 (on); write permissive=1");
        refused!("07:00.0,seize=" => "as 0 (off)");
        refused!("07:00.0,msitranslate= 1" => "as 1 (on)");
        refused!("07: 1f.3" => "xl reads the BDF \"07: 1f.3\" as 0000:07:1f.3");
        refused!("07:0x1f.0" => "as 0000:07:1f.0");
        refused!("07:100000000.0" => "as 0000:07:00.0");
        refused!("00000:07:00.0" => "as 0000:07:00.0");
        refused!("bdf=07:00.1junk" => "as 0000:07:00.1");
        refused!("07:00.0,vslot=3zz" => "xl reads vslot=3zz as slot 03: write 03");
        refused!("07:00.0@0x1f" => "xl reads @0x1f as slot 1f");
        refused!("07:00.0@0" => "vslot 0 is not a slot");
        refused!("07:00.0,vslot=000" => "\"not set\"");
        refused!("07:00.0,bdf=08:00.0" => "bdf is given more than once");
        refused!("07:00.0@3,vslot=4" => "vslot is given more than once");
        refused!("07:00.0,seize=1,seize=1" => "seize is given more than once");
        refused!("07:00.0,rdm_policy=invalid" => "rdm_policy=strict or rdm_policy=relaxed");
        refused!("name=" => "name is empty");
        refused!("name= gpu" => "without blanks");
        refused!("name=two words" => "without blanks");
        strict_ok!("07:00.*" => "0000:07:00.*");
        refused!("07:00.0\0,seize=1" => "NUL");
    }

    #[test]
    fn strict_passes_xl_errors_through() {
        assert_eq!(
            PciSpec::parse_strict("07:00.8"),
            PciSpec::parse_xl("07:00.8").map(|_| unreachable!())
        );
    }
}
