//! Talking to Ray itself: the HTTP APIs a Ray head serves, as the operator uses them.

pub mod dashboard;
pub mod poller;
