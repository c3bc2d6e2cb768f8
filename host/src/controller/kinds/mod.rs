//! The primary kinds, each an implementation of [`super::Kind`], and their KubeRay metrics.

pub mod metrics;
pub mod raycluster;
pub mod rayjob;
pub mod rayservice;
