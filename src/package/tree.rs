//! The file system a function sees, as on Lambda: its package at `/var/task`, its layers'
//! files merged at `/opt` (a later layer's file hides an earlier one's of the same path).

use super::Package;
use bytes::Bytes;
use std::sync::Arc;

pub const TASK_ROOT: &str = "/var/task";
pub const LAYER_ROOT: &str = "/opt";

#[derive(Debug, Clone)]
pub struct CodeTree {
    pub task: Arc<Package>,
    pub layers: Vec<Arc<Package>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    File(&'a Bytes),
    Dir,
}

/// `path` made absolute and normal (`.` and `..` applied, no trailing `/`).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

impl CodeTree {
    pub fn new(task: Arc<Package>, layers: Vec<Arc<Package>>) -> CodeTree {
        CodeTree { task, layers }
    }

    /// Where an absolute, normal path falls: in the package or the layers, and the path there.
    fn place<'p>(&self, path: &'p str) -> Option<(&[Arc<Package>], &'p str)> {
        let inside = |root: &str| {
            path.strip_prefix(root).and_then(|rest| {
                if rest.is_empty() {
                    Some("")
                } else {
                    rest.strip_prefix('/')
                }
            })
        };
        if let Some(rest) = inside(TASK_ROOT) {
            return Some((std::slice::from_ref(&self.task), rest));
        }
        inside(LAYER_ROOT).map(|rest| (self.layers.as_slice(), rest))
    }

    /// What is at `path` (absolute): a file, a directory, or nothing. `/var`, `/` and `/opt`
    /// are directories.
    pub fn entry(&self, path: &str) -> Option<Entry<'_>> {
        let path = normalize(path);
        if path == "/" || path == "/var" || path == LAYER_ROOT {
            return Some(Entry::Dir);
        }
        let (packages, rest) = self.place(&path)?;
        for package in packages.iter().rev() {
            if let Some(content) = package.file(rest) {
                return Some(Entry::File(content));
            }
        }
        packages.iter().any(|p| p.is_dir(rest)).then_some(Entry::Dir)
    }

    pub fn file(&self, path: &str) -> Option<&Bytes> {
        match self.entry(path)? {
            Entry::File(content) => Some(content),
            Entry::Dir => None,
        }
    }

    /// The names in directory `path`, sorted, each once.
    pub fn read_dir(&self, path: &str) -> Option<Vec<String>> {
        let path = normalize(path);
        match path.as_str() {
            "/" => return Some(vec!["opt".into(), "var".into()]),
            "/var" => return Some(vec!["task".into()]),
            _ => {}
        }
        let (packages, rest) = self.place(&path)?;
        let mut names: Vec<String> = packages.iter().filter_map(|p| p.read_dir(rest)).flatten().collect();
        if names.is_empty() && path != LAYER_ROOT && !packages.iter().any(|p| p.is_dir(rest)) {
            return None;
        }
        names.sort();
        names.dedup();
        Some(names)
    }
}

impl CodeTree {
    /// No files at all (the engine snapshot's instance).
    pub fn empty() -> CodeTree {
        let package = Package {
            files: Default::default(),
            digest: String::new(),
            zipped_size: std::sync::OnceLock::new(),
        };
        CodeTree::new(Arc::new(package), Vec::new())
    }
}
