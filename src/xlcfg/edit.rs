//! Byte-exact edits of an [`XlConfig`]: splices over the source.
//!
//! An [`Editor`] collects [`Splice`]s (a byte range and its replacement) and
//! [`Editor::finish`] copies every other byte unchanged. List edits keep the
//! list's layout: a one-line list stays on one line with the separator its
//! elements already use; a list with one element per line gets new lines with
//! the indentation and comma style of its last element, and loses whole lines
//! (comment included) when an element goes. New strings take the quote
//! character of their neighbours.
//!
//! ```
//! use xenpci::xlcfg::{XlConfig, edit::{Editor, ItemChange}};
//! let cfg = XlConfig::parse(b"pci = [ '07:00.0', '08:00.0' ] # two\n").unwrap();
//! let mut ed = Editor::new(&cfg);
//! ed.edit_list("pci", &[ItemChange::Remove, ItemChange::Keep], &["09:00.0".into()]);
//! assert_eq!(ed.finish(), b"pci = [ '08:00.0', '09:00.0' ] # two\n");
//! ```

use std::ops::Range;

use super::{Item, ListNode, Node, XlConfig};

/// Replace `range` of the source with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// Bytes of the source replaced (empty: an insertion).
    pub range: Range<usize>,
    /// The new bytes.
    pub text: Vec<u8>,
}

/// What happens to one element of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemChange {
    /// Left as written.
    Keep,
    /// Taken out, with its separator (and its line, when it had one).
    Remove,
    /// Its string replaced by this text (quoted like the original).
    Replace(String),
}

/// Collects splices over one config's source.
pub struct Editor<'a> {
    cfg: &'a XlConfig,
    splices: Vec<Splice>,
    /// Text appended at the end of the file, after the splices.
    tail: Vec<u8>,
}

impl<'a> Editor<'a> {
    /// An editor with no edits: `finish` gives the source back.
    pub fn new(cfg: &'a XlConfig) -> Self {
        Editor {
            cfg,
            splices: Vec::new(),
            tail: Vec::new(),
        }
    }

