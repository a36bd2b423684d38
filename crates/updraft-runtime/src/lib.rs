//! The Managed Application Runtime (docs/runtime.md): apps that `git push` deploys, built by buildpacks,
//! run as sandboxed processes, and reached through the Host router.

pub mod build;
mod buildpacks;
mod certificates;
pub mod cgroups;
mod changes;
pub mod clouds;
mod deploy;
pub mod git;
pub mod hook;
pub mod keys;
pub mod logs;
pub mod names;
mod oneoff;
pub mod processes;
pub mod records;
mod runtime;
pub mod sandbox;
pub mod scheduler;
pub mod slugs;
pub mod ssh;
pub mod tokens;
mod venv;

pub use oneoff::Ran;
pub use runtime::{Runtime, RuntimeError, Settings, Target};
