//! App code as content-addressed tar archives.
//!
//! `miren deploy` packs the app directory ([`pack_dir`]: `.gitignore` honoured, `.git`
//! never included, entries sorted and timestamps zeroed so the same content always
//! gives the same digest; `.miren/app.toml` left out, because the config travels with
//! the version and an edit to one service must not change the code every other
//! service runs); the server keeps each archive once under its digest
//! ([`ArtifactStore`], streamed to disk and checked before it is stored) and removes
//! those no version keeps any more ([`ArtifactStore::retain`]); runtimes unpack or
//! build from it ([`unpack`]).
//!
//! - `pack`: packing, reading and unpacking archives.
//! - `store`: the archives on disk, uploads, collection.
//! - [`replica`]: the archives copied through the state store, for a cluster.

mod pack;
pub mod replica;
mod store;

pub use pack::{
    LOCAL_DATA_DIR, contains_file, digest, pack_dir, pack_dir_including, remove_unpack_leftovers,
    tar_of, unpack,
};
pub use store::{ArtifactError, ArtifactStore, Collected, PENDING_FOR, Upload};
