//! Reader and editor cases, one line each.

use super::edit::{Editor, ItemChange};
use super::*;

fn s(v: &str) -> Value {
    Value::String(v.as_bytes().to_vec())
}

macro_rules! reads {
    ($src:expr, $key:expr => $val:expr) => {
        let cfg = XlConfig::parse($src.as_bytes()).unwrap_or_else(|e| panic!("{:?}: {e}", $src));
        assert_eq!(cfg.value($key), $val, "{:?}", $src);
    };
}

macro_rules! rejects {
    ($src:expr => line $line:expr) => {
        match XlConfig::parse($src.as_bytes()) {
            Ok(_) => panic!("accepted {:?}", $src),
            Err(e) => assert_eq!(e.line, $line, "{:?}: {e}", $src),
        }
    };
}

#[test]
fn reading() {
    reads!("a = 1\n", "a" => Some(s("1")));
    reads!("a = 1", "a" => Some(s("1")));
    reads!("a = 1; a = 2\n", "a" => Some(s("2")));
    reads!("a = 'x'\na += \"y\"\n", "a" => Some(s("xy")));
    reads!("a = ['x']\na += ['y',]\n", "a" => Some(Value::List(vec![s("x"), s("y")])));
    reads!("a += ['y']\n", "a" => Some(Value::List(vec![s("y")])));
    reads!("a = [\n 'x' ,\n\n 'y'\n ,\n]\n", "a" => Some(Value::List(vec![s("x"), s("y")])));
    reads!("a = []\n", "a" => Some(Value::List(vec![])));
    reads!("a = [[1], '2']\n", "a" => Some(Value::List(vec![Value::List(vec![s("1")]), s("2")])));
    reads!("# c\n\n a.b_c = 0x1f # d\n", "a.b_c" => Some(s("0x1f")));
    reads!("a = 'it\\'s \\\\ \\t'\n", "a" => Some(s("it's \\ \t")));
    reads!("a = 'x\\101y'\n", "a" => Some(s("xy")));
    reads!("a = 1 @", "a" => Some(s("1")));
    reads!("a = 1\n#", "a" => Some(s("1")));
    reads!("", "a" => None);
}

#[test]
fn rejecting() {
    rejects!("a = 1\r\n" => line 1);
    rejects!("\u{feff}a = 1\n" => line 1);
    rejects!("a = 1\n# c" => line 2);
    rejects!("a = -1\n" => line 1);
    rejects!("A = 1\n" => line 1);
    rejects!("a = 'x\\x41'\n" => line 1);
    rejects!("a = 'x\\q'\n" => line 1);
    rejects!("a = 'x\n" => line 1);
    rejects!("a = [1,,2]\n" => line 1);
    rejects!("a = [,]\n" => line 1);
    rejects!("a = 1 2\n" => line 1);
    rejects!("a = ['x']\na += 'y'\n" => line 2);
    rejects!("x = 1\na =\nb = 2\n" => line 1);
    rejects!("a = [\n1\n2]\n" => line 3);
}

#[test]
fn long_values() {
    let cfg = XlConfig::parse(b"a = 0x10\nb = 010\nc = 1x\nd += 1\ne = [1]\nf = ' -3'\n").unwrap();
    assert_eq!(cfg.long("a"), Some(Ok(16)));
    assert_eq!(cfg.long("b"), Some(Ok(8)));
    assert!(cfg.long("c").unwrap().is_err());
    assert!(cfg.long("d").unwrap().is_err());
    assert!(cfg.long("e").unwrap().is_err());
    assert_eq!(cfg.long("f"), Some(Ok(-3)));
    assert_eq!(cfg.long("g"), None);
}

/// `given(src).running(changes, new).produces(out)` for the `pci` list.
fn edit(src: &str, changes: &[ItemChange], new: &[&str]) -> String {
    let cfg = XlConfig::parse(src.as_bytes()).unwrap();
    let mut ed = Editor::new(&cfg);
    let new: Vec<String> = new.iter().map(|s| s.to_string()).collect();
    assert!(ed.edit_list("pci", changes, &new));
    let out = String::from_utf8(ed.finish()).unwrap();
    XlConfig::parse(out.as_bytes()).unwrap_or_else(|e| panic!("edit made {out:?} unreadable: {e}"));
    out
}

