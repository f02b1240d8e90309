//! Property tests of the xl config editor and the domain_pci_config engine.
//!
//! - render, plan, parse: random pci lists in random layouts, random
//!   requests; the result reads back as planned and a second plan is a no-op;
//! - add then remove gives the original bytes back (one-line lists);
//! - bytes outside the edited `pci` assignments never change;
//! - the reader never panics, whatever the bytes, and its tokens cover
//!   every byte.
//!
//! Case counts stay modest (256) so the suite stays fast; raise them with
//! `PROPTEST_CASES=10000` for a longer hunt.

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::Config;

use xenpci::bdf::Func;
use xenpci::domcfg::{plan, DomCfgError, ListState, PciConfig, PciRequest};
use xenpci::spec::{Device, PciSpec};
use xenpci::xlcfg::edit::{Editor, ItemChange};
use xenpci::xlcfg::lexer::lex;
use xenpci::xlcfg::{Op, XlConfig};

const PATH: &str = "prop.cfg";

fn config() -> Config {
    Config {
        // An environment override (PROPTEST_CASES) wins over this default.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // No regression files written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// Generators: entries as a person writes them.

/// A BDF in one of the forms xl accepts: with or without the domain, padded
/// or not, either hex case. Mostly from a small space, so that requests
/// often hit entries already listed.
fn bdf_text() -> impl Strategy<Value = String> {
    let small = (Just(None), 0u32..3, 0u32..3, 0u32..2);
    let wide = (
        prop::option::weighted(0.3, 0u32..=0xffff),
        0u32..=0xff,
        0u32..=0x1f,
        0u32..=7,
    );
    (
        prop_oneof![3 => small, 1 => wide],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((dom, bus, dev, func), pad, upper)| {
            let mut s = match (dom, pad) {
                (Some(d), true) => format!("{d:04x}:{bus:02x}:{dev:02x}.{func}"),
                (Some(d), false) => format!("{d:x}:{bus:x}:{dev:x}.{func}"),
                (None, true) => format!("{bus:02x}:{dev:02x}.{func}"),
                (None, false) => format!("{bus:x}:{dev:x}.{func}"),
            };
            if upper {
                s = s.to_uppercase();
            }
            s
        })
}

/// `key=value` options, in a random order.
fn options() -> impl Strategy<Value = Vec<String>> {
    let keys = vec![
        "permissive",
        "msitranslate",
        "seize",
        "power_mgmt",
        "rdm_policy",
    ];
    (subsequence(keys, 0..=3), vec(any::<bool>(), 5))
        .prop_map(|(keys, vals)| {
            keys.iter()
                .zip(vals)
                .map(|(k, v)| match *k {
                    "rdm_policy" => format!("rdm_policy={}", if v { "strict" } else { "relaxed" }),
                    k => format!("{k}={}", u8::from(v)),
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// A pci entry as written in a config file (xl's grammar, not canonical).
fn entry_text() -> impl Strategy<Value = String> {
    let by_bdf = (
        bdf_text(),
        prop::option::weighted(0.3, 1u32..=0x1f),
        options(),
    )
        .prop_map(|(bdf, vslot, opts)| {
            let mut s = bdf;
            if let Some(v) = vslot {
                s.push_str(&format!("@{v:x}"));
            }
            for o in opts {
                s.push(',');
                s.push_str(&o);
            }
            s
        });
    let by_name = (0u32..3, options()).prop_map(|(n, opts)| {
        let mut s = format!("name=gpu{n}");
        for o in opts {
            s.push(',');
            s.push_str(&o);
        }
        s
    });
    // A whole-device entry: `*` with a vslot, as libxl wants to add it.
    let all =
        (0u32..3, 0u32..3, 1u32..=0x1f).prop_map(|(b, d, v)| format!("{b:02x}:{d:02x}.*@{v:x}"));
    prop_oneof![12 => by_bdf, 2 => by_name, 1 => all]
}

/// A requested device, as the module would pass it: canonical text through
/// `parse_strict`.
fn request_spec() -> impl Strategy<Value = PciSpec> {
    entry_text().prop_map(|t| {
        let spec = PciSpec::parse_xl(&t).unwrap_or_else(|e| panic!("generator: {t:?}: {e}"));
        PciSpec::parse_strict(&spec.to_string())
            .unwrap_or_else(|e| panic!("generator: canonical {spec} refused: {e}"))
    })
}

/// A requested device outside the space [`entry_text`] mostly draws from
/// (bus 0x40 and up, domain 0 or 0x10), with random options.
fn fresh_spec() -> impl Strategy<Value = PciSpec> {
    (
        prop_oneof![Just(0u32), Just(0x10)],
        0x40u32..=0xff,
        0u32..=0x1f,
        0u32..=7,
        options(),
    )
        .prop_map(|(dom, bus, dev, func, opts)| {
            let mut t = format!("{dom:04x}:{bus:02x}:{dev:02x}.{func}");
            for o in opts {
                t.push(',');
                t.push_str(&o);
            }
            PciSpec::parse_strict(&t).unwrap_or_else(|e| panic!("generator: {t:?}: {e}"))
        })
}

fn request() -> impl Strategy<Value = PciRequest> {
    (
        vec(request_spec(), 0..5),
        prop_oneof![4 => Just(ListState::Present), 1 => Just(ListState::Absent), 1 => Just(ListState::Exact)],
    )
        .prop_map(|(specs, state)| {
            // The plan refuses a device given twice (also as a function of
            // a wildcard): keep the first.
            let mut devices: Vec<PciSpec> = Vec::new();
            for s in specs {
                if !devices.iter().any(|d| overlaps(&cover(d), &cover(&s))) {
                    devices.push(s);
                }
            }
            PciRequest {
                devices,
                state,
                ..PciRequest::default()
            }
        })
}

// ---------------------------------------------------------------------------
// Layouts.

/// How the `pci` list is written.
#[derive(Debug, Clone)]
enum Layout {
    /// `pci = [ 'a', 'b' ]` and its variants.
    OneLine {
        pad: bool,
        sep: &'static str,
        trailing: bool,
    },
    /// One entry per line, comments allowed.
    PerLine {
        indent: &'static str,
        trailing: bool,
        /// Comment after the `[`.
        open_comment: bool,
        /// Per entry: an end-of-line comment; a comment line before it.
        comments: Vec<(bool, bool)>,
        /// `]` on its own line (with this indent), or after the last entry.
        close_own_line: Option<&'static str>,
    },
    /// First entry on the `[` line, the rest aligned under it.
    Hanging { trailing: bool },
    /// The list split over `pci = [..]` and `pci += [..]`.
    Chain { split: usize },
    /// Several entries to a line, lines broken after random commas, a
    /// comment now and then.
    Wrapped {
        breaks: Vec<(bool, bool)>,
        trailing: bool,
        close_own_line: bool,
    },
}

/// A whole file: statements around the pci list.
#[derive(Debug, Clone)]
struct Doc {
    before: Vec<&'static str>,
    /// An earlier `pci = ...` that the later one overrides.
    shadowed: bool,
    key_ws: (&'static str, &'static str),
    /// None: no `pci` key at all.
    list: Option<(Layout, Vec<(String, u8)>)>,
    after: Vec<&'static str>,
    final_newline: bool,
}

const OTHER: &[&str] = &[
    "name = \"vm1\"",
    "memory = 2048",
    "vcpus=2",
    "# a comment line",
    "#",
    "",
    "  # indented comment, 'quotes' [brackets] = signs",
    "vif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0', ]",
    "disk = [\n    \"phy:/dev/vg/vm1,xvda,w\",\n]",
    "kernel = '/boot/vmlinuz'; ramdisk = '/boot/initrd.img'",
    "pci_permissive = 1",
    "extra = 'console=hvc0 root=/dev/xvda1' # trailing comment",
    "on_crash = \"restart\"",
    "cpus = \"0-3\"\t# tab before",
    "builder = 'hvm'",
    "pcix = [ '01:00.0' ]",
];

fn layout(n: usize) -> BoxedStrategy<Layout> {
    let one = (
        any::<bool>(),
        select(vec![", ", ",", " , ", ",  "]),
        any::<bool>(),
    )
        .prop_map(|(pad, sep, trailing)| Layout::OneLine { pad, sep, trailing });
    let per = (
        select(vec!["  ", "    ", "\t", "        "]),
        any::<bool>(),
        any::<bool>(),
        vec((prop::bool::weighted(0.3), prop::bool::weighted(0.2)), n),
        prop::option::weighted(0.6, select(vec!["", "  "])),
    )
        .prop_map(
            |(indent, trailing, open_comment, comments, close_own_line)| Layout::PerLine {
                indent,
                trailing,
                open_comment,
                comments,
                close_own_line,
            },
        );
    let hanging = any::<bool>().prop_map(|trailing| Layout::Hanging { trailing });
    let chain = (0..=n).prop_map(|split| Layout::Chain { split });
    let wrapped = (
        vec((any::<bool>(), prop::bool::weighted(0.2)), n),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(breaks, trailing, close_own_line)| Layout::Wrapped {
            breaks,
            trailing,
            close_own_line,
        });
    if n == 0 {
        prop_oneof![one, per].boxed()
    } else {
        prop_oneof![4 => one, 4 => per, 1 => hanging, 1 => chain, 2 => wrapped].boxed()
    }
}

fn entries() -> impl Strategy<Value = Vec<(String, u8)>> {
    let quote = prop_oneof![Just(b'\''), Just(b'"')];
    (
        vec(entry_text(), 0..6),
        quote,
        prop::bool::weighted(0.15),
        vec(prop_oneof![Just(b'\''), Just(b'"')], 6),
    )
        .prop_map(|(texts, q, mixed, qs)| {
            texts
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, if mixed { qs[i] } else { q }))
                .collect()
        })
}

fn doc_with(
    list: impl Strategy<Value = Option<(Layout, Vec<(String, u8)>)>>,
) -> impl Strategy<Value = Doc> {
    (
        vec(select(OTHER.to_vec()), 0..5),
        prop::bool::weighted(0.1),
        select(vec![(" ", " "), ("", ""), ("  ", "\t")]),
        list,
        vec(select(OTHER.to_vec()), 0..5),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(before, shadowed, key_ws, list, after, final_newline)| Doc {
                before,
                shadowed,
                key_ws,
                list,
                after,
                final_newline,
            },
        )
}

fn any_list() -> impl Strategy<Value = Option<(Layout, Vec<(String, u8)>)>> {
    let some = entries().prop_flat_map(|e| {
        let n = e.len();
        (layout(n), Just(e))
    });
    prop::option::weighted(0.9, some)
}

fn doc() -> impl Strategy<Value = Doc> {
    doc_with(any_list())
}

fn q(text: &str, quote: u8) -> String {
    let c = quote as char;
    format!("{c}{text}{c}")
}

impl Doc {
    fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for s in &self.before {
            out.push_str(s);
            out.push('\n');
        }
        if self.shadowed {
            out.push_str("pci = [ '05:00.0' ]\n");
        }
        let (wl, wr) = self.key_ws;
        let key = format!("pci{wl}={wr}");
        if let Some((layout, items)) = &self.list {
            let quoted: Vec<String> = items.iter().map(|(t, c)| q(t, *c)).collect();
            out.push_str(&render_list(&key, layout, &quoted));
            out.push('\n');
        }
        for s in &self.after {
            out.push_str(s);
            out.push('\n');
        }
        if !self.final_newline {
            // Only a statement may end the file without a newline: a
            // comment there is a lexical error in xl.
            if out.ends_with('\n') && !last_line(&out).contains('#') {
                out.pop();
            }
        }
        out.into_bytes()
    }
}

fn last_line(s: &str) -> &str {
    let body = s.strip_suffix('\n').unwrap_or(s);
    body.rsplit('\n').next().unwrap_or("")
}

fn render_list(key: &str, layout: &Layout, items: &[String]) -> String {
    match layout {
        Layout::OneLine { pad, sep, trailing } => {
            let mut body = items.join(sep);
            if *trailing && !items.is_empty() {
                body.push(',');
            }
            if *pad {
                format!("{key}[ {body} ]")
            } else {
                format!("{key}[{body}]")
            }
        }
        Layout::PerLine {
            indent,
            trailing,
            open_comment,
            comments,
            close_own_line,
        } => {
            let mut s = format!("{key}[");
            if *open_comment {
                s.push_str(" # passed-through devices");
            }
            s.push('\n');
            for (i, item) in items.iter().enumerate() {
                let (eol, before) = comments.get(i).copied().unwrap_or_default();
                if before {
                    s.push_str(&format!("{indent}# about {i}\n"));
                }
                let last = i + 1 == items.len();
                let comma = if !last || *trailing { "," } else { "" };
                s.push_str(&format!("{indent}{item}{comma}"));
                if eol {
                    s.push_str(&format!(" # entry {i}"));
                }
                if !(last && close_own_line.is_none()) || eol {
                    s.push('\n');
                }
            }
            match close_own_line {
                Some(ci) => s.push_str(&format!("{ci}]")),
                None if items.is_empty() => s.push(']'),
                None => {
                    if s.ends_with('\n') {
                        s.push_str(&format!("{indent}]"));
                    } else {
                        s.push_str(" ]");
                    }
                }
            }
            s
        }
        Layout::Hanging { trailing } => {
            let mut s = format!("{key}[ ");
            let pad = " ".repeat(key.len() + 2);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(&format!(",\n{pad}"));
                }
                s.push_str(item);
            }
            if *trailing {
                s.push(',');
            }
            s.push_str(" ]");
            s
        }
        Layout::Wrapped {
            breaks,
            trailing,
            close_own_line,
        } => {
            let mut s = format!("{key}[ ");
            for (i, item) in items.iter().enumerate() {
                s.push_str(item);
                let last = i + 1 == items.len();
                if !last || *trailing {
                    s.push(',');
                }
                let (brk, comment) = breaks.get(i).copied().unwrap_or_default();
                if last {
                    break;
                }
                if brk {
                    if comment {
                        s.push_str(" # more");
                    }
                    s.push_str("\n    ");
                } else {
                    s.push(' ');
                }
            }
            if *close_own_line {
                s.push_str("\n]");
            } else {
                s.push_str(" ]");
            }
            s
        }
        Layout::Chain { split } => {
            let (a, b) = items.split_at(*split);
            let list = |v: &[String]| {
                if v.is_empty() {
                    "[ ]".to_string()
                } else {
                    format!("[ {} ]", v.join(", "))
                }
            };
            format!("{key}{}\npci += {}", list(a), list(b))
        }
    }
}

// ---------------------------------------------------------------------------
// The model: what the pci list should be after a request.

/// The host functions a spec covers, without a host: a BDF its function,
/// `BB:DD.*` all eight, a name only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cover {
    Funcs((u16, u8, u8), u8),
    Name(String),
}

fn cover(s: &PciSpec) -> Cover {
    match &s.device {
        Device::Bdf(p) => Cover::Funcs(
            (p.domain, p.bus, p.dev),
            match p.func {
                Func::One(f) => 1 << f,
                Func::All => 0xff,
            },
        ),
        Device::Name(n) => Cover::Name(n.clone()),
    }
}

fn overlaps(a: &Cover, b: &Cover) -> bool {
    match (a, b) {
        (Cover::Funcs(x, m), Cover::Funcs(y, n)) => x == y && m & n != 0,
        (a, b) => a == b,
    }
}

/// Whether every function of `a` is one of `b`'s.
fn within(a: &Cover, b: &Cover) -> bool {
    match (a, b) {
        (Cover::Funcs(x, m), Cover::Funcs(y, n)) => x == y && m & !n == 0,
        (a, b) => a == b,
    }
}

/// What the pci list should become, or `Err` when the plan must refuse: a
/// device asked twice, a wildcard entry partly removed or asked with other
/// options, two entries at one vslot where the run writes one.
fn expected(before: &[PciSpec], req: &PciRequest) -> Result<Vec<PciSpec>, &'static str> {
    let want: Vec<Cover> = req.devices.iter().map(cover).collect();
    for (j, w) in want.iter().enumerate() {
        if want[..j].iter().any(|v| overlaps(v, w)) {
            return Err("asked twice");
        }
    }
    // Per entry: None (removed) or the spec it becomes and whether written.
    let mut out: Vec<Option<(PciSpec, bool)>> =
        before.iter().map(|s| Some((s.clone(), false))).collect();
    let mut new = Vec::new();
    if req.state == ListState::Absent {
        for (i, s) in before.iter().enumerate() {
            let c = cover(s);
            let hit = want.iter().filter(|w| overlaps(w, &c)).count() > 0;
            if !hit {
                continue;
            }
            let whole = match &c {
                Cover::Funcs(slot, m) => {
                    let gone = want.iter().fold(0u8, |acc, w| match w {
                        Cover::Funcs(x, n) if x == slot => acc | n,
                        _ => acc,
                    });
                    m & !gone == 0
                }
                Cover::Name(_) => true,
            };
            if !whole {
                return Err("part of a wildcard entry");
            }
            out[i] = None;
        }
    } else {
        let exact = req.state == ListState::Exact;
        let mut replaced = vec![false; before.len()];
        let mut hit_any = vec![false; before.len()];
        for (w, wc) in req.devices.iter().zip(&want) {
            let hits: Vec<usize> = (0..before.len())
                .filter(|&i| !replaced[i] && overlaps(&cover(&before[i]), wc))
                .collect();
            for &i in &hits {
                hit_any[i] = true;
            }
            let keeper = match hits
                .iter()
                .copied()
                .find(|&i| !within(&cover(&before[i]), wc))
            {
                Some(i) if !exact => {
                    let e = &before[i];
                    let same = (
                        e.permissive,
                        e.msitranslate,
                        e.seize,
                        e.power_mgmt,
                        e.rdm_policy,
                    ) == (
                        w.permissive,
                        w.msitranslate,
                        w.seize,
                        w.power_mgmt,
                        w.rdm_policy,
                    );
                    if !same || w.vslot.is_some_and(|v| e.vslot != Some(v)) {
                        return Err("a function of a wildcard entry with other options");
                    }
                    Some(i)
                }
                Some(i) => {
                    out[i] = Some((w.clone(), true));
                    replaced[i] = true;
                    Some(i)
                }
                None => match hits.first() {
                    None => {
                        new.push(w.clone());
                        None
                    }
                    Some(&i) => {
                        if before[i] != *w {
                            out[i] = Some((w.clone(), true));
                            replaced[i] = true;
                        }
                        Some(i)
                    }
                },
            };
            for &i in hits.iter().filter(|&&i| Some(i) != keeper) {
                out[i] = None;
            }
        }
        if exact {
            for (i, hit) in hit_any.iter().enumerate() {
                if !hit {
                    out[i] = None;
                }
            }
        }
    }
    let list: Vec<(PciSpec, bool)> = out
        .into_iter()
        .flatten()
        .chain(new.into_iter().map(|w| (w, true)))
        .collect();
    for (j, (b, written)) in list.iter().enumerate() {
        let clash = list[..j]
            .iter()
            .any(|(a, w)| a.vslot.is_some() && a.vslot == b.vslot && (*w || *written));
        if clash {
            return Err("two entries at one vslot");
        }
    }
    Ok(list.into_iter().map(|(s, _)| s).collect())
}

