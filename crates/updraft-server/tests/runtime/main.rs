//! The application runtime end to end: the real binary, real git pushes over HTTP, real buildpacks (pip and
//! npm from their registries) and real sandboxed processes, reached through the Host router.
//!
//! Needs root (the sandboxes switch to each app's own user), bubblewrap and git, as `.ci/run` installs.

mod buildpacks;
mod certificates;
mod databases;
mod helpers;
mod operations;
mod platform;
mod pushes;
mod slugs;
mod ssh;
