//! Files on disk, written so that a crash or an error never leaves a half-written output: the
//! temporary-file-then-rename pattern every writer of the crate goes through.

pub mod atomic;
