//! [`PciSpec::parse_xl`]: exactly what xl 4.17's `xlu_pci_parse_spec_string()`
//! reads, sloppy forms included, with the `sscanf("%x")` vslot reader and
//! glibc `atoi()` it relies on.

use super::{Device, PciSpec, RdmPolicy, SpecError, MAX_VSLOT};
use crate::bdf::{c_isspace, c_str, scan_xl, BdfError, BdfPattern, Scanf, XlBdfError};

impl PciSpec {
    /// Parses exactly what xl 4.17's `xlu_pci_parse_spec_string()` accepts,
    /// and reads the values xl reads.
    ///
    /// Rejections name the problem; their xl return code is
    /// [`SpecError::xl_rc`]. The input is read as a C string: it ends at the
    /// first NUL byte. Inputs on which xl's behaviour is undefined (a BDF
    /// without the `.` before the function) are rejected with
    /// [`BdfError::XlUndefined`].
    pub fn parse_xl(input: &str) -> Result<PciSpec, SpecError> {
        let text = c_str(input);
        let b = text.as_bytes();
        let owned = || input.to_string();
        let mut bdf: Option<BdfPattern> = None;
        let mut name: Option<String> = None;
        let mut vslot: u32 = 0;
        let mut spec = PciSpec::new(Device::Name(String::new()));
        let mut pos = 0;

        // xl first tries a positional BDF; if that fails, it parses the whole
        // text as key=value items, so the BDF's own error only matters when
        // the items fail too.
        let mut positional_problem = None;
        match scan_xl(b, 0) {
            Ok((p, end)) => {
                bdf = Some(p);
                pos = end;
                if b.get(pos) == Some(&b'@') {
                    pos += 1;
                    let (v, end) = scan_vslot(b, pos).map_err(|problem| SpecError::BadVslot {
                        input: owned(),
                        value: text[pos..].to_string(),
                        problem,
                    })?;
                    vslot = v;
                    pos = end;
                }
                match b.get(pos) {
                    Some(b',') => pos += 1,
                    None => {}
                    Some(_) => {
                        return Err(SpecError::Trailing {
                            input: owned(),
                            rest: text[pos..].to_string(),
                        })
                    }
                }
            }
            Err(XlBdfError::Undefined(problem)) => {
                return Err(SpecError::Bdf(BdfError::XlUndefined {
                    input: owned(),
                    problem,
                }))
            }
            Err(XlBdfError::Invalid(problem)) => positional_problem = Some(problem),
        }

        let mut first = true;
        // `parse_key_val()`: the key runs to the first `=` (commas included),
        // the value to the next `,`; one `,` after it is skipped, so a
        // trailing comma is fine.
        while pos < b.len() {
            let bad_bdf = |problem: String| {
                SpecError::Bdf(BdfError::Invalid {
                    input: owned(),
                    problem,
                })
            };
            let Some(eq) = text[pos..].find('=') else {
                return Err(match positional_problem.take().filter(|_| first) {
                    Some(problem) => bad_bdf(problem),
                    None => SpecError::NotKeyValue {
                        input: owned(),
                        item: text[pos..].to_string(),
                    },
                });
            };
            let key = &text[pos..pos + eq];
            let value_start = pos + eq + 1;
            let value_end = text[value_start..]
                .find(',')
                .map_or(text.len(), |i| value_start + i);
            let value = &text[value_start..value_end];
            pos = if value_end < text.len() {
                value_end + 1
            } else {
                value_end
            };

            match key {
                // `parse_bdf(pci, val, NULL)`: no end pointer, so text after
                // the function is ignored.
                "bdf" => match scan_xl(value.as_bytes(), 0) {
                    Ok((p, _)) => bdf = Some(p),
                    Err(XlBdfError::Invalid(problem)) => return Err(bad_bdf(problem)),
                    Err(XlBdfError::Undefined(problem)) => {
                        return Err(SpecError::Bdf(BdfError::XlUndefined {
                            input: owned(),
                            problem,
                        }))
                    }
                },
                // `parse_vslot(&pci->vdevfn, val, NULL)`: likewise.
                "vslot" => {
                    vslot = scan_vslot(value.as_bytes(), 0)
                        .map_err(|problem| SpecError::BadVslot {
                            input: owned(),
                            value: value.to_string(),
                            problem,
                        })?
                        .0
                }
                // `pci->permissive = atoi(val)`, stored in a C bool.
                "permissive" => spec.permissive = Some(xl_atoi(value) != 0),
                "msitranslate" => spec.msitranslate = Some(xl_atoi(value) != 0),
                "seize" => spec.seize = Some(xl_atoi(value) != 0),
                "power_mgmt" => spec.power_mgmt = Some(xl_atoi(value) != 0),
                "rdm_policy" => {
                    spec.rdm_policy =
                        Some(
                            RdmPolicy::from_xl(value).ok_or_else(|| SpecError::BadRdmPolicy {
                                input: owned(),
                                value: value.to_string(),
                            })?,
                        )
                }
                "name" => name = Some(value.to_string()),
                _ => {
                    return Err(match positional_problem.take().filter(|_| first) {
                        Some(problem) => bad_bdf(problem),
                        None => SpecError::UnknownOption {
                            input: owned(),
                            key: key.to_string(),
                        },
                    })
                }
            }
            first = false;
        }

        spec.device = match (bdf, name) {
            (Some(p), None) => Device::Bdf(p),
            (None, Some(n)) => Device::Name(n),
            (Some(_), Some(_)) => return Err(SpecError::BdfAndName { input: owned() }),
            (None, None) => return Err(SpecError::NoDevice { input: owned() }),
        };
        // `scan_vslot` checked the range: the value fits.
        spec.vslot = u8::try_from(vslot).ok().filter(|v| *v != 0);
        Ok(spec)
    }
}

