//! Errors of the hedge layer: none of its own. A permanent error ends the
//! call unchanged (boxed); when every copy of a request ended unacceptable,
//! the last one to end is returned unchanged — an error, or a response the
//! classifier turned away.
