//! Files: the formats the data and the bundles are made of, and the one way every output is written.
//!
//! - `npy`, `npz`: numpy's array files, read memory-mapped; `npz_writer` writes archives numpy reads.
//! - `pickle`: the little of Python's pickle the reference's files need, read and written without
//!   executing anything.
//! - `atomic`: temporary file, fsync, rename, so that a crash never leaves a half-written output at its
//!   final path; every writer of the crate (NPZ, JSON, PNG, bundles) goes through it.
//!
//! Errors are the data layer's [`DataError`](crate::data::DataError): each names the file at fault.

pub mod atomic;
pub mod npy;
pub mod npz;
pub mod npz_writer;
pub mod pickle;