/// `parse_vslot()`: one `%x` conversion, at most `0x1f`; returns the slot
/// and the index after it.
pub(super) fn scan_vslot(b: &[u8], start: usize) -> Result<(u32, usize), String> {
    let mut sc = Scanf::new(b, start);
    match sc.hex() {
        None => Err("expected a hex slot number".into()),
        Some(v) if v > MAX_VSLOT.into() => Err(format!("slot {v:x} is above {MAX_VSLOT:x}")),
        Some(v) => Ok((v, sc.pos)),
    }
}

/// glibc's `atoi()`: `(int) strtol(s, NULL, 10)`. Blanks, a sign and
/// decimal digits; the long saturates, then keeps its low 32 bits.
pub(super) fn xl_atoi(s: &str) -> i32 {
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|c| c_isspace(**c)).count();
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let limit = i128::from(i64::MAX) + 1;
    let mut value: i128 = 0;
    for c in b[i..].iter().take_while(|c| c.is_ascii_digit()) {
        value = (value * 10 + i128::from(c - b'0')).min(limit);
    }
    let value = if negative { -value } else { value };
    let long = value.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    // `(int)` of a long: its low 32 bits, as gcc does.
    long as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{xl_oracle_json, ERROR_FAIL, ERROR_INVAL};

    /// parse_xl accepts, prints this canonical form, and re-reads it to the same value.
    macro_rules! ok {
        ($input:expr => $canonical:expr) => {{
            let spec = PciSpec::parse_xl($input)
                .unwrap_or_else(|e| panic!("{:?} should parse: {e}", $input));
            assert_eq!(
                spec.to_string(),
                $canonical,
                "canonical form of {:?}",
                $input
            );
            assert_eq!(
                PciSpec::parse_xl(&spec.to_string()).as_ref(),
                Ok(&spec),
                "round trip of {:?}",
                $input
            );
        }};
    }
    /// parse_xl rejects; the message contains the text.
    macro_rules! err {
        ($input:expr => $msg:expr) => {{
            let e = PciSpec::parse_xl($input).expect_err($input);
            assert!(e.to_string().contains($msg), "{:?}: {e}", $input);
            assert!(PciSpec::parse_strict($input).is_err());
        }};
    }

    #[test]
    fn positional_bdf() {
        ok!("07:00.0" => "0000:07:00.0");
        ok!("0000:07:00.0" => "0000:07:00.0");
        ok!("ABCD:Ef:1F.7" => "abcd:ef:1f.7");
        ok!("7:0.1" => "0000:07:00.1");
        ok!("00007:000.0" => "0000:07:00.0");
        ok!("ffff:ff:1f.7" => "ffff:ff:1f.7");
        ok!("07:00.*@3" => "0000:07:00.*@03");
        ok!("07:00.0," => "0000:07:00.0");
        // sscanf("%x") leniency, each checked against libxlutil 4.17.
        ok!("07: 1f.3" => "0000:07:1f.3");
        ok!("07:0x1f.0" => "0000:07:1f.0");
        ok!("07:0x.0" => "0000:07:00.0");
        ok!("07:00.0x1" => "0000:07:00.1");
        ok!("07:+1.0" => "0000:07:01.0");
        ok!("07:-0.0" => "0000:07:00.0");
        ok!("07:00.\t5" => "0000:07:00.5");
        ok!("07:00.\u{b}5" => "0000:07:00.5");
        // strtoul() then a cast to unsigned int: 0x100000000 wraps to 0.
        ok!("07:100000000.0" => "0000:07:00.0");
        ok!("100000000:07:00.0" => "0000:07:00.0");
        ok!("07:-100000000.0" => "0000:07:00.0");
        // Text after NUL is not seen by C.
        ok!("07:00.0\0garbage" => "0000:07:00.0");
    }

    #[test]
    fn positional_bdf_rejected() {
        err!("" => "names no device");
        err!("07:00.8" => "function 8 is above 7");
        err!("07:20.0" => "device 20 is above 1f");
        err!("07:20" => "device 20 is above 1f");
        err!("100:00.0" => "bus 100 is above ff");
        err!("10000:07:00.0" => "domain 10000 is above ffff");
        err!("07:-1.0" => "device ffffffff is above 1f");
        err!("07:00.-1" => "function ffffffff is above 7");
        err!("0700.0" => "no ':'");
        err!(" 07:00.0" => "no ':'");
        err!("0:0:0:0.0" => "3 ':'");
        err!("07::00.0" => "no hex number for the bus");
        err!("07 :00.0" => "no ':'");
        err!("07:.0" => "no hex number for the device");
        err!("07:00." => "no function");
        err!("07:00.x" => "no function");
        err!("07:00.0 " => "unexpected \" \" after the BDF");
        err!("07:00.0;" => "after the BDF");
        err!("07:00.0:1" => "after the BDF");
        err!("07:00.0@" => "invalid vslot");
        err!("07:00.0@20" => "slot 20 is above 1f");
        err!("07:00.0@1 " => "after the BDF");
        err!("07:00.0@1@2" => "after the BDF");
        err!("07:00.9,permissive=1" => "function 9 is above 7");
        err!("-0x-1:00.0" => "no ':'");
        err!("0x" => "no ':'");
    }

    #[test]
    fn undefined_in_xl() {
        // parse_bdf() checks the sscanf count but not that %n was reached.
        for input in [
            "07:00",
            "07:00,permissive=1",
            "0000:07:00",
            "07:1 2.0",
            "0000: 07:00.0",
            "bdf=07:00",
        ] {
            let e = PciSpec::parse_xl(input).expect_err(input);
            assert!(e.is_xl_undefined(), "{input}: {e:?}");
            assert_eq!(xl_oracle_json(input), None);
        }
    }

    #[test]
    fn key_value_items() {
        ok!("bdf=07:00.0" => "0000:07:00.0");
        ok!("bdf=36:00.0,vslot=1f,seize=1" => "0000:36:00.0@1f,seize=1");
        ok!("36:00.0,vslot=10,seize=1" => "0000:36:00.0@10,seize=1");
        ok!("07:00.0,rdm_policy=relaxed,power_mgmt=1,seize=0,msitranslate=1,permissive=1"
            => "0000:07:00.0,permissive=1,msitranslate=1,seize=0,power_mgmt=1,rdm_policy=relaxed");
        // No end pointer for bdf= and vslot=: trailing text is ignored.
        ok!("bdf=07:00.1junk,vslot=3zz" => "0000:07:00.1@03");
        ok!("bdf=07:00.0 ,vslot= 0x1f" => "0000:07:00.0@1f");
        // The last of a repeated parameter wins.
        ok!("07:00.0,bdf=08:00.1" => "0000:08:00.1");
        ok!("07:00.*@3,bdf=07:00.2" => "0000:07:00.2@03");
        ok!("07:00.0@4,vslot=5" => "0000:07:00.0@05");
        ok!("07:00.0,permissive=1,permissive=0" => "0000:07:00.0,permissive=0");
        // vslot 0 is vdevfn 0: "not set" to libxl.
        ok!("07:00.0@0" => "0000:07:00.0");
        ok!("07:00.0,vslot=00" => "0000:07:00.0");
        // Value may hold '='.
        ok!("name=a=b" => "name=a=b");
        ok!("name=gpu,vslot=1f,seize=1" => "name=gpu,vslot=1f,seize=1");
        ok!("vslot=2,name=gpu," => "name=gpu,vslot=02");
        ok!("name=" => "name=");
        ok!("name= spaced " => "name= spaced ");
        ok!("name=x,name=y" => "name=y");
    }

    #[test]
    fn booleans_are_atoi() {
        ok!("07:00.0,permissive=yes" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=true" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=0x1" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=2" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive=-1" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive= +1x" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,seize=1 " => "0000:07:00.0,seize=1");
        // (int) of a saturated long: LONG_MAX is -1 (on), LONG_MIN is 0 (off).
        ok!("07:00.0,permissive=4294967296" => "0000:07:00.0,permissive=0");
        ok!("07:00.0,permissive=99999999999999999999" => "0000:07:00.0,permissive=1");
        ok!("07:00.0,permissive=-99999999999999999999" => "0000:07:00.0,permissive=0");
        assert_eq!(xl_atoi("4294967297"), 1);
        assert_eq!(xl_atoi("-2147483649"), 2147483647);
    }

    #[test]
    fn rdm_policy() {
        ok!("07:00.0,rdm_policy=strict" => "0000:07:00.0,rdm_policy=strict");
        ok!("07:00.0,rdm_policy=Relaxed" => "0000:07:00.0,rdm_policy=relaxed");
        ok!("07:00.0,rdm_policy=INVALID" => "0000:07:00.0,rdm_policy=invalid");
        err!("07:00.0,rdm_policy=bogus" => "Unknown RDM policy");
        err!("07:00.0,rdm_policy=" => "Unknown RDM policy");
        err!("07:00.0,rdm_policy= strict" => "Unknown RDM policy");
        assert_eq!(
            PciSpec::parse_xl("07:00.0,rdm_policy=x")
                .unwrap_err()
                .xl_rc(),
            Some(ERROR_FAIL)
        );
    }

    #[test]
    fn items_rejected() {
        err!("07:00.0,,permissive=1" => "Unknown PCI_SPEC_STRING option: \",permissive\"");
        err!("07:00.0,," => "\",\" is not KEY=VALUE");
        err!("07:00.0,20" => "\"20\" is not KEY=VALUE");
        err!("07:00.0,Permissive=1" => "Unknown PCI_SPEC_STRING option");
        err!("07:00.0,permissive =1" => "Unknown PCI_SPEC_STRING option");
        err!("07:00.0,=1" => "Unknown PCI_SPEC_STRING option: \"\"");
        err!("07:00.0,foo=1" => "Unknown PCI_SPEC_STRING option: \"foo\"");
        err!("permissive=1" => "names no device");
        err!("07:00.0,name=gpu" => "both a BDF and a name");
        err!("name=gpu,bdf=07:00.0" => "both a BDF and a name");
        err!("bdf=" => "no ':'");
        err!("bdf=07:00.8" => "function 8");
        err!("07:00.0,vslot=" => "invalid vslot");
        err!("07:00.0,vslot=20" => "slot 20 is above 1f");
        err!("07:00.0,vslot=x" => "invalid vslot");
        // The three examples of xl-pci-configuration(5): vslot 0x20 > 0x1f.
        err!("36:00.0@20,seize=1" => "slot 20 is above 1f");
        err!("36:00.0,vslot=20,seize=1" => "slot 20 is above 1f");
        err!("bdf=36:00.0,vslot=20,seize=1" => "slot 20 is above 1f");
        assert_eq!(
            PciSpec::parse_xl("foo").unwrap_err().xl_rc(),
            Some(ERROR_INVAL)
        );
    }
}
