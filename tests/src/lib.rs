//! Test support for end-to-end tests: one local control plane per test run, a fresh namespace per test.