fn read_devices(bytes: &[u8]) -> Vec<PciSpec> {
    let cfg = XlConfig::parse(bytes)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(bytes)));
    PciConfig::read(&cfg, Path::new(PATH))
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(bytes)))
        .devices()
}

/// The `pci` assignments an edit of the list may touch: the last `=` and
/// every `+=` after it.
fn edited_spans(cfg: &XlConfig) -> Vec<std::ops::Range<usize>> {
    let all = cfg.assignments();
    let start = all
        .iter()
        .rposition(|a| a.key == "pci" && a.op == Op::Assign)
        .unwrap_or(0);
    all[start..]
        .iter()
        .filter(|a| a.key == "pci")
        .map(|a| a.span())
        .collect()
}

/// The bytes between (and around) `spans`.
fn gaps<'a>(src: &'a [u8], spans: &[std::ops::Range<usize>]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    for s in spans {
        out.push(&src[pos..s.start]);
        pos = s.end;
    }
    out.push(&src[pos..]);
    out
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config())]

    /// Render a config, plan a request, read the result back: it holds the
    /// planned list (which is the model's), and planning again changes
    /// nothing.
    #[test]
    fn plan_reads_back_and_is_idempotent(doc in doc(), req in request()) {
        let src = doc.render();
        let cfg = XlConfig::parse(&src)
            .map_err(|e| TestCaseError::fail(format!("generator made a bad file ({e}):\n{}", lossy(&src))))?;
        let before = read_devices(&src);
        let planned = plan(&cfg, Path::new(PATH), &req);
        let model = expected(&before, &req);
        let p = match (planned, model) {
            (Ok(p), Ok(_)) => p,
            // A refusal the model predicts leaves nothing to check further.
            (Err(DomCfgError::Conflict { .. }), Err(_)) => return Ok(()),
            (Err(e), _) => return Err(TestCaseError::fail(format!("{e}\n--- file:\n{}", lossy(&src)))),
            (Ok(p), Err(why)) => return Err(TestCaseError::fail(format!("planned {:?}, the model refuses ({why})\n--- file:\n{}", p.devices, lossy(&src)))),
        };
        let back = read_devices(&p.after);
        prop_assert_eq!(&back, &p.devices, "read back != planned\n--- before:\n{}\n--- after:\n{}", lossy(&src), lossy(&p.after));
        prop_assert_eq!(Ok(p.devices.clone()), expected(&before, &req), "planned != model\n--- before:\n{}\n--- after:\n{}", lossy(&src), lossy(&p.after));
        prop_assert_eq!(p.changed(), p.after != src, "changed flag disagrees with bytes");
        let cfg2 = XlConfig::parse(&p.after).unwrap();
        let again = plan(&cfg2, Path::new(PATH), &req).unwrap();
        prop_assert!(again.actions.is_empty(), "second plan not a no-op: {:?}\n--- after:\n{}", again.actions, lossy(&p.after));
        prop_assert_eq!(&again.after, &p.after);
    }

    /// Adding a device to a one-line non-empty list and removing it again
    /// gives the original bytes back.
    ///
    /// Other layouts (what the `other_layouts_add_then_remove` test below
    /// pins down):
    /// - one entry per line, `]` on its own line, and the hanging layout:
    ///   also byte-identical (the new line goes, comment-free, with its
    ///   comma);
    /// - one entry per line with `]` right after the last entry and no
    ///   trailing comma: also identical;
    /// - an empty list: `[]` and `[ ]` come back identical, but `[  ]`
    ///   (more blanks) comes back as `[ ]`, and a multi-line empty list
    ///   `[\n]` as `[ ]`;
    /// - no `pci` key at all: adding appends `pci = [ '...' ]` and removing
    ///   leaves `pci = [ ]` behind (the key is never deleted);
    /// - a `+=` chain: the new entry goes to the last list; identical.
    #[test]
    fn add_then_remove_one_line(
        items in entries().prop_filter("non-empty", |e| !e.is_empty()),
        pad in any::<bool>(),
        sep in select(vec![", ", ",", " , "]),
        trailing in any::<bool>(),
        (before, after) in (vec(select(OTHER.to_vec()), 0..4), vec(select(OTHER.to_vec()), 0..4)),
        add in fresh_spec(),
    ) {
        let doc = Doc {
            before,
            shadowed: false,
            key_ws: (" ", " "),
            list: Some((Layout::OneLine { pad, sep, trailing }, items)),
            after,
            final_newline: true,
        };
        check_round_trip(&doc, &add)?;
    }

    /// The same round trip over every other layout, where it holds.
    #[test]
    fn other_layouts_add_then_remove(
        doc in doc_with(entries().prop_flat_map(|e| { let n = e.len(); (layout(n), Just(e)) })
            .prop_filter("layouts that do not round-trip", |(l, e)| match l {
                Layout::PerLine { .. } => !e.is_empty(),
                Layout::OneLine { pad, .. } => !(*pad && e.is_empty()),
                _ => true,
            })
            .prop_map(Some)),
        add in fresh_spec(),
    ) {
        check_round_trip(&doc, &add)?;
    }

    /// Editing the list touches only the `pci` assignments: every byte
    /// before the first, between them, and after the last stays as it was.
    #[test]
    fn bytes_outside_the_list_never_change(
        doc in doc_with(entries().prop_flat_map(|e| { let n = e.len(); (layout(n), Just(e)) }).prop_map(Some)),
        req in request(),
    ) {
        let src = doc.render();
        let cfg = XlConfig::parse(&src).unwrap();
        // A refused plan changes no byte at all; that the plan should not
        // have been refused is `plan_reads_back_and_is_idempotent`'s business.
        let Ok(p) = plan(&cfg, Path::new(PATH), &req) else { return Ok(()) };
        let cfg2 = XlConfig::parse(&p.after).unwrap();
        let (old, new) = (edited_spans(&cfg), edited_spans(&cfg2));
        prop_assert_eq!(old.len(), new.len(), "number of pci assignments changed");
        let (g_old, g_new) = (gaps(&src, &old), gaps(&p.after, &new));
        for (i, (a, b)) in g_old.iter().zip(&g_new).enumerate() {
            prop_assert_eq!(lossy(a), lossy(b), "gap {} changed\n--- before:\n{}\n--- after:\n{}", i, lossy(&src), lossy(&p.after));
        }
        // And each assignment still starts with its own key and operator.
        for (o, n) in old.iter().zip(&new) {
            let ko = &src[o.start..o.start + 3];
            let kn = &p.after[n.start..n.start + 3];
            prop_assert_eq!(ko, kn);
        }
    }

    /// The reader never panics on arbitrary bytes, and the lexer's tokens
    /// tile the input.
    #[test]
    fn parse_never_panics_on_bytes(src in vec(any::<u8>(), 0..400)) {
        check_tokens(&src)?;
        let _ = XlConfig::parse(&src);
    }

    /// Same, over bytes drawn from xl's own alphabet (more of them parse).
    #[test]
    fn parse_never_panics_on_config_alphabet(src in vec(select(b"ab_.0x1f9 \t\n#'\"\\,[]=+;@-\r\0".to_vec()), 0..300)) {
        check_tokens(&src)?;
        if let Ok(cfg) = XlConfig::parse(&src) {
            check_engine(&cfg)?;
        }
    }

}

