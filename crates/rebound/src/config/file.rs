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
                    .or_else(|| locate(src, &path)),
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
    /// start-up; the error names the dependency and the field.
    pub fn validate(&self) -> Result<(), (String, ConfigError)> {
        for (name, dep) in &self.dependencies {
            dep.validate(name).map_err(|e| (name.clone(), e))?;
        }
        Ok(())
    }

    fn checked(self, src: &str, syntax: Syntax) -> Result<Self, ConfigFileError> {
        if let Err((dep, e)) = self.validate() {
            let path = format!("dependencies.{dep}");
            let line = match syntax {
                // TOML: the parsed document's spans — the field where it is
                // written under the dependency, else the dependency itself.
                Syntax::Toml => toml_line(src, &dep, e.field()),
                // JSON: the parsed document's raw values, the same way.
                Syntax::Json => json_line(src, &dep, e.field()),
            };
            return Err(ConfigFileError {
                path: format!("{path}.{}", e.field()),
                line,
                message: e.to_string(),
            });
        }
        Ok(self)
    }
}

/// The line of `field` as written under `dependencies.<dep>` of a TOML
/// document (the first in the file when several tables of the dependency
/// hold one), else of the dependency's own key; from the parser's spans,
/// not a text search.
fn toml_line(src: &str, dep: &str, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;

    fn key<'a, 'i>(
        t: &'a DeTable<'i>,
        k: &str,
    ) -> Option<(
        &'a Spanned<toml::de::DeString<'i>>,
        &'a Spanned<DeValue<'i>>,
    )> {
        t.iter().find(|(name, _)| name.get_ref() == k)
    }
    /// The earliest key named `k` anywhere below `v`: its span's start.
    fn earliest(v: &DeValue<'_>, k: &str) -> Option<usize> {
        match v {
            DeValue::Table(t) => t
                .iter()
                .filter_map(|(name, value)| {
                    let here = (name.get_ref() == k).then(|| name.span().start);
                    here.into_iter().chain(earliest(value.get_ref(), k)).min()
                })
                .min(),
            DeValue::Array(a) => a.iter().filter_map(|v| earliest(v.get_ref(), k)).min(),
            _ => None,
        }
    }

    let doc = DeTable::parse(src).ok()?;
    let DeValue::Table(deps) = key(doc.get_ref(), "dependencies")?.1.get_ref() else {
        return None;
    };
    let (name, policies) = key(deps, dep)?;
    let at = earliest(policies.get_ref(), field).unwrap_or(name.span().start);
    Some(line_of(src, at))
}

/// The line of `field` as written under `dependencies.<dep>` of a JSON
/// document (the first in the file when several objects of the dependency
/// hold one), else of the dependency's value; from the parsed document's
/// raw values (each a slice of `src`), not a text search.
fn json_line(src: &str, dep: &str, field: &str) -> Option<usize> {
    use serde_json::value::RawValue;
    type Object<'a> = BTreeMap<String, &'a RawValue>;

    /// Where `raw` starts in `src` (a slice of it).
    fn start(raw: &RawValue) -> usize {
        raw.get().as_ptr() as usize
    }
    /// The earliest value of a key named `k` anywhere below `raw`.
    fn earliest<'a>(raw: &'a RawValue, k: &str) -> Option<&'a RawValue> {
        let text = raw.get();
        if text.starts_with('{') {
            let object: Object<'a> = serde_json::from_str(text).ok()?;
            object
                .into_iter()
                .flat_map(|(name, v)| (name == k).then_some(v).into_iter().chain(earliest(v, k)))
                .min_by_key(|v| start(v))
        } else if text.starts_with('[') {
            let items: Vec<&'a RawValue> = serde_json::from_str(text).ok()?;
            items
                .into_iter()
                .filter_map(|v| earliest(v, k))
                .min_by_key(|v| start(v))
        } else {
            None
        }
    }

    let top: Object<'_> = serde_json::from_str(src).ok()?;
    let deps: Object<'_> = serde_json::from_str(top.get("dependencies")?.get()).ok()?;
    let policies = *deps.get(dep)?;
    let at = earliest(policies, field).unwrap_or(policies);
    Some(line_of(src, start(at) - src.as_ptr() as usize))
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

/// Finds the line where the dotted `path` is written in a TOML document
/// that the parser gave no span for: each segment in turn, as a key
/// (`seg =`) or inside a table header (`[a.seg]`), each searched after the
/// previous one; `None` when not found.
fn locate(src: &str, path: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let seg = seg.trim_matches(|c| c == '[' || c == ']');
        if seg.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let hit = find_toml_key(&src[from..], seg)?;
        from += hit;
        found = Some(line_of(src, from));
        from += seg.len();
    }
    found
}

fn find_toml_key(s: &str, key: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = s[start..].find(key) {
        let at = start + i;
        let before = if at == 0 { b'\n' } else { bytes[at - 1] };
        let after = bytes.get(at + key.len()).copied().unwrap_or(b'\n');
        let boundary_before = matches!(
            before,
            b'\n' | b' ' | b'\t' | b'.' | b'[' | b'{' | b',' | b'"'
        );
        let boundary_after = matches!(after, b' ' | b'\t' | b'=' | b'.' | b']' | b'"');
        if boundary_before && boundary_after {
            return Some(at);
        }
        start = at + key.len();
    }
    None
}
