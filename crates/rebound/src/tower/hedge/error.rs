//! Errors of the hedge layer: none of its own. When every copy of a
//! request failed, the last copy's error is returned unchanged (boxed).