use ItemChange::{Keep as K, Remove as R};

macro_rules! edits {
    ($src:expr, [$($c:expr),*], [$($n:expr),*] => $out:expr) => {
        assert_eq!(edit($src, &[$($c),*], &[$($n),*]), $out, "from {:?}", $src);
    };
}

#[test]
fn one_line_lists_stay_one_line() {
    edits!("pci = [ 'a' ]\n", [], ["b"] => "pci = [ 'a', 'b' ]\n");
    edits!("pci = ['a','b']\n", [], ["c"] => "pci = ['a','b','c']\n");
    edits!("pci = [ \"a\", ]\n", [], ["b"] => "pci = [ \"a\", \"b\", ]\n");
    edits!("pci = [ 'a', 'b' ]\n", [R], [] => "pci = [ 'b' ]\n");
    edits!("pci = [ 'a', 'b' ]\n", [K, R], [] => "pci = [ 'a' ]\n");
    edits!("pci = [ 'a', 'b', ]\n", [K, R], [] => "pci = [ 'a', ]\n");
    edits!("pci = [ 'a', 'b', 'c' ]\n", [R, R], [] => "pci = [ 'c' ]\n");
    edits!("pci = [ 'a' ] # x\n", [R], [] => "pci = [ ] # x\n");
    edits!("pci = ['a']\n", [R], [] => "pci = []\n");
    edits!("pci = [ ]\n", [], ["a"] => "pci = [ 'a' ]\n");
    edits!("pci = []\n", [], ["a"] => "pci = ['a']\n");
    edits!("pci = [ 'a', 'b' ]\n", [R, R], ["c"] => "pci = [ 'c' ]\n");
    edits!("pci = [ 'a', 'b' ]\n", [K, ItemChange::Replace("B,x=1".into())], [] => "pci = [ 'a', 'B,x=1' ]\n");
}

#[test]
fn multi_line_lists_keep_their_lines() {
    let src = "pci = [\n    'a', # one\n    'b',\n]\n";
    edits!(src, [], ["c"] => "pci = [\n    'a', # one\n    'b',\n    'c',\n]\n");
    edits!(src, [R], [] => "pci = [\n    'b',\n]\n");
    edits!(src, [K, R], [] => "pci = [\n    'a', # one\n]\n");
    let bare = "pci = [\n  'a',\n  'b'\n]\n";
    edits!(bare, [], ["c"] => "pci = [\n  'a',\n  'b',\n  'c'\n]\n");
    edits!(bare, [K, R], [] => "pci = [\n  'a'\n]\n");
    edits!("pci = [ 'a',\n        'b' ]\n", [], ["c"] => "pci = [ 'a',\n        'b',\n        'c' ]\n");
    edits!("pci = [\n]\n", [], ["a"] => "pci = [\n    'a',\n]\n");
}

#[test]
fn absent_key_gets_a_line() {
    edits!("name = 'vm'\n", [], ["a"] => "name = 'vm'\npci = [ 'a' ]\n");
    edits!("name = 'vm'", [], ["a"] => "name = 'vm'\npci = [ 'a' ]\n");
    edits!("", [], ["a"] => "pci = [ 'a' ]\n");
}

#[test]
fn appended_lists_edit_in_place() {
    edits!("pci = ['a']\npci += ['b']\n", [R, K], ["c"] => "pci = []\npci += ['b', 'c']\n");
}

#[test]
fn quoting() {
    assert_eq!(edit::quote("a'b\\c", b'\''), "'a\\'b\\\\c'");
    assert_eq!(edit::quote("a'b", b'"'), "\"a'b\"");
}

#[test]
fn error_lines_follow_xl() {
    // A newline as the offending token: xl names the line before it.
    rejects!("a =\n" => line 0);
    rejects!("x = 1\n\nb =\n" => line 2);
    // End of file: the line of the last token, a newline counting on its own.
    rejects!("x = [1,\n\n\n" => line 3);
    rejects!("a = 1\nx =" => line 2);
    rejects!("x = \"" => line 1);
}
