//! Whole files: parsing, validation, and errors that point at a line.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::DependencyConfig;
use crate::ConfigError;

/// The policies of every dependency a service calls, as kept in a file:
/// a `dependencies` table keyed by dependency name. See the [module
/// docs](super).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// The policies, by dependency name.
    #[serde(default)]
    pub dependencies: BTreeMap<String, DependencyConfig>,
}

/// A configuration file was rejected: where (the path of the field, and the
/// line when known) and why.
///
/// ```
/// use rebound::config::Policies;
/// let err = Policies::from_json_str(r#"{"dependencies": {"x": {"retry": {"max_attempts": "three"}}}}"#)
///     .unwrap_err();
/// assert_eq!(err.path(), "dependencies.x.retry.max_attempts");
/// assert_eq!(err.line(), Some(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    path: String,
    line: Option<usize>,
    message: String,
}

impl ConfigFileError {
    /// The dotted path of the field at fault, e.g.
    /// `dependencies.inventory.retry.max_attempts` (empty when the file
    /// could not be parsed at all).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based line of the field, when it could be found.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "`{}`: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigFileError {}

impl ConfigFileError {
    /// `e`, from building dependency `dep`'s policies, placed in the file.
    pub(crate) fn from_config_error(dep: &str, e: &ConfigError) -> Self {
        Policies::invalid(dep, e, None)
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

impl Policies {
    /// Parses and validates a TOML file.
    pub fn from_toml_str(src: &str) -> Result<Self, ConfigFileError> {
        let de = toml::de::Deserializer::parse(src).map_err(|e| ConfigFileError {
            path: String::new(),
            line: e.span().map(|s| line_of(src, s.start)),
            message: e.message().to_string(),
        })?;
        let policies: Policies = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigFileError {
                line: inner
                    .span()
                    .map(|s| line_of(src, s.start))
                    .or_else(|| toml_line(src, &segments(&path))),
                path,
                message: inner.message().to_string(),
            }
        })?;
        policies.checked(src, Syntax::Toml)
    }

    /// Parses and validates a JSON file.
    pub fn from_json_str(src: &str) -> Result<Self, ConfigFileError> {
        let mut de = serde_json::Deserializer::from_str(src);
        let policies: Policies = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.line();
            ConfigFileError {
                path,
                line: (line > 0).then_some(line),
                message: strip_position(&inner.to_string()),
            }
        })?;
        policies.checked(src, Syntax::Json)
    }

    /// As TOML.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// As pretty JSON.
    pub fn to_json_string(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The policies of `name`, if the file has them.
    pub fn dependency(&self, name: &str) -> Option<&DependencyConfig> {
        self.dependencies.get(name)
    }

    /// Builds every policy of every dependency, so a bad value is found at
    /// start-up; the error's [`path`](ConfigFileError::path) is where the
    /// field is written, e.g. `dependencies.inventory.retry.max_attempts`
    /// (its line is known only for a file parsed from text).
    pub fn validate(&self) -> Result<(), ConfigFileError> {
        self.first_invalid()
            .map_or(Ok(()), |(dep, e)| Err(Self::invalid(&dep, &e, None)))
    }

    /// The first dependency whose policies do not build, and why.
    fn first_invalid(&self) -> Option<(String, ConfigError)> {
        self.dependencies
            .iter()
            .find_map(|(name, dep)| dep.validate(name).err().map(|e| (name.clone(), e)))
    }

    fn invalid(dep: &str, e: &ConfigError, line: Option<usize>) -> ConfigFileError {
        ConfigFileError {
            path: format!("dependencies.{dep}.{}", e.path()),
            line,
            message: e.to_string(),
        }
    }

    fn checked(self, src: &str, syntax: Syntax) -> Result<Self, ConfigFileError> {
        if let Some((dep, e)) = self.first_invalid() {
            let mut path = vec![Seg::Key("dependencies"), Seg::Key(&dep)];
            let rest = e.path();
            path.extend(segments(&rest));
            let line = match syntax {
                Syntax::Toml => toml_line(src, &path),
                Syntax::Json => json_line(src, &path),
            };
            return Err(Self::invalid(&dep, &e, line));
        }
        Ok(self)
    }
}

/// The 1-based line where the field at `path` is written in the TOML
/// document `src`, or where the deepest part of it that is written is (a
/// field left at its default is not); `None` if `src` does not parse or
/// nothing of `path` is written. `path` is dotted, with array indices in
/// brackets, as [`ConfigError::path`] and [`ConfigFileError::path`] write
/// it. For tools that embed policy tables in files of their own, so their
/// errors point at a line too.
///
/// ```
/// let src = "[a]\nx = 1\n\n[[a.list]]\ny = 2\n\n[[a.list]]\ny = 3\n";
/// assert_eq!(rebound::config::toml_line_of(src, "a.x"), Some(2));
/// assert_eq!(rebound::config::toml_line_of(src, "a.list[1].y"), Some(8));
/// assert_eq!(rebound::config::toml_line_of(src, "a.list[1].z"), Some(7));
/// ```
pub fn toml_line_of(src: &str, path: &str) -> Option<usize> {
    toml_line(src, &segments(path))
}

/// One step of a path into a document: a key, or an index in an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The steps of a dotted path such as `pipeline.stages[2].delay` (as
/// serde_path_to_error writes them).
fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        while let Some(close) = rest.find(']') {
            if let Ok(i) = rest[1..close].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[close + 1..];
        }
    }
    out
}

/// The line where `path` is written in a TOML document, or where the
/// deepest part of it that is written is (a field left at its default is
/// not); from the parser's spans, not a text search.
fn toml_line(src: &str, path: &[Seg<'_>]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};

    let doc = DeTable::parse(src).ok()?;
    // `None`: the document's own table.
    let mut value: Option<&DeValue<'_>> = None;
    let mut at = None;
    for seg in path {
        let table: Option<&DeTable<'_>> = match value {
            None => Some(doc.get_ref()),
            Some(DeValue::Table(t)) => Some(t),
            Some(_) => None,
        };
        let next = match (seg, value) {
            (Seg::Key(k), _) => table.and_then(|t| {
                t.iter()
                    .find(|(name, _)| name.get_ref() == k)
                    .map(|(name, v)| (name.span().start, v))
            }),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, v)) = next else { break };
        at = Some(start);
        value = Some(v.get_ref());
    }
    at.map(|a| line_of(src, a))
}

/// The line where `path` is written in a JSON document, or where the
/// deepest part of it that is written is; from the parsed document's raw
/// values (each a slice of `src`), not a text search.
fn json_line(src: &str, path: &[Seg<'_>]) -> Option<usize> {
    use serde_json::value::RawValue;

    let mut raw: &RawValue = serde_json::from_str(src).ok()?;
    let mut at = None;
    for seg in path {
        let next: Option<&RawValue> = match seg {
            Seg::Key(k) => serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get())
                .ok()
                .and_then(|o| o.get(*k).copied()),
            Seg::Index(i) => serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .ok()
                .and_then(|a| a.get(*i).copied()),
        };
        let Some(v) = next else { break };
        at = Some(v.get().as_ptr() as usize - src.as_ptr() as usize);
        raw = v;
    }
    at.map(|a| line_of(src, a))
}

#[derive(Clone, Copy)]
enum Syntax {
    Toml,
    Json,
}

/// serde_json appends " at line L column C"; the line is reported apart.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
