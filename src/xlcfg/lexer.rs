//! The tokens of an xl domain config file, exactly as libxlutil 4.17 lexes them.
//!
//! This mirrors the flex rules of `tools/libs/util/libxlu_cfg_l.l`, including
//! longest-match and first-rule-wins, and `xlu__cfgl_dequote` in
//! `libxlu_cfg.c`. Unlike flex, nothing is dropped: blanks, comments and the
//! characters xl reports as a lexical error are tokens too, each with its byte
//! span, so that concatenating every token's bytes gives the input back.
//!
//! ```
//! use xenpci::xlcfg::lexer::{lex, TokenKind};
//! let tokens = lex(b"pci = [ '07:00.0' ] # nic\n");
//! assert_eq!(tokens[0].kind, TokenKind::Ident);
//! assert_eq!(tokens.iter().map(|t| t.span.len()).sum::<usize>(), 26);
//! ```

use std::ops::Range;

/// What a token is. The grammar's terminals, plus the trivia the parser skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// `[a-z][._0-9a-z]*`
    Ident,
    /// `[0-9][0-9a-fx]*`: xl keeps a number as its text.
    Number,
    /// A quoted string; `value` is what `xlu__cfgl_dequote` makes of it.
    Str {
        /// The quote character, `'` or `"`.
        quote: u8,
        /// The decoded bytes, or the reason xl rejects the escapes.
        value: Result<Vec<u8>, String>,
    },
    /// `,`
    Comma,
    /// `[`
    Open,
    /// `]`
    Close,
    /// `=`
    Assign,
    /// `+=`
    AddAssign,
    /// `;`
    Semi,
    /// A newline, or a `#` comment with the newline that ends it.
    Newline,
    /// A run of spaces and tabs.
    Blank,
    /// Bytes xl cannot lex. `reported` is false when the bad byte is the
    /// very last of the file: flex then reaches end of input in its error
    /// state without running the rule that reports the error, so xl says
    /// nothing and drops the bytes.
    Bad {
        /// Whether xl reports a lexical error for these bytes.
        reported: bool,
    },
}

/// One token: its kind, its bytes in the source, and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Its bytes in the source.
    pub span: Range<usize>,
    /// 1-based line of its first byte (for a `Newline`, of its `\n`).
    pub line: usize,
}

fn is_ident_tail(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
}

fn is_number_tail(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'x'
}

/// Splits `src` into tokens covering every byte.
pub fn lex(src: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < src.len() {
        let start = pos;
        let tok_line = line;
        let kind = match src[pos] {
            b'a'..=b'z' => {
                pos = run_end(src, pos + 1, is_ident_tail);
                TokenKind::Ident
            }
            b'0'..=b'9' => {
                pos = run_end(src, pos + 1, is_number_tail);
                TokenKind::Number
            }
            b' ' | b'\t' => {
                pos = run_end(src, pos + 1, |b| b == b' ' || b == b'\t');
                TokenKind::Blank
            }
            b',' => one(&mut pos, TokenKind::Comma),
            b'[' => one(&mut pos, TokenKind::Open),
            b']' => one(&mut pos, TokenKind::Close),
            b';' => one(&mut pos, TokenKind::Semi),
            b'=' => one(&mut pos, TokenKind::Assign),
            b'+' if src.get(pos + 1) == Some(&b'=') => {
                pos += 2;
                TokenKind::AddAssign
            }
            b'\n' => {
                line += 1;
                one(&mut pos, TokenKind::Newline)
            }
            b'#' => match memchr(b'\n', &src[pos..]) {
                Some(n) => {
                    pos += n + 1;
                    line += 1;
                    TokenKind::Newline
                }
                // `#.*\n` needs the newline: without one, `#` falls to the
                // catch-all rule and is a lexical error.
                None => bad(src, &mut pos),
            },
            q @ (b'\'' | b'"') => match string_end(src, pos, q) {
                Some(end) => {
                    pos = end;
                    TokenKind::Str {
                        quote: q,
                        value: dequote(&src[start + 1..end - 1]),
                    }
                }
                None => bad(src, &mut pos),
            },
            _ => bad(src, &mut pos),
        };
        tokens.push(Token {
            kind,
            span: start..pos,
            line: tok_line,
        });
    }
    tokens
}

fn one(pos: &mut usize, kind: TokenKind) -> TokenKind {
    *pos += 1;
    kind
}

