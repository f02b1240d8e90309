//! The grammar of `libxlu_cfg_y.y` (Xen 4.17) over the tokens of [`lexer`].
//!
//! ```text
//! file       := (assignment? endstmt)* assignment?
//! assignment := IDENT ('=' | '+=') value
//! endstmt    := NEWLINE | ';'
//! value      := STRING | NUMBER | '[' NEWLINE* valuelist ']'
//! valuelist  := ε | value NEWLINE* (',' NEWLINE* value NEWLINE*)* (',' NEWLINE*)?
//! ```
//!
//! A value must start on the line of its `=`; inside brackets newlines may
//! stand anywhere but before a comma. The parser stops at the first error xl
//! would report and gives the line xl gives (see [`CfgError`]).
//!
//! [`lexer`]: super::lexer

use std::ops::Range;

use super::lexer::{lex, Token, TokenKind};
use super::CfgError;

/// `=` or `+=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`: replaces any earlier value.
    Assign,
    /// `+=`: appends to the earlier value (strings concatenate, lists join).
    Add,
}

/// A string or number as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// The token's bytes in the source, quotes included.
    pub span: Range<usize>,
    /// `'` or `"` for a string, `None` for a bare number.
    pub quote: Option<u8>,
    /// The value xl reads: the decoded string, or the number's text.
    pub value: Vec<u8>,
}

/// One element of a list, with the comma that follows it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The element.
    pub node: Node,
    /// Byte offset of the `,` after it.
    pub comma: Option<usize>,
}

/// A `[ ... ]` list as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListNode {
    /// From `[` to `]` inclusive.
    pub span: Range<usize>,
    /// The elements in order.
    pub items: Vec<Item>,
}

/// A value as written: an atom or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A string or number.
    Atom(Atom),
    /// A list.
    List(ListNode),
}

impl Node {
    /// The node's bytes in the source.
    pub fn span(&self) -> Range<usize> {
        match self {
            Node::Atom(a) => a.span.clone(),
            Node::List(l) => l.span.clone(),
        }
    }
}

/// One `key = value` or `key += value` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key.
    pub key: String,
    /// The key's bytes in the source.
    pub key_span: Range<usize>,
    /// `=` or `+=`.
    pub op: Op,
    /// The value as written.
    pub value: Node,
    /// 1-based line of the key.
    pub line: usize,
}

impl Assignment {
    /// From the first byte of the key to the last byte of the value.
    pub fn span(&self) -> Range<usize> {
        self.key_span.start..self.value.span().end
    }
}

struct Parser<'a> {
    src: &'a [u8],
    toks: Vec<Token>,
    /// Index of the next token not yet looked at.
    next: usize,
    /// The last token handed to the grammar (xl's `yylloc`/`yytext` at EOF).
    last: Option<usize>,
}

/// Parses `src` into its assignments, or the first error xl would report.
pub fn parse(src: &[u8]) -> Result<Vec<Assignment>, CfgError> {
    let mut p = Parser {
        src,
        toks: lex(src),
        next: 0,
        last: None,
    };
    let mut out = Vec::new();
    loop {
        let Some(i) = p.peek()? else {
            return Ok(out);
        };
        match p.toks[i].kind {
            TokenKind::Newline | TokenKind::Semi => p.bump(i),
            TokenKind::Ident => {
                let a = p.assignment(i)?;
                check_concat(&out, &a, &p.toks, src)?;
                out.push(a);
                match p.peek()? {
                    None => return Ok(out),
                    Some(j) if matches!(p.toks[j].kind, TokenKind::Newline | TokenKind::Semi) => {
                        p.bump(j)
                    }
                    Some(j) => return Err(p.syntax_error(Some(j), END_OF_STATEMENT)),
                }
            }
            _ => return Err(p.syntax_error(Some(i), STATEMENT)),
        }
    }
}