    fn src(&self) -> &'a [u8] {
        self.cfg.source()
    }

    /// Edits the list value of `key` element by element (`changes` follows
    /// [`XlConfig::list_items`]; missing entries mean `Keep`) and appends
    /// `new` strings. When `key` is absent, a new `key = [ ... ]` line is
    /// added at the end of the file. Returns false, changing nothing, when
    /// `key` holds a string (the caller refuses such a file).
    pub fn edit_list(&mut self, key: &str, changes: &[ItemChange], new: &[String]) -> bool {
        let cfg = self.cfg;
        let Some(chain) = cfg.list_chain(key) else {
            if cfg.last(key).is_some() {
                return false;
            }
            if !new.is_empty() {
                let quoted: Vec<String> = new.iter().map(|s| quote(s, b'\'')).collect();
                self.append_line(&format!("{key} = [ {} ]", quoted.join(", ")));
            }
            return true;
        };
        let mut offset = 0;
        for (n, list) in chain.iter().enumerate() {
            let len = list.items.len();
            let mine: Vec<ItemChange> = (offset..offset + len)
                .map(|i| changes.get(i).cloned().unwrap_or(ItemChange::Keep))
                .collect();
            let appended: &[String] = if n + 1 == chain.len() { new } else { &[] };
            self.edit_one_list(list, &mine, appended);
            offset += len;
        }
        true
    }

    /// Sets `key = value` (raw value text, already quoted if a string): the
    /// last assignment of `key` is rewritten, or a line is added at the end.
    pub fn set_scalar(&mut self, key: &str, value: &str) {
        match self.cfg.last(key) {
            Some(a) => self.splices.push(Splice {
                range: a.span(),
                text: format!("{key} = {value}").into_bytes(),
            }),
            None => self.append_line(&format!("{key} = {value}")),
        }
    }

    /// Appends a statement on a line of its own at the end of the file.
    fn append_line(&mut self, line: &str) {
        let src = self.src();
        if self.tail.is_empty() && !src.is_empty() && !src.ends_with(b"\n") {
            self.tail.push(b'\n');
        }
        self.tail.extend_from_slice(line.as_bytes());
        self.tail.push(b'\n');
    }

    /// The edited bytes: the source with every splice applied.
    pub fn finish(mut self) -> Vec<u8> {
        let src = self.src();
        // Insertions at a point go before a removal that starts there.
        self.splices
            .sort_by_key(|s| (s.range.start, s.range.end != s.range.start));
        let mut out = Vec::with_capacity(src.len() + 64);
        let mut pos = 0;
        for s in &self.splices {
            out.extend_from_slice(&src[pos..s.range.start.max(pos)]);
            out.extend_from_slice(&s.text);
            pos = pos.max(s.range.end);
        }
        out.extend_from_slice(&src[pos..]);
        out.extend_from_slice(&self.tail);
        out
    }

    fn push(&mut self, range: Range<usize>, text: impl Into<Vec<u8>>) {
        self.splices.push(Splice {
            range,
            text: text.into(),
        });
    }

    fn edit_one_list(&mut self, list: &ListNode, changes: &[ItemChange], new: &[String]) {
        let items = &list.items;
        let q = list_quote(list);
        for (item, change) in items.iter().zip(changes) {
            if let (ItemChange::Replace(text), Node::Atom(a)) = (change, &item.node) {
                self.push(a.span.clone(), quote(text, a.quote.unwrap_or(q)));
            }
        }
        let new_quoted: Vec<String> = new.iter().map(|s| quote(s, q)).collect();
        let Some(last_kept) = (0..items.len())
            .rev()
            .find(|&i| changes[i] != ItemChange::Remove)
        else {
            if !items.is_empty() || !new.is_empty() {
                // Nothing of the old interior survives: write it anew.
                let text = self.render_interior(list, &new_quoted);
                self.push(list.span.start + 1..list.span.end - 1, text);
            }
            return;
        };
        let multi_line = self.src()[list.span.clone()].contains(&b'\n');
        // Runs of removed elements followed by a kept one go with their
        // separators (whole lines, in a list with one element per line).
        let mut i = 0;
        while i < last_kept {
            if changes[i] != ItemChange::Remove {
                i += 1;
                continue;
            }
            let run = i;
            while changes[i] == ItemChange::Remove {
                i += 1;
            }
            let range = self.run_range(&items[run], &items[i], multi_line);
            self.push(range, Vec::new());
        }
        let tail_inline = if last_kept + 1 < items.len() {
            self.remove_tail(list, last_kept, multi_line, !new.is_empty())
        } else {
            false
        };
        if !new.is_empty() {
            self.append(list, last_kept, tail_inline, multi_line, &new_quoted);
        }
    }

    /// The bytes of removed elements `first..` up to the kept `next`.
    fn run_range(&self, first: &Item, next: &Item, multi_line: bool) -> Range<usize> {
        let src = self.src();
        let (a, n) = (first.node.span().start, next.node.span().start);
        if multi_line && line_indent(src, a).is_some() && line_indent(src, n).is_some() {
            line_start(src, a)..line_start(src, n)
        } else {
            a..n
        }
    }

    /// Removes the elements after `last_kept`. Returns true when they went
    /// with the comma of `last_kept` (removed inline).
    fn remove_tail(
        &mut self,
        list: &ListNode,
        last_kept: usize,
        multi_line: bool,
        appending: bool,
    ) -> bool {
        let src = self.src();
        let items = &list.items;
        let (kept, first, last) = (
            &items[last_kept],
            &items[last_kept + 1],
            &items[items.len() - 1],
        );
        let close = list.span.end - 1;
        if multi_line && line_indent(src, first.node.span().start).is_some() {
            if let Some(end) = own_line(src, last, close) {
                self.push(
                    line_start(src, first.node.span().start)..end.end,
                    Vec::new(),
                );
                // A list written without a trailing comma keeps none.
                if let (false, None, Some(c)) = (appending, last.comma, kept.comma) {
                    self.push(c..c + 1, Vec::new());
                }
                return false;
            }
        }
        // Keep a trailing comma where the list had one.
        self.push(kept.node.span().end..last.node.span().end, Vec::new());
        true
    }

    /// Appends `new` after element `last_kept`, in the list's layout.
    fn append(
        &mut self,
        list: &ListNode,
        last_kept: usize,
        tail_inline: bool,
        multi_line: bool,
        new: &[String],
    ) {
        let src = self.src();
        let items = &list.items;
        let kept = &items[last_kept];
        let end = kept.node.span().end;
        if !multi_line {
            let sep = separator(src, items);
            let text: String = new.iter().map(|n| format!("{sep}{n}")).collect();
            self.push(end..end, text);
            return;
        }
        let trailing = items.last().is_some_and(|i| i.comma.is_some());
        let indent = line_indent(src, kept.node.span().start).unwrap_or_else(|| "    ".into());
        let close = list.span.end - 1;
        if line_indent(src, close).is_none() {
            // `]` shares a line with the last element: go on from there; what
            // followed the old last element (its comma) follows the new one.
            let text: String = new.iter().map(|n| format!(",\n{indent}{n}")).collect();
            self.push(end..end, text);
            return;
        }
        // After an inline tail removal, the removed last element's comma
        // (if the list had a trailing one) now follows `kept`.
        let has_comma = if tail_inline {
            trailing
        } else {
            kept.comma.is_some()
        };
        if !has_comma {
            self.push(end..end, b",".to_vec());
        }
        let at = line_start(src, close);
        let mut text = String::new();
        for (i, n) in new.iter().enumerate() {
            let comma = if trailing || i + 1 < new.len() {
                ","
            } else {
                ""
            };
            text.push_str(&format!("{indent}{n}{comma}\n"));
        }
        self.push(at..at, text);
    }

    /// A fresh interior for a list whose old elements all go.
    fn render_interior(&self, list: &ListNode, new: &[String]) -> String {
        let src = self.src();
        let inner = &src[list.span.start + 1..list.span.end - 1];
        if new.is_empty() {
            let tight = list
                .items
                .first()
                .is_none_or(|i| i.node.span().start == list.span.start + 1);
            return if tight { String::new() } else { " ".into() };
        }
        if inner.contains(&b'\n') {
            let indent = list
                .items
                .first()
                .and_then(|i| line_indent(src, i.node.span().start))
                .unwrap_or("    ".into());
            let close_indent = line_indent(src, list.span.end - 1).unwrap_or_default();
            let body: String = new.iter().map(|n| format!("\n{indent}{n},")).collect();
            return format!("{body}\n{close_indent}");
        }
        let tight = !inner.is_empty() && !inner.starts_with(b" ") && !list.items.is_empty();
        let body = new.join(", ");
        if tight || inner.is_empty() {
            body
        } else {
            format!(" {body} ")
        }
    }
}