fn run_end(src: &[u8], mut pos: usize, keep: impl Fn(u8) -> bool) -> usize {
    while pos < src.len() && keep(src[pos]) {
        pos += 1;
    }
    pos
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The end of `'([^'\\\n]|\\.)*'` starting at `start`, if it matches.
fn string_end(src: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut pos = start + 1;
    while pos < src.len() {
        match src[pos] {
            b'\n' => return None,
            b'\\' => {
                // `\\.`: `.` is any byte but a newline.
                if src.get(pos + 1).is_none_or(|&b| b == b'\n') {
                    return None;
                }
                pos += 2;
            }
            b if b == quote => return Some(pos + 1),
            _ => pos += 1,
        }
    }
    None
}

/// The lexical-error path: the catch-all rule takes one byte and enters the
/// `lexerr` state, whose rule then takes a run of non-blanks, or one blank,
/// or a newline (which is still returned to the parser as a newline, so it is
/// left for the main loop here).
fn bad(src: &[u8], pos: &mut usize) -> TokenKind {
    *pos += 1;
    match src.get(*pos) {
        None => TokenKind::Bad { reported: false },
        Some(b' ' | b'\t') => {
            *pos += 1;
            TokenKind::Bad { reported: true }
        }
        Some(b'\n') => TokenKind::Bad { reported: true },
        Some(_) => {
            *pos = run_end(src, *pos, |b| !matches!(b, b' ' | b'\t' | b'\n'));
            TokenKind::Bad { reported: true }
        }
    }
}

/// What `xlu__cfgl_dequote` makes of the bytes between the quotes.
///
/// Xen 4.17's numeric escapes are quirky and we keep the quirks, since the
/// point is to read what xl reads: `\x` always fails (the code skips one
/// digit and then demands more than the two it allows), and `\NNN` parses
/// the digits after the first in base 10 and drops the character.
fn dequote(body: &[u8]) -> Result<Vec<u8>, String> {
    // xl measures the token with strlen: a NUL byte inside quotes makes it
    // see an unterminated string and abort on an assertion.
    if body.contains(&0) {
        return Err("NUL byte in quoted string".into());
    }
    let mut out = Vec::with_capacity(body.len());
    let mut p = 0;
    while p < body.len() {
        let c = body[p];
        p += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        // The lexer guarantees a byte after every backslash.
        let nc = body[p];
        p += 1;
        let plain = match nc {
            b'"' | b'\'' | b'\\' => Some(nc),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(b) = plain {
            out.push(b);
        } else if nc == b'x' {
            return Err(
                "invalid digit after backslash hex numerical character escape in quoted string"
                    .into(),
            );
        } else if (b'0'..=b'7').contains(&nc) {
            // strtoul over at most 3 bytes (up to the closing quote, which
            // ends the copy), base 10, must consume more than one byte.
            let window = &body[p..body.len().min(p + 3)];
            let used = strtoul10_len(window);
            if used <= 1 {
                return Err(
                    "invalid digit after backslash octal numerical character escape in quoted string"
                        .into(),
                );
            }
            p += used;
        } else {
            return Err("invalid character after backlash in quoted string".into());
        }
    }
    Ok(out)
}

/// How many bytes `strtoul(s, &ep, 10)` consumes (0 when it converts nothing):
/// leading white space, an optional sign, then decimal digits.
fn strtoul10_len(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    if i < s.len() && matches!(s[i], b'+' | b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits_start {
        0
    } else {
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src.as_bytes()).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn every_byte_is_covered() {
        let src = b"a = [ 'x', \"y\" ] # c\nb += 0x1F; @@ \xff\n#";
        let toks = lex(src);
        let mut pos = 0;
        for t in &toks {
            assert_eq!(t.span.start, pos);
            pos = t.span.end;
        }
        assert_eq!(pos, src.len());
    }

    #[test]
    fn uppercase_hex_is_a_number_then_an_error() {
        let k = kinds("0x1F");
        assert_eq!(k[0], TokenKind::Number);
        assert_eq!(k[1], TokenKind::Bad { reported: false });
    }

    #[test]
    fn escapes() {
        assert_eq!(dequote(br"a\tb\\"), Ok(b"a\tb\\".to_vec()));
        assert!(dequote(br"\x41").is_err());
        assert_eq!(dequote(br"\101z"), Ok(b"z".to_vec()));
        assert!(dequote(br"\1").is_err());
        assert!(dequote(br"\q").is_err());
    }

    #[test]
    fn comment_needs_newline() {
        assert_eq!(kinds("# c\n"), vec![TokenKind::Newline]);
        assert_eq!(kinds("# c")[0], TokenKind::Bad { reported: true });
    }
}