impl Parser<'_> {
    /// The next grammar token, skipping blanks and unreported bad bytes;
    /// a lexical error is returned as soon as the scan reaches it.
    fn peek(&mut self) -> Result<Option<usize>, CfgError> {
        while self.next < self.toks.len() {
            let t = &self.toks[self.next];
            match &t.kind {
                TokenKind::Blank | TokenKind::Bad { reported: false } => self.next += 1,
                TokenKind::Bad { reported: true } => {
                    let text = &self.src[t.span.clone()];
                    let col = column(self.src, t.span.start);
                    return Err(CfgError::at(t.line, t.line, col, lexical(text)));
                }
                TokenKind::Str { value: Err(e), .. } => {
                    let col = column(self.src, t.span.start);
                    return Err(CfgError::at(t.line, t.line, col, e.clone()));
                }
                _ => return Ok(Some(self.next)),
            }
        }
        Ok(None)
    }

    fn bump(&mut self, i: usize) {
        self.last = Some(i);
        self.next = i + 1;
    }

    fn assignment(&mut self, key: usize) -> Result<Assignment, CfgError> {
        self.bump(key);
        let op = match self.peek()? {
            Some(i) if self.toks[i].kind == TokenKind::Assign => Op::Assign,
            Some(i) if self.toks[i].kind == TokenKind::AddAssign => Op::Add,
            other => return Err(self.syntax_error(other, "'=' or '+='")),
        };
        let op_tok = self.next;
        self.bump(op_tok);
        // Stack: initial state, `stmts`, IDENT, `=`: the value lands at 5.
        let value = self.value(5)?;
        let t = &self.toks[key];
        Ok(Assignment {
            key: String::from_utf8_lossy(&self.src[t.span.clone()]).into_owned(),
            key_span: t.span.clone(),
            op,
            value,
            line: t.line,
        })
    }

    /// A value whose first symbol lands at LR stack depth `depth`.
    fn value(&mut self, depth: usize) -> Result<Node, CfgError> {
        let Some(i) = self.peek()? else {
            return Err(self.syntax_error(None, VALUE));
        };
        let t = self.toks[i].clone();
        match t.kind {
            TokenKind::Number => {
                self.push(depth, i)?;
                self.bump(i);
                Ok(Node::Atom(Atom {
                    value: self.src[t.span.clone()].to_vec(),
                    span: t.span,
                    quote: None,
                }))
            }
            TokenKind::Str {
                quote,
                value: Ok(value),
            } => {
                self.push(depth, i)?;
                self.bump(i);
                Ok(Node::Atom(Atom {
                    span: t.span,
                    quote: Some(quote),
                    value,
                }))
            }
            TokenKind::Open => {
                self.push(depth, i)?;
                self.bump(i);
                self.list(t.span.start, depth)
            }
            _ => Err(self.syntax_error(Some(i), VALUE)),
        }
    }

    /// The rest of a list whose `[` sits at stack depth `d`.
    ///
    /// The depths follow bison's stack for `'[' nlok valuelist ']'`: `[` at
    /// d, `nlok` at d+1, the first element at d+2 (its `nlok` at d+3), and
    /// after `values ',' nlok` each later element at d+5 (its `nlok` at d+6);
    /// a newline is shifted one above its `nlok`. They matter only for
    /// nesting thousands deep, where bison's stack is exhausted.
    fn list(&mut self, open: usize, d: usize) -> Result<Node, CfgError> {
        let mut items: Vec<Item> = Vec::new();
        // The nlok after `[` needs a lookahead to be reduced.
        let la = self.peek()?.or(self.last);
        self.push_at(d + 1, la)?;
        // Depth of the current nlok (newlines are shifted just above it).
        let mut nlok = d + 1;
        let mut after_comma = true;
        loop {
            let Some(i) = self.peek()? else {
                return Err(self.syntax_error(None, in_list(after_comma)));
            };
            match self.toks[i].kind {
                TokenKind::Newline => {
                    self.push(nlok + 1, i)?;
                    self.bump(i);
                }
                TokenKind::Close => {
                    self.push(d + 2, i)?; // valuelist
                    self.push(d + 3, i)?; // ']'
                    self.bump(i);
                    let span = open..self.toks[i].span.end;
                    return Ok(Node::List(ListNode { span, items }));
                }
                TokenKind::Comma if !after_comma => {
                    self.push(d + 3, i)?;
                    self.bump(i);
                    // Reduced without a lookahead: the comma is current.
                    self.push(d + 4, i)?;
                    nlok = d + 4;
                    if let Some(last) = items.last_mut() {
                        last.comma = Some(self.toks[i].span.start);
                    }
                    after_comma = true;
                }
                _ if after_comma => {
                    let at = if items.is_empty() { d + 2 } else { d + 5 };
                    let node = self.value(at)?;
                    self.push_at(at + 1, self.last)?;
                    nlok = at + 1;
                    items.push(Item { node, comma: None });
                    after_comma = false;
                }
                _ => return Err(self.syntax_error(Some(i), in_list(after_comma))),
            }
        }
    }

    /// Bison's stack holds at most `YYMAXDEPTH` (10000) entries; the push
    /// that fills it fails with "memory exhausted", reported at the token
    /// the lexer returned last (`tok`).
    fn push(&self, depth: usize, tok: usize) -> Result<(), CfgError> {
        self.push_at(depth, Some(tok))
    }

    fn push_at(&self, depth: usize, tok: Option<usize>) -> Result<(), CfgError> {
        const YYMAXDEPTH: usize = 10_000;
        if depth < YYMAXDEPTH {
            return Ok(());
        }
        let mut e = self.syntax_error(tok, "");
        e.message = "memory exhausted: lists nested too deep for xl".into();
        Err(e)
    }

    /// The error bison reports with `tok` as lookahead (`None`: end of file).
    ///
    /// xl prints `yylloc.first_line`, less one when `yytext` ends in a
    /// newline (`xlu__cfg_yyerror`). A NEWLINE token's `first_line` is
    /// already the line of its newline, so an error at a newline is reported
    /// one line early; at end of file nothing new was lexed: the location is
    /// the last token's and the text is empty.
    fn syntax_error(&self, tok: Option<usize>, expecting: &str) -> CfgError {
        let Some(i) = tok.or(self.last) else {
            return CfgError::at(
                1,
                1,
                1,
                format!("unexpected end of file, expecting {expecting}"),
            );
        };
        let t = &self.toks[i];
        // At end of file `yytext` is empty, so there is no newline to undo.
        let xl_line = if t.kind == TokenKind::Newline && tok.is_some() {
            t.line - 1
        } else {
            t.line
        };
        let what = match tok {
            None => "end of file".to_string(),
            Some(_) => describe(&t.kind, &self.src[t.span.clone()]),
        };
        let (line, column) = match tok {
            Some(_) => (t.line, column(self.src, t.span.start)),
            None => (
                line_at(self.src, self.src.len()),
                column(self.src, self.src.len()),
            ),
        };
        CfgError::at(
            xl_line,
            line,
            column,
            format!("syntax error, unexpected {what}, expecting {expecting}"),
        )
    }
}

