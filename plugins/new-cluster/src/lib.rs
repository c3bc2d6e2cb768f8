//! Work in progress: filled in by this session.
