//! What a folder holds (every file's bytes and mode, every symlink's
//! target), as a value to compare and to snapshot, and the check that a
//! run left a folder untouched.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its bytes and permission bits.
    File { bytes: Vec<u8>, mode: u32 },
    /// A symbolic link and what it points to.
    Symlink(PathBuf),
    /// A folder.
    Dir,
}

/// Every entry under a folder, by relative path (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(pub BTreeMap<String, Entry>);

impl Listing {
    /// The listing without the entry `name`.
    pub fn without(&self, name: &str) -> Listing {
        let mut l = self.clone();
        l.0.remove(name);
        l
    }

    /// The listing as JSON for a snapshot: a file as its text (invalid
    /// UTF-8 replaced), a symlink as `{"symlink": TARGET}`, a folder as
    /// `{"dir": true}`.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(name, e)| {
                let v = match e {
                    Entry::File { bytes, .. } => {
                        Value::String(String::from_utf8_lossy(bytes).into_owned())
                    }
                    Entry::Symlink(t) => json!({ "symlink": t.to_string_lossy() }),
                    Entry::Dir => json!({ "dir": true }),
                };
                (name.clone(), v)
            })
            .collect();
        Value::Object(map)
    }
}

pub(super) fn list_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    for entry in fs::read_dir(dir).expect("read folder") {
        let entry = entry.expect("folder entry");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let e = if meta.file_type().is_symlink() {
            Entry::Symlink(fs::read_link(&path).expect("readlink"))
        } else if meta.is_dir() {
            list_tree(root, &path, out);
            Entry::Dir
        } else {
            Entry::File {
                bytes: fs::read(&path).expect("read file"),
                mode: meta.permissions().mode() & 0o7777,
            }
        };
        out.insert(rel, e);
    }
}

/// Whether `name` is a lock sidecar (`.NAME.xenpci.lock`): left in place
/// on purpose (see `fileio::lock`), also by a failed run.
pub(super) fn is_lock_sidecar(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with('.') && base.ends_with(".xenpci.lock")
}

/// Asserts that `after` holds every entry of `before` unchanged (bytes,
/// mode, link target) and nothing new but lock sidecars.
pub(super) fn assert_untouched(before: &Listing, after: &Listing, what: &str) {
    for (name, e) in &before.0 {
        assert_eq!(after.0.get(name), Some(e), "{what}: {name} changed");
    }
    for name in after.0.keys() {
        assert!(
            before.0.contains_key(name) || is_lock_sidecar(name),
            "{what}: created {name}"
        );
    }
}