const STATEMENT: &str = "a key, a newline or ';'";
const END_OF_STATEMENT: &str = "a newline or ';' after the value";
const VALUE: &str = "a string, a number or '['";

fn in_list(after_comma: bool) -> &'static str {
    if after_comma {
        "a value or ']'"
    } else {
        "',' or ']'"
    }
}

/// A token as an error message names it.
fn describe(kind: &TokenKind, text: &[u8]) -> String {
    match kind {
        TokenKind::Newline if text.first() == Some(&b'#') => "comment (a newline)".into(),
        TokenKind::Newline => "newline".into(),
        TokenKind::Ident => format!("key `{}'", String::from_utf8_lossy(text)),
        TokenKind::Number => format!("number `{}'", String::from_utf8_lossy(text)),
        TokenKind::Str { .. } => format!("string {}", String::from_utf8_lossy(text)),
        _ => format!("`{}'", String::from_utf8_lossy(text)),
    }
}

/// 1-based column (in bytes) of `pos`.
pub(super) fn column(src: &[u8], pos: usize) -> usize {
    pos - src[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |n| n + 1)
        + 1
}

/// 1-based line of `pos`.
pub(super) fn line_at(src: &[u8], pos: usize) -> usize {
    src[..pos].iter().filter(|&&b| b == b'\n').count() + 1
}

/// xl's "lexical error", naming the bytes and what they probably are.
fn lexical(text: &[u8]) -> String {
    let end = text
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |n| n + 1);
    let shown = text[..end].escape_ascii().to_string();
    let hint = match text.first() {
        Some(b'\r') => " (a carriage return: xl reads only Unix line endings)",
        Some(0xef) if text.starts_with(b"\xef\xbb\xbf") => " (a UTF-8 byte-order mark)",
        Some(b'#') => " (a comment must end with a newline)",
        Some(b'\'' | b'"') => " (a string must end on its line)",
        Some(b'A'..=b'Z') => " (keys are lowercase)",
        Some(b'-' | b'+' | b'.') => " (numbers are unsigned integers; quote anything else)",
        _ => "",
    };
    format!("lexical error near `{shown}'{hint}")
}

/// `xlu__cfg_set_store` refuses `+=` between a list and a string, reporting
/// the line of the value's last token (the lexer has read no further).
fn check_concat(
    done: &[Assignment],
    a: &Assignment,
    toks: &[Token],
    src: &[u8],
) -> Result<(), CfgError> {
    if a.op != Op::Add {
        return Ok(());
    }
    let Some(prev) = super::fold(done, &a.key) else {
        return Ok(());
    };
    let is_list = matches!(a.value, Node::List(_));
    if prev.is_list() == is_list {
        return Ok(());
    }
    let end = a.value.span().end;
    let last = toks.iter().find(|t| t.span.end == end);
    let line = last.map_or(a.line, |t| t.line);
    let col = last.map_or(1, |t| column(src, t.span.start));
    Err(CfgError::at(
        line,
        line,
        col,
        "can't add [list] to \"string\" or vice versa".into(),
    ))
}
