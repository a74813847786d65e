//! A policy as a scenario file writes it: the core's table, or a
//! reference to a service's policy file.

use std::fmt;
use std::path::PathBuf;

use rebound::config::DependencyConfig;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A policy as a scenario file writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyEntry {
    /// The policies, in the syntax of a service's policy file.
    Inline(Box<DependencyConfig>),
    /// The policies of `dependency` in the service's policy file `file`.
    File {
        /// The policy file, relative to the scenario file.
        file: PathBuf,
        /// The dependency whose policies to take.
        dependency: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRef {
    file: PathBuf,
    dependency: String,
}

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = PolicyEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a table of policies as a service's policy file writes them (`retry`, `hedge`, \
             `pipeline`, ...), or `{ file = \"policies.toml\", dependency = \"NAME\" }`",
        )
    }

    /// The first key decides: `file` or `dependency` make a reference,
    /// anything else the core's table (which names what it does not know).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyEntry, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(PolicyEntry::Inline(Box::default()));
        };
        let is_ref = first == "file" || first == "dependency";
        let rest = de::value::MapAccessDeserializer::new(Replay {
            first: Some(first),
            map,
        });
        if is_ref {
            let r = FileRef::deserialize(rest)?;
            Ok(PolicyEntry::File {
                file: r.file,
                dependency: r.dependency,
            })
        } else {
            DependencyConfig::deserialize(rest).map(|c| PolicyEntry::Inline(Box::new(c)))
        }
    }
}

/// A map whose first key was already read: hands it out again.
struct Replay<A> {
    first: Option<String>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Replay<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(k) => seed.deserialize(k.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}