/// Real configs (the oracle corpus and generated ones) with a few bytes
/// inserted, deleted or replaced: no panic, tokens cover every byte, and
/// when the file still parses, the engine's plan either refuses it cleanly
/// or reads back and is idempotent.
///
/// The corpus holds lists nested 4996 deep, which xl accepts: the reader
/// recurses once per level and needs more than the 2 MiB of a test thread
/// (more than 8 MiB in a debug build), so this runs on a thread with the
/// stack the module binaries give it (protocol.rs: 256 MiB).
#[test]
fn mutated_configs() {
    let strategy = (
        prop_oneof![corpus_file(), doc().prop_map(|d| d.render())],
        vec(
            (
                any::<prop::sample::Index>(),
                0u8..4,
                select(b"[],'\"#\n\\=+; \t@xz0\r\0\xff".to_vec()),
            ),
            1..5,
        ),
        request(),
    );
    big_stack(move || {
        let mut runner = proptest::test_runner::TestRunner::new(config());
        let result = runner.run(&strategy, |(base, muts, req)| mutated_case(base, muts, req));
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

fn mutated_case(
    base: Vec<u8>,
    muts: Vec<(prop::sample::Index, u8, u8)>,
    req: PciRequest,
) -> Result<(), TestCaseError> {
    let mut src = base;
    for (at, op, byte) in muts {
        let i = at.index(src.len() + 1);
        match op {
            0 => src.insert(i, byte),
            1 if i < src.len() => {
                src.remove(i);
            }
            2 if i < src.len() => src[i] = byte,
            3 if i < src.len() => {
                // Duplicate a short run (a line, an entry) in place.
                let end = (i + 1 + (byte as usize % 24)).min(src.len());
                let run = src[i..end].to_vec();
                src.splice(i..i, run);
            }
            _ => src.insert(i, byte),
        }
    }
    check_tokens(&src)?;
    if let Ok(cfg) = XlConfig::parse(&src) {
        check_engine(&cfg)?;
        if let Ok(p) = plan(&cfg, Path::new(PATH), &req) {
            let cfg2 = XlConfig::parse(&p.after).map_err(|e| {
                TestCaseError::fail(format!(
                    "plan wrote a file xl refuses ({e}):\n{}",
                    lossy(&p.after)
                ))
            })?;
            let again = plan(&cfg2, Path::new(PATH), &req).map_err(|e| {
                TestCaseError::fail(format!(
                    "{e}\n--- before:\n{}\n--- after:\n{}",
                    lossy(&src),
                    lossy(&p.after)
                ))
            })?;
            prop_assert!(
                again.actions.is_empty(),
                "not idempotent: {:?}\n--- before:\n{}\n--- after:\n{}",
                again.actions,
                lossy(&src),
                lossy(&p.after)
            );
        }
    }
    Ok(())
}

fn check_round_trip(doc: &Doc, add: &PciSpec) -> Result<(), TestCaseError> {
    let src = doc.render();
    let before = read_devices(&src);
    prop_assume!(!before.iter().any(|s| s.same_device(add)));
    let cfg = XlConfig::parse(&src).unwrap();
    let req = |state| PciRequest {
        devices: vec![add.clone()],
        state,
        ..PciRequest::default()
    };
    let added = plan(&cfg, Path::new(PATH), &req(ListState::Present))
        .map_err(|e| TestCaseError::fail(format!("{e}\n{}", lossy(&src))))?;
    prop_assert!(added.changed());
    let cfg2 = XlConfig::parse(&added.after).unwrap();
    let removed = plan(&cfg2, Path::new(PATH), &req(ListState::Absent)).unwrap();
    prop_assert_eq!(
        lossy(&removed.after),
        lossy(&src),
        "add then remove is not the identity\n--- with the device:\n{}",
        lossy(&added.after)
    );
    Ok(())
}

fn check_tokens(src: &[u8]) -> Result<(), TestCaseError> {
    let mut pos = 0;
    for t in lex(src) {
        prop_assert_eq!(t.span.start, pos, "gap or overlap before token {:?}", t);
        prop_assert!(t.span.end > t.span.start, "empty token {:?}", t);
        pos = t.span.end;
    }
    prop_assert_eq!(pos, src.len(), "tokens stop short of the end");
    Ok(())
}

/// What the engine may do with any file xl accepts: read the pci settings
/// or refuse them, and the Editor may rewrite any list without breaking the
/// file.
fn check_engine(cfg: &XlConfig) -> Result<(), TestCaseError> {
    let _ = PciConfig::read(cfg, Path::new(PATH));
    for key in cfg.keys() {
        let Some(items) = cfg.list_items(&key) else {
            continue;
        };
        let n = items.len();
        let changes: Vec<ItemChange> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    ItemChange::Remove
                } else {
                    ItemChange::Keep
                }
            })
            .collect();
        let mut ed = Editor::new(cfg);
        ed.edit_list(&key, &changes, &["x".to_string()]);
        let out = ed.finish();
        let back = XlConfig::parse(&out).map_err(|e| {
            TestCaseError::fail(format!(
                "editing list {key} broke the file ({e}):\n--- before:\n{}\n--- after:\n{}",
                lossy(cfg.source()),
                lossy(&out)
            ))
        })?;
        let got = back.list_items(&key).map(|v| v.len());
        let want = n - n.div_ceil(2) + 1;
        prop_assert_eq!(
            got,
            Some(want),
            "list {} has the wrong length after the edit\n--- before:\n{}\n--- after:\n{}",
            key,
            lossy(cfg.source()),
            lossy(&out)
        );
    }
    Ok(())
}

