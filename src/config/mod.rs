//! Configuration: the TOML file format (`file`), the validated model (`model`) and the checks
//! between them (`validate`). `load` is the only entry point the rest of the program uses.

pub mod distribution;
pub mod egress;
pub mod file;
pub mod model;
pub mod pattern;
pub mod units;
mod validate;

pub use distribution::{CertificateFiles, Distribution, Distributions};
pub use model::*;
pub use validate::Problem;

use file::{key_path_of_ignored, FileConfig, KeyPath, Segment};
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded. Its `Display` lists every problem, one per line,
/// with `file:line:column` where the position is known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", .problems.join("\n"))]
    Invalid { problems: Vec<String> },
}

impl ConfigError {
    pub fn problem_count(&self) -> usize {
        match self {
            ConfigError::Read { .. } => 1,
            ConfigError::Invalid { problems } => problems.len(),
        }
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &path.display().to_string(), &base)
}

/// Validates config text. `name` is used in messages; relative paths resolve against `base`.
pub fn parse(text: &str, name: &str, base: &Path) -> Result<Config, ConfigError> {
    let document = toml_edit::ImDocument::parse(text);
    let position = |offset: usize| -> String {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!("{name}:{line}:{column}")
    };
    let mut unknown = Vec::new();
    let deserializer = toml::Deserializer::new(text);
    let file: FileConfig = match serde_ignored::deserialize(deserializer, |p| unknown.push(key_path_of_ignored(&p))) {
        Ok(file) => file,
        Err(e) => {
            let at = e.span().map(|s| position(s.start)).unwrap_or_else(|| name.to_string());
            return Err(ConfigError::Invalid {
                problems: vec![format!("{at}: {}", e.message())],
            });
        }
    };
    let locate = |path: &KeyPath| -> String {
        match document.as_ref().ok().and_then(|doc| span_of(doc.as_table(), &path.0)) {
            Some(offset) => position(offset),
            None => name.to_string(),
        }
    };
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|path| format!("{}: unknown key `{path}`", locate(path)))
        .collect();
    match validate::validate(&file, base) {
        Ok(config) if problems.is_empty() => return Ok(config),
        Ok(_) => {}
        Err(found) => problems.extend(
            found
                .iter()
                .map(|p| format!("{}: `{}` {}", locate(&p.path), p.path, p.message)),
        ),
    }
    Err(ConfigError::Invalid { problems })
}

/// Byte offset of the deepest part of `path` present in the document (a missing key points at
/// its table).
fn span_of(table: &toml_edit::Table, path: &[Segment]) -> Option<usize> {
    use toml_edit::{Item, Table, Value};
    #[derive(Clone, Copy)]
    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    fn step<'a>(node: Node<'a>, segment: &Segment) -> Option<(Node<'a>, Option<usize>)> {
        let offset = |span: Option<std::ops::Range<usize>>| span.map(|s| s.start);
        match (node, segment) {
            (Node::Table(t), Segment::Key(k)) => {
                t.get_key_value(k).map(|(key, it)| (Node::Item(it), offset(key.span())))
            }
            (Node::Item(Item::Table(t)), _) => step(Node::Table(t), segment),
            (Node::Item(Item::Value(v)), _) => step(Node::Value(v), segment),
            (Node::Value(Value::InlineTable(t)), Segment::Key(k)) => {
                t.get_key_value(k).map(|(key, it)| (Node::Item(it), offset(key.span())))
            }
            (Node::Item(Item::ArrayOfTables(a)), Segment::Index(i)) => {
                a.get(*i).map(|t| (Node::Table(t), offset(t.span())))
            }
            (Node::Value(Value::Array(a)), Segment::Index(i)) => a.get(*i).map(|v| (Node::Value(v), offset(v.span()))),
            _ => None,
        }
    }
    let mut node = Node::Table(table);
    let mut best = table.span().map(|s| s.start);
    for segment in path {
        let Some((next, offset)) = step(node, segment) else {
            break;
        };
        best = offset.or(best);
        node = next;
    }
    best
}

#[cfg(test)]
mod tests;
