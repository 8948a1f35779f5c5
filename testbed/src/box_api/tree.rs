//! Box's folder tree: folders and files, their ids and names, and their JSON.
//!
//! Invariants:
//! - Folder "0" ("All Files") always exists and has no parent.
//! - Files and folders share one name space per parent, compared case-insensitively
//!   (as Box and rclone's Box backend treat it): `children` holds the lower-cased
//!   name of every item, so a name is taken iff it is a key there.
//! - A file's content lives in the shared store under the same id; the tree only keeps
//!   what Box reports (size, sha1, etag) — the store's values after any corruption.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::error::BoxError;
use crate::clock::iso8601;

pub(crate) const ROOT: &str = "0";
const ROOT_NAME: &str = "All Files";

pub(crate) struct Folder {
    pub(crate) id: String,
    pub(crate) name: String,
    /// None only for the root.
    pub(crate) parent: Option<String>,
    pub(crate) created_at: SystemTime,
}

pub(crate) struct File {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) parent: String,
    /// Box's etag and sequence_id: "0" for the first version, +1 per new version.
    pub(crate) etag: u64,
    /// Id of the current `file_version`; new for every version.
    pub(crate) version_id: String,
    pub(crate) size: u64,
    /// Lower-case hex SHA-1 of the stored content.
    pub(crate) sha1: String,
    pub(crate) created_at: SystemTime,
    pub(crate) modified_at: SystemTime,
}

pub(crate) enum Item {
    Folder(Folder),
    File(File),
}

impl Item {
    pub(crate) fn name(&self) -> &str {
        match self {
            Item::Folder(f) => &f.name,
            Item::File(f) => &f.name,
        }
    }
}

/// The new content of a file version.
pub(crate) struct Content {
    pub(crate) size: u64,
    pub(crate) sha1: String,
}

pub(crate) struct Tree {
    items: HashMap<String, Item>,
    /// Folder id → lower-cased child name → child id.
    children: HashMap<String, BTreeMap<String, String>>,
    /// Next item / version id. Box ids are decimal strings.
    next_id: u64,
}