/// A config of the oracle corpus (files xl accepts and files it rejects).
fn corpus_file() -> impl Strategy<Value = Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/configs");
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "cfg"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter(|b| b.len() < 64 * 1024)
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        files.push(b"name = 'vm1'\npci = [ '07:00.0', '08:00.0,permissive=1' ]\n".to_vec());
    }
    select(files)
}

/// The engine on a few hand-picked files: a smoke test that the generators
/// above are not the only thing standing between us and a blind spot.
#[test]
fn generated_layouts_parse() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&doc(), |d| {
            let src = d.render();
            XlConfig::parse(&src)
                .map_err(|e| TestCaseError::fail(format!("{e}:\n{}", lossy(&src))))?;
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Fixed cases: the round trips that do not give the original bytes back
// (pinned so that the comment on `add_then_remove_one_line` stays true), and
// the minimal reproductions of what the properties found.

fn edit(src: &str, devices: &[&str], state: ListState) -> Result<String, String> {
    let cfg = XlConfig::parse(src.as_bytes()).map_err(|e| e.to_string())?;
    let req = PciRequest {
        devices: devices
            .iter()
            .map(|d| PciSpec::parse_strict(d).unwrap())
            .collect(),
        state,
        ..PciRequest::default()
    };
    let p = plan(&cfg, Path::new(PATH), &req).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(p.after).unwrap())
}

