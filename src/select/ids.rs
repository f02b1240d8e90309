//! The text forms of a selector's ids: [`HexId`] and [`ClassPrefix`],
//! hex strings only (a number is refused: YAML reads unquoted ids as
//! decimal).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A 16-bit PCI id given as hex text (`"8086"`, `"0x8086"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct HexId(
    #[schemars(with = "String", regex(pattern = r"^(0[xX])?[0-9a-fA-F]{1,4}$"))] pub u16,
);

/// A class code prefix given as hex text: 2 digits (base class, `02`
/// any network controller), 4 (with the subclass, `0300` VGA) or 6 (with
/// the programming interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub struct ClassPrefix {
    /// The prefix's value.
    #[schemars(with = "String", regex(pattern = r"^(0[xX])?([0-9a-fA-F]{2}){1,3}$"))]
    value: u32,
    /// How many hex digits were given: 2, 4 or 6.
    #[schemars(skip)]
    digits: u8,
}

impl ClassPrefix {
    /// Whether `class` (24 bits) begins with the prefix.
    pub(super) fn matches(self, class: u32) -> bool {
        class >> (24 - 4 * u32::from(self.digits)) == self.value
    }
}

impl fmt::Display for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl Serialize for HexId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Serialize for ClassPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let width = usize::from(self.digits);
        s.serialize_str(&format!("{:0width$x}", self.value))
    }
}

/// The hex digits of `text`, without a `0x`.
fn hex_digits(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t)
}

/// A number where hex text is wanted: refused, since YAML reads `8086`
/// as decimal 8086 and `0x8086` as 32902, neither of which is what the
/// user wrote.
fn number_refused<E: serde::de::Error>(v: &Value, what: &str) -> E {
    E::custom(format!(
        "{what} {v} is a number: give the hex id as a quoted string (\"{v}\"), since YAML \
         reads unquoted ids as decimal numbers"
    ))
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => {
                let digits = hex_digits(&s);
                match u16::from_str_radix(digits, 16) {
                    Ok(v) if (1..=4).contains(&digits.len()) && !digits.starts_with('+') => {
                        Ok(HexId(v))
                    }
                    _ => Err(D::Error::custom(format!(
                        "{s:?} is not a 16-bit hex id (such as \"8086\")"
                    ))),
                }
            }
            v @ Value::Number(_) => Err(number_refused(&v, "id")),
            other => Err(D::Error::custom(format!(
                "an id must be a hex string, not {other}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for ClassPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => {
                let digits = hex_digits(&s);
                let ok = matches!(digits.len(), 2 | 4 | 6)
                    && digits.chars().all(|c| c.is_ascii_hexdigit());
                match u32::from_str_radix(digits, 16) {
                    Ok(value) if ok => Ok(ClassPrefix {
                        value,
                        // 2, 4 or 6.
                        digits: digits.len() as u8,
                    }),
                    _ => Err(D::Error::custom(format!(
                        "class {s:?} is not a hex class prefix of 2, 4 or 6 digits \
                         (\"02\" network controllers, \"0300\" VGA)"
                    ))),
                }
            }
            v @ Value::Number(_) => Err(number_refused(&v, "class")),
            other => Err(D::Error::custom(format!(
                "class must be a hex string, not {other}"
            ))),
        }
    }
}