/// Checks a file or folder name (protocols/box.md rule 2): not empty, at most 255
/// characters, no `/` or `\`, not `.` or `..`, no leading or trailing spaces.
pub(crate) fn check_name(name: &str) -> Result<(), BoxError> {
    let bad = name.is_empty()
        || name.chars().count() > 255
        || name.contains(['/', '\\'])
        || name == "."
        || name == ".."
        || name.trim() != name;
    if bad {
        return Err(BoxError::item_name_invalid(format!(
            "Item name invalid: {name:?}"
        )));
    }
    Ok(())
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

impl Tree {
    pub(crate) fn new() -> Self {
        let mut tree = Tree {
            items: HashMap::new(),
            children: HashMap::new(),
            next_id: 100_000_000_001,
        };
        tree.items.insert(
            ROOT.to_string(),
            Item::Folder(Folder {
                id: ROOT.to_string(),
                name: ROOT_NAME.to_string(),
                parent: None,
                created_at: SystemTime::now(),
            }),
        );
        tree.children.insert(ROOT.to_string(), BTreeMap::new());
        tree
    }

    fn new_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    pub(crate) fn folder(&self, id: &str) -> Option<&Folder> {
        match self.items.get(id) {
            Some(Item::Folder(f)) => Some(f),
            _ => None,
        }
    }

    pub(crate) fn file(&self, id: &str) -> Option<&File> {
        match self.items.get(id) {
            Some(Item::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The item named `name` (any case) in folder `parent`.
    pub(crate) fn child(&self, parent: &str, name: &str) -> Option<&Item> {
        self.children
            .get(parent)
            .and_then(|c| c.get(&key(name)))
            .and_then(|id| self.items.get(id))
    }

    /// The 409 `item_name_in_use` for uploads if `name` is taken in `parent` by an
    /// item other than `except`.
    pub(crate) fn check_free(
        &self,
        parent: &str,
        name: &str,
        except: Option<&str>,
    ) -> Result<(), BoxError> {
        match self.child(parent, name) {
            Some(item) if Some(item_id(item)) != except => {
                Err(BoxError::name_in_use(self.conflict_json(item)))
            }
            _ => Ok(()),
        }
    }

    /// Adds a folder; the caller has checked the parent exists and the name is free.
    pub(crate) fn add_folder(&mut self, parent: &str, name: &str) -> String {
        let id = self.new_id();
        self.items.insert(
            id.clone(),
            Item::Folder(Folder {
                id: id.clone(),
                name: name.to_string(),
                parent: Some(parent.to_string()),
                created_at: SystemTime::now(),
            }),
        );
        self.children.insert(id.clone(), BTreeMap::new());
        self.children
            .entry(parent.to_string())
            .or_default()
            .insert(key(name), id.clone());
        id
    }

    /// Adds a file; the caller has checked the parent exists and the name is free.
    pub(crate) fn add_file(&mut self, parent: &str, name: &str, content: Content) -> String {
        let id = self.new_id();
        let version_id = self.new_id();
        let now = SystemTime::now();
        self.items.insert(
            id.clone(),
            Item::File(File {
                id: id.clone(),
                name: name.to_string(),
                parent: parent.to_string(),
                etag: 0,
                version_id,
                size: content.size,
                sha1: content.sha1,
                created_at: now,
                modified_at: now,
            }),
        );
        self.children
            .entry(parent.to_string())
            .or_default()
            .insert(key(name), id.clone());
        id
    }

    /// Replaces a file's content (a new version), renaming it if `rename` is given;
    /// the caller has checked the file exists and the new name is free.
    pub(crate) fn new_version(&mut self, id: &str, rename: Option<&str>, content: Content) {
        let version_id = self.new_id();
        let Some(Item::File(f)) = self.items.get_mut(id) else {
            return;
        };
        f.etag += 1;
        f.version_id = version_id;
        f.size = content.size;
        f.sha1 = content.sha1;
        f.modified_at = SystemTime::now();
        if let Some(name) = rename
            && name != f.name
        {
            let old = std::mem::replace(&mut f.name, name.to_string());
            let parent = f.parent.clone();
            if let Some(c) = self.children.get_mut(&parent) {
                c.remove(&key(&old));
                c.insert(key(name), id.to_string());
            }
        }
    }

    /// Removes an item and everything under it; returns the ids of removed files so
    /// their content can be dropped from the store.
    pub(crate) fn remove(&mut self, id: &str) -> Vec<String> {
        let mut files = Vec::new();
        let Some(item) = self.items.remove(id) else {
            return files;
        };
        let parent = match &item {
            Item::Folder(f) => f.parent.clone(),
            Item::File(f) => Some(f.parent.clone()),
        };
        if let Some(c) = parent.and_then(|p| self.children.get_mut(&p)) {
            c.remove(&key(item.name()));
        }
        match item {
            Item::File(f) => files.push(f.id),
            Item::Folder(f) => {
                let kids: Vec<String> = self
                    .children
                    .remove(&f.id)
                    .map(|c| c.into_values().collect())
                    .unwrap_or_default();
                for kid in kids {
                    files.extend(self.remove(&kid));
                }
            }
        }
        files
    }

    /// Children of a folder, folders first, each group by name (case-insensitive).
    pub(crate) fn list(&self, folder: &str) -> Vec<&Item> {
        let ids = self
            .children
            .get(folder)
            .into_iter()
            .flat_map(|c| c.values());
        let items: Vec<&Item> = ids.filter_map(|id| self.items.get(id)).collect();
        let (mut folders, files): (Vec<&Item>, Vec<&Item>) = items
            .into_iter()
            .partition(|i| matches!(i, Item::Folder(_)));
        folders.extend(files);
        folders
    }

    /// Folder ids from the root down to `folder`, inclusive.
    fn ancestry(&self, folder: &str) -> Vec<&Folder> {
        let mut chain = Vec::new();
        let mut at = Some(folder.to_string());
        while let Some(id) = at {
            let Some(f) = self.folder(&id) else { break };
            chain.push(f);
            at = f.parent.clone();
        }
        chain.reverse();
        chain
    }

    /// The store path of a file: folder names below the root joined with `/`, then
    /// the file name.
    pub(crate) fn path(&self, file: &File) -> String {
        self.path_in(&file.parent, &file.name)
    }

    /// The store path an item named `name` in folder `parent` has or would have.
    pub(crate) fn path_in(&self, parent: &str, name: &str) -> String {
        let mut parts: Vec<&str> = self
            .ancestry(parent)
            .iter()
            .filter(|f| f.parent.is_some())
            .map(|f| f.name.as_str())
            .collect();
        parts.push(name);
        parts.join("/")
    }

    // ----- JSON, in Box's shapes -----

    pub(crate) fn mini_folder(&self, f: &Folder) -> Value {
        let is_root = f.parent.is_none();
        json!({
            "type": "folder",
            "id": f.id,
            "sequence_id": if is_root { Value::Null } else { json!("0") },
            "etag": if is_root { Value::Null } else { json!("0") },
            "name": f.name,
        })
    }

    fn mini_file(&self, f: &File) -> Value {
        json!({
            "type": "file",
            "id": f.id,
            "file_version": {"type": "file_version", "id": f.version_id, "sha1": f.sha1},
            "sequence_id": f.etag.to_string(),
            "etag": f.etag.to_string(),
            "sha1": f.sha1,
            "name": f.name,
        })
    }

    pub(crate) fn mini(&self, item: &Item) -> Value {
        match item {
            Item::Folder(f) => self.mini_folder(f),
            Item::File(f) => self.mini_file(f),
        }
    }

    /// The conflicting item as Box puts it in `context_info.conflicts`.
    pub(crate) fn conflict_json(&self, item: &Item) -> Value {
        self.mini(item)
    }

    fn path_collection(&self, folder: &str) -> Value {
        let entries: Vec<Value> = self
            .ancestry(folder)
            .into_iter()
            .map(|f| self.mini_folder(f))
            .collect();
        json!({"total_count": entries.len(), "entries": entries})
    }

    /// The full file object: the mini form plus the details Box adds to it.
    pub(crate) fn file_json(&self, f: &File) -> Value {
        let parent = self.folder(&f.parent).map(|p| self.mini_folder(p));
        let mut v = self.mini_file(f);
        let details = json!({
            "description": "",
            "size": f.size,
            "path_collection": self.path_collection(&f.parent),
            "created_at": iso8601(f.created_at),
            "modified_at": iso8601(f.modified_at),
            "trashed_at": null,
            "purged_at": null,
            "content_created_at": iso8601(f.created_at),
            "content_modified_at": iso8601(f.modified_at),
            "created_by": user(),
            "modified_by": user(),
            "owned_by": user(),
            "shared_link": null,
            "parent": parent,
            "item_status": "active",
        });
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), details) {
            obj.extend(more);
        }
        v
    }

    /// One page of a folder's items, in Box's collection shape.
    pub(crate) fn items_page(&self, folder: &str, offset: usize, limit: usize) -> Value {
        let all = self.list(folder);
        let entries: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|i| self.mini(i))
            .collect();
        json!({
            "total_count": all.len(),
            "entries": entries,
            "offset": offset,
            "limit": limit,
            "order": [{"by": "type", "direction": "ASC"}, {"by": "name", "direction": "ASC"}],
        })
    }

    pub(crate) fn folder_json(&self, f: &Folder) -> Value {
        let is_root = f.parent.is_none();
        let parent = f
            .parent
            .as_deref()
            .and_then(|p| self.folder(p))
            .map(|p| self.mini_folder(p));
        let path = match &f.parent {
            Some(p) => self.path_collection(p),
            None => json!({"total_count": 0, "entries": []}),
        };
        let mut v = self.mini_folder(f);
        if let Some(obj) = v.as_object_mut() {
            let time = if is_root {
                Value::Null
            } else {
                json!(iso8601(f.created_at))
            };
            obj.insert("created_at".into(), time.clone());
            obj.insert("modified_at".into(), time);
            obj.insert("description".into(), json!(""));
            obj.insert("path_collection".into(), path);
            obj.insert("parent".into(), parent.unwrap_or(Value::Null));
            obj.insert("item_status".into(), json!("active"));
            obj.insert("owned_by".into(), user());
            obj.insert("item_collection".into(), self.items_page(&f.id, 0, 100));
        }
        v
    }
}

fn item_id(item: &Item) -> &str {
    match item {
        Item::Folder(f) => &f.id,
        Item::File(f) => &f.id,
    }
}

/// The one user of the testbed's Box account.
fn user() -> Value {
    json!({"type": "user", "id": "11446498", "name": "Testbed", "login": "testbed@example.com"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content {
            size: 1,
            sha1: "00".repeat(20),
        }
    }

    #[test]
    fn names_are_one_space_case_insensitive() {
        let mut t = Tree::new();
        let a = t.add_folder(ROOT, "Docs");
        assert!(t.check_free(ROOT, "docs", None).is_err());
        let f = t.add_file(&a, "x.bin", content());
        assert!(t.check_free(&a, "X.BIN", None).is_err());
        assert!(t.check_free(&a, "X.BIN", Some(&f)).is_ok());
        let file = t.file(&f).expect("just added");
        assert_eq!(t.path(file), "Docs/x.bin");
    }

    #[test]
    fn removing_a_folder_removes_its_files() {
        let mut t = Tree::new();
        let a = t.add_folder(ROOT, "a");
        let b = t.add_folder(&a, "b");
        let f = t.add_file(&b, "f", content());
        assert_eq!(t.remove(&a), vec![f]);
        assert!(t.child(ROOT, "a").is_none());
        assert!(t.folder(&b).is_none());
    }

    #[test]
    fn invalid_names() {
        for bad in ["", ".", "..", "a/b", "a\\b", " lead", "trail "] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("ok name.txt").is_ok());
    }

    #[test]
    fn new_version_renames_and_bumps_etag() {
        let mut t = Tree::new();
        let f = t.add_file(ROOT, "a", content());
        t.new_version(&f, Some("b"), content());
        assert!(t.child(ROOT, "a").is_none());
        assert_eq!(t.file(&f).map(|f| f.etag), Some(1));
        assert!(t.child(ROOT, "B").is_some());
    }
}