#[test]
fn round_trips_that_change_the_layout() {
    let add_remove = |src: &str| {
        let added = edit(src, &["07:00.0"], ListState::Present).unwrap();
        let removed = edit(&added, &["07:00.0"], ListState::Absent).unwrap();
        (added, removed)
    };
    // No pci key: the key stays, empty.
    assert_eq!(
        add_remove("name = 'vm1'\n"),
        (
            "name = 'vm1'\npci = [ '0000:07:00.0' ]\n".into(),
            "name = 'vm1'\npci = [ ]\n".into()
        )
    );
    // A multi-line empty list comes back on one line.
    assert_eq!(
        add_remove("pci = [\n]\n"),
        (
            "pci = [\n    '0000:07:00.0',\n]\n".into(),
            "pci = [ ]\n".into()
        )
    );
    // Extra blanks in an empty list are not kept.
    assert_eq!(add_remove("pci = [  ]\n").1, "pci = [ ]\n");
    // These do round-trip.
    for src in [
        "pci = []\n",
        "pci = [ ]\n",
        "pci = [\n  '01:00.0',\n]\n",
        "pci = [ '01:00.0',\n        '02:00.0' ]\n",
    ] {
        assert_eq!(add_remove(src).1, src);
    }
}

/// Found by `plan_reads_back_and_is_idempotent`: in a multi-line list whose
/// last entry shares its line with `]`, removing that entry while adding
/// another drops the comma before the new entry. The engine's read-back
/// check catches it ("internal error ... nothing was written"), so the
/// module fails instead of editing. Same through the binary:
/// `printf "pci = [\n    '07:00.0',\n    '08:00.0' ]\n" > vm.cfg`, then
/// `{"path": "vm.cfg", "devices": ["07:00.0", "09:00.0"], "state": "exact"}`.
#[test]
fn remove_last_entry_on_the_bracket_line_and_add() {
    let src = "pci = [\n    '07:00.0',\n    '08:00.0' ]\n";
    let out = edit(src, &["07:00.0", "09:00.0"], ListState::Exact);
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_devices(out.as_bytes()).len(), 2, "{out}");
}

