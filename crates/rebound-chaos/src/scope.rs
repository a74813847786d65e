//! Which requests a fault applies to.

use http::Method;

/// The requests a fault applies to: some methods, a path prefix, or both.
/// The default matches every request.
///
/// The path prefix is a plain prefix of the request's path (the query is
/// not part of it): `/orders` matches `/orders`, `/orders/17` and
/// `/orders-archive`; write `/orders/` to leave the last one out. Methods
/// are compared exactly, as HTTP says (`POST`, not `post`; specs and files
/// upper-case what they are given).
///
/// ```
/// use http::Method;
/// use rebound_chaos::Scope;
///
/// let writes = Scope::any().method(Method::POST).method(Method::PUT).path_prefix("/orders");
/// assert!(writes.matches(&Method::POST, "/orders/17"));
/// assert!(!writes.matches(&Method::GET, "/orders/17"));
/// assert!(!writes.matches(&Method::POST, "/stock"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    methods: Vec<Method>,
    path_prefix: Option<String>,
}

impl Scope {
    /// Every request.
    pub fn any() -> Self {
        Scope::default()
    }

    /// Adds `method` to the methods matched (once any method is added, only
    /// the added ones match).
    pub fn method(mut self, method: Method) -> Self {
        if !self.methods.contains(&method) {
            self.methods.push(method);
        }
        self
    }

    /// Only requests whose path starts with `prefix` (which must start with
    /// `/`).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Whether a request with this method and path is in scope.
    #[inline]
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }

    /// Whether this is every request.
    pub fn is_any(&self) -> bool {
        self.methods.is_empty() && self.path_prefix.is_none()
    }

    /// The methods matched; empty means every method.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// The path prefix, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }

    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(p) = &self.path_prefix {
            if !p.starts_with('/') {
                return Err((
                    "path_prefix",
                    format!("`{p}` must start with `/` (it is matched against the request's path)"),
                ));
            }
        }
        Ok(())
    }
}
