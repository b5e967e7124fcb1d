//! Persistence: file digests (and, to come, checkpoint bundles).

pub mod digest;