/// Found by `mutated_configs` and the plan property: in a multi-line list
/// with a trailing comma whose last entry shares its line with `]`,
/// removing the last two entries leaves `,\n, ]` behind (the line removal of
/// the one and the inline removal of the other overlap). Caught by the
/// read-back check, as above. Binary: `printf "pci = [\n  '07:00.0',\n
/// '08:00.0',\n  '09:00.0', ]\n"`, `{"devices": ["08:00.0", "09:00.0"],
/// "state": "absent"}`.
#[test]
fn remove_last_two_entries_with_trailing_comma() {
    let src = "pci = [\n  '07:00.0',\n  '08:00.0',\n  '09:00.0', ]\n";
    let out = edit(src, &["08:00.0", "09:00.0"], ListState::Absent);
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_devices(out.as_bytes()).len(), 1, "{out}");
}

/// Found by `plan_reads_back_and_is_idempotent` (wrapped layout): several
/// entries on the line of `[`, a trailing comma, `]` on its own line;
/// removing the last entry while adding one leaves `'07:00.0',,`. Caught by
/// the read-back check. Binary: `printf "pci = [ '07:00.0', '08:00.0',\n]\n"`,
/// `{"devices": ["07:00.0", "09:00.0"], "state": "exact"}`.
#[test]
fn remove_last_of_a_shared_line_and_add_with_trailing_comma() {
    let src = "pci = [ '07:00.0', '08:00.0',\n]\n";
    let out = edit(src, &["07:00.0", "09:00.0"], ListState::Exact);
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_devices(out.as_bytes()).len(), 2, "{out}");
}
