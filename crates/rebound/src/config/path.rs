//! Reading a policy file from disk.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{ConfigFileError, Policies};

/// A policy file that could not be loaded: unreadable, or rejected (then
/// with the field and line at fault). Names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error, as text.
        message: String,
    },
    /// The file was read and rejected.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and why.
        error: ConfigFileError,
    },
}

impl LoadError {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::Io { path, .. } | LoadError::Invalid { path, .. } => path,
        }
    }

    /// The rejection (field, line, message), when the file was read.
    pub fn invalid(&self) -> Option<&ConfigFileError> {
        match self {
            LoadError::Invalid { error, .. } => Some(error),
            LoadError::Io { .. } => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            LoadError::Invalid { path, error } => match error.line() {
                // `file:line: `field`: message`, as compilers write it.
                Some(line) => {
                    write!(f, "{}:{line}: ", path.display())?;
                    if !error.path().is_empty() {
                        write!(f, "`{}`: ", error.path())?;
                    }
                    f.write_str(error.message())
                }
                None => write!(f, "{}: {error}", path.display()),
            },
        }
    }
}

impl std::error::Error for LoadError {}

impl Policies {
    /// Reads, parses and validates the policy file at `path`: JSON when its
    /// extension is `.json`, TOML otherwise.
    ///
    /// ```
    /// use rebound::config::Policies;
    /// let dir = std::env::temp_dir().join(format!("rebound-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = dir.join("policies.toml");
    /// std::fs::write(&file, "[dependencies.inventory.retry]\nmax_attempts = 0\n")?;
    /// let err = Policies::from_path(&file).unwrap_err();
    /// assert!(err.to_string().ends_with("policies.toml:2: `dependencies.inventory.retry.max_attempts`: invalid retry policy: `max_attempts` must be at least 1 (it counts the first attempt)"), "{err}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Policies, LoadError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_source(path, &src)
    }

    /// Parses `src`, the text of the file at `path` (whose extension says
    /// JSON or TOML).
    pub(crate) fn from_source(path: &Path, src: &str) -> Result<Policies, LoadError> {
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if json {
            Policies::from_json_str(src)
        } else {
            Policies::from_toml_str(src)
        };
        parsed.map_err(|error| LoadError::Invalid {
            path: path.to_owned(),
            error,
        })
    }
}
