//! Errors of the fallback layer: none of its own. An error the fallback
//! does not cover, or that the handler hands back, passes through.
