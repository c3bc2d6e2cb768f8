//! wasmray: a Kubernetes operator for Ray whose decisions are made by WebAssembly components.

pub mod bench;
pub mod cache;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod dev;
mod memory;
pub mod operator;
pub mod plugin;
pub mod pods;
pub mod ray;
pub mod runtime;
