//! A BDF scanned as xl's C does it: `sscanf("%x")` (blanks skipped, a sign
//! and `0x` taken, 32 bits kept) in `parse_bdf()` of
//! `tools/libs/util/libxlu_pci.c`, and the strict scanner of the plain form.

use super::{BdfPattern, Func, MAX_DEV, MAX_DOMAIN, MAX_FUNC};

/// Cuts a text at its first NUL, as C sees a string.
pub(crate) fn c_str(input: &str) -> &str {
    match input.find('\0') {
        Some(i) => &input[..i],
        None => input,
    }
}

/// Why xl's `parse_bdf()` did not produce a BDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XlBdfError {
    /// xl returns `ERROR_INVAL`.
    Invalid(String),
    /// xl reads an uninitialised variable: its result is undefined.
    Undefined(String),
}

/// `isspace()` in the C locale (includes `\v`, unlike `is_ascii_whitespace`).
pub(crate) fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A cursor over bytes that reads the way glibc's `sscanf` does.
pub(crate) struct Scanf<'a> {
    b: &'a [u8],
    /// Index of the next unread byte.
    pub(crate) pos: usize,
}

impl<'a> Scanf<'a> {
    pub(crate) fn new(b: &'a [u8], pos: usize) -> Scanf<'a> {
        Scanf { b, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// One `%x` conversion into an `unsigned int`, as glibc does it: skip
    /// `isspace`, an optional sign, an optional `0x`/`0X` after a leading
    /// `0` (consumed even when no hex digit follows), then hex digits. The
    /// text is converted by `strtoul()` (64-bit: saturates at `ULONG_MAX`,
    /// a minus sign negates modulo 2^64) and stored truncated to 32 bits.
    /// `None` is a failed conversion (no digits).
    pub(crate) fn hex(&mut self) -> Option<u32> {
        while self.peek().is_some_and(c_isspace) {
            self.pos += 1;
        }
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let mut digits = false;
        if self.peek() == Some(b'0') {
            self.pos += 1;
            digits = true;
            if matches!(self.peek(), Some(b'x' | b'X')) {
                self.pos += 1;
            }
        }
        let mut value: u64 = 0;
        let mut overflow = false;
        while let Some(c) = self.peek() {
            let Some(d) = (c as char).to_digit(16) else {
                break;
            };
            digits = true;
            match value.checked_mul(16).and_then(|v| v.checked_add(d.into())) {
                Some(v) => value = v,
                None => overflow = true,
            }
            self.pos += 1;
        }
        if !digits {
            return None;
        }
        let value = if overflow {
            u64::MAX
        } else if negative {
            value.wrapping_neg()
        } else {
            value
        };
        // glibc stores `(unsigned int) num.ul`: the low 32 bits.
        Some(value as u32)
    }

    /// A literal character of the format: matches exactly, skips nothing.
    pub(crate) fn lit(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

/// Mirrors the static `parse_bdf()` of `libxlu_pci.c` (4.17) from `start`;
/// returns the pattern and the index just after it (xl's `*endp`).
///
/// xl first counts the `:` in the leading run of hex digits and colons: one
/// means `BB:DD.`, two `DDDD:BB:DD.`, anything else fails. It then scans
/// with `sscanf("%x:%x.%n")` (or the three-field form) and checks only the
/// count of conversions, so a missing `.` leaves `%n` unwritten and xl adds
/// an uninitialised `n` to its pointer: undefined behaviour, reported as
/// [`XlBdfError::Undefined`] (unless the range check, which comes first,
/// fails). The function is `*` or one `%x` conversion at most 7.
pub(crate) fn scan_xl(b: &[u8], start: usize) -> Result<(BdfPattern, usize), XlBdfError> {
    let shape = "expected [DDDD:]BB:DD.F with hex numbers";
    let colons = b[start.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_hexdigit() || **c == b':')
        .filter(|c| **c == b':')
        .count();
    let mut sc = Scanf::new(b, start);
    let number = |sc: &mut Scanf<'_>, what: &str| {
        sc.hex()
            .ok_or_else(|| XlBdfError::Invalid(format!("{shape}: no hex number for the {what}")))
    };
    let colon = |sc: &mut Scanf<'_>, after: &str| {
        if sc.lit(b':') {
            Ok(())
        } else {
            Err(XlBdfError::Invalid(format!(
                "{shape}: no ':' after the {after}"
            )))
        }
    };
    let (domain, bus, dev, dot) = match colons {
        1 => {
            let bus = number(&mut sc, "bus")?;
            colon(&mut sc, "bus")?;
            let dev = number(&mut sc, "device")?;
            (0, bus, dev, sc.lit(b'.'))
        }
        2 => {
            let domain = number(&mut sc, "domain")?;
            colon(&mut sc, "domain")?;
            let bus = number(&mut sc, "bus")?;
            colon(&mut sc, "bus")?;
            let dev = number(&mut sc, "device")?;
            (domain, bus, dev, sc.lit(b'.'))
        }
        0 => return Err(XlBdfError::Invalid(format!("{shape}: no ':'"))),
        n => {
            return Err(XlBdfError::Invalid(format!(
                "{shape}: {n} ':' before the function, at most 2"
            )))
        }
    };
    if domain > MAX_DOMAIN.into() {
        return Err(XlBdfError::Invalid(format!(
            "domain {domain:x} is above {MAX_DOMAIN:x}"
        )));
    }
    if bus > 0xff {
        return Err(XlBdfError::Invalid(format!("bus {bus:x} is above ff")));
    }
    if dev > MAX_DEV.into() {
        return Err(XlBdfError::Invalid(format!(
            "device {dev:x} is above {MAX_DEV:x}"
        )));
    }
    if !dot {
        return Err(XlBdfError::Undefined(format!(
            "{shape}: no '.' after the device; xl's parse_bdf() then uses an \
             uninitialised offset (undefined behaviour)"
        )));
    }
    let func = if sc.lit(b'*') {
        Func::All
    } else {
        match sc.hex() {
            None => {
                return Err(XlBdfError::Invalid(format!(
                    "{shape}: no function (0-7 or *) after the '.'"
                )))
            }
            Some(f) if f > MAX_FUNC.into() => {
                return Err(XlBdfError::Invalid(format!(
                    "function {f:x} is above {MAX_FUNC}"
                )))
            }
            // Checked against MAX_FUNC just above.
            Some(f) => Func::One(f as u8),
        }
    };
    // Ranges checked above: the casts cannot truncate.
    Ok((
        BdfPattern {
            domain: domain as u16,
            bus: bus as u8,
            dev: dev as u8,
            func,
        },
        sc.pos,
    ))
}

/// The strict grammar: `[D{1,4}:]B{1,2}:D{1,2}.(F|*)`, plain hex digits,
/// device at most `1f`, function `0`-`7` or `*`. Returns the pattern and
/// the index after it, or `None`.
pub(crate) fn scan_plain(b: &[u8]) -> Option<(BdfPattern, usize)> {
    // The `:`-separated hex runs before the `.`, as (value, digit count).
    let mut fields: Vec<(u32, usize)> = Vec::with_capacity(3);
    let mut i = 0;
    loop {
        let n = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if n == 0 || n > 4 {
            return None;
        }
        let text = std::str::from_utf8(&b[i..i + n]).ok()?;
        fields.push((u32::from_str_radix(text, 16).ok()?, n));
        i += n;
        match b.get(i) {
            Some(b':') if fields.len() < 3 => i += 1,
            Some(b'.') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    let (domain, bus, dev) = match fields.as_slice() {
        [bus, dev] => ((0, 1), *bus, *dev),
        [domain, bus, dev] => (*domain, *bus, *dev),
        _ => return None,
    };
    if bus.1 > 2 || dev.1 > 2 || dev.0 > MAX_DEV.into() {
        return None;
    }
    let func = match b.get(i) {
        Some(b'*') => Func::All,
        Some(c @ b'0'..=b'7') => Func::One(c - b'0'),
        _ => return None,
    };
    Some((
        BdfPattern {
            domain: u16::try_from(domain.0).ok()?,
            bus: u8::try_from(bus.0).ok()?,
            dev: u8::try_from(dev.0).ok()?,
            func,
        },
        i + 1,
    ))
}
