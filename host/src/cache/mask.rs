//! The reconciler's field mask the host applies to children before serialising a snapshot.
//!
//! A reconciler built against WIT 0.2.0 answers `child-fields` once, when it is loaded; the
//! runtime keeps the answer, compiled to a [`ChildMask`], with the loaded plugin, and the
//! controller sends children through [`ChildMask::serialise`] on every reconcile. The host's
//! own decisions (`prepare`, pollers) keep reading whole children. The projection itself is in
//! `wasmray_api::field_mask`, shared with the guests so a reconciler's tests run its plans
//! through exactly this projection; its path syntax and unit tests are there.

pub use wasmray_api::field_mask::{ChildMask, FieldMask, MaskError};
