//! What was wrong with a fault spec, a timeline file or a control payload,
//! and where.

use std::fmt;

/// A fault, fault set or timeline was refused: where (the origin, the line
/// when known, the path of the field) and why.
///
/// ```
/// use rebound_chaos::Timeline;
///
/// let err = Timeline::from_toml_str(
///     "[[phases]]\nname = \"outage\"\nstart = \"0s\"\n\n[[phases.faults]]\nkind = \"error\"\nrate = 1.5\n",
///     "outage.toml",
/// )
/// .unwrap_err();
/// assert_eq!(err.path(), "phases[0].faults[0].rate");
/// assert_eq!(err.line(), Some(7));
/// assert_eq!(
///     err.to_string(),
///     "outage.toml:7: phases[0].faults[0].rate: 1.5 is outside [0, 1] (a rate is a probability)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    origin: Option<String>,
    line: Option<usize>,
    path: String,
    message: String,
}

impl SpecError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            origin: None,
            line: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Names where the text came from (a file name, `--fault`, `PUT
    /// /faults`), unless already named.
    pub(crate) fn or_origin(mut self, origin: &str) -> Self {
        if self.origin.is_none() && !origin.is_empty() {
            self.origin = Some(origin.to_string());
        }
        self
    }

    /// Names where the text came from (a file, a flag), replacing any
    /// origin already named; it starts the message.
    ///
    /// ```
    /// use rebound_chaos::Fault;
    ///
    /// let err = "error rate=2".parse::<Fault>().unwrap_err().with_origin("--fault 'error rate=2'");
    /// assert_eq!(err.to_string(), "--fault 'error rate=2': rate: 2 is outside [0, 1] (a rate is a probability)");
    /// ```
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    pub(crate) fn at_line(mut self, line: Option<usize>) -> Self {
        if self.line.is_none() {
            self.line = line;
        }
        self
    }

    /// Puts `prefix` in front of the path: `rate` under `faults[2]` becomes
    /// `faults[2].rate`.
    pub(crate) fn under(mut self, prefix: &str) -> Self {
        self.path = join(prefix, &self.path);
        self
    }

    /// The path of the field at fault, such as `phases[1].faults[0].rate`
    /// (empty when the text could not be parsed at all).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based line of the field in a file, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// Where the text came from: a file name, `--fault`, a control
    /// endpoint; `None` for faults built in Rust.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// What is wrong, and what would be right.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `a` + `b` as a field path: `faults[0]` + `rate` = `faults[0].rate`,
/// `faults` + `[0]` = `faults[0]`.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Some(o), Some(l)) => write!(f, "{o}:{l}: ")?,
            (Some(o), None) => write!(f, "{o}: ")?,
            (None, Some(l)) => write!(f, "line {l}: ")?,
            (None, None) => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// The proxy could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The upstream URL is not one the proxy can forward to.
    Upstream {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A listening address could not be bound.
    Bind {
        /// Which listener: `"proxy"` or `"control"`.
        listener: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Upstream { url, reason } => {
                write!(f, "cannot proxy to upstream `{url}`: {reason}")
            }
            StartError::Bind {
                listener,
                addr,
                source,
            } => write!(f, "cannot listen for the {listener} on {addr}: {source}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Bind { source, .. } => Some(source),
            StartError::Upstream { .. } => None,
        }
    }
}