/// The quote character a list's strings use (single quotes by default).
fn list_quote(list: &ListNode) -> u8 {
    list.items
        .iter()
        .rev()
        .find_map(|i| match &i.node {
            Node::Atom(a) => a.quote,
            Node::List(_) => None,
        })
        .unwrap_or(b'\'')
}

/// The separator between the first two elements, `", "` when there are none.
fn separator(src: &[u8], items: &[Item]) -> String {
    match items {
        [a, b, ..] => String::from_utf8_lossy(&src[a.node.span().end..b.node.span().start]).into(),
        _ => ", ".into(),
    }
}

/// `text` as an xl string in `q` quotes, escaping what must be.
pub fn quote(text: &str, q: u8) -> String {
    let q = q as char;
    let mut out = String::with_capacity(text.len() + 2);
    out.push(q);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn line_start(src: &[u8], pos: usize) -> usize {
    src[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |n| n + 1)
}

/// The blanks before `pos` on its line, if only blanks stand there.
fn line_indent(src: &[u8], pos: usize) -> Option<String> {
    let start = line_start(src, pos);
    let before = &src[start..pos];
    before
        .iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then(|| String::from_utf8_lossy(before).into_owned())
}

/// The whole line of `item` when it stands alone there: blanks, the element,
/// its comma, blanks, an optional comment, the newline.
fn own_line(src: &[u8], item: &Item, close: usize) -> Option<Range<usize>> {
    let span = item.node.span();
    line_indent(src, span.start)?;
    let mut p = item.comma.map_or(span.end, |c| c + 1);
    while p < close && matches!(src[p], b' ' | b'\t') {
        p += 1;
    }
    if p < close && src[p] == b'#' {
        while p < close && src[p] != b'\n' {
            p += 1;
        }
    }
    (p < close && src[p] == b'\n').then(|| line_start(src, span.start)..p + 1)
}
