//! wasmray: a Kubernetes operator for Ray whose decisions are made by WebAssembly components.

pub mod cli;
pub mod crd;
pub mod dev;
pub mod plugin;
pub mod pods;
pub mod runtime;
