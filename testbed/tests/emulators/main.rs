//! Integration tests of the testbed over real HTTP on 127.0.0.1, one in-process
//! server per test. One test binary (modules below) to keep link time down.
//!
//! Sizes are kept tiny by lowering `box_min_session_size` and `box_part_size` wherever
//! the rule under test is not about them.

mod admin;
mod box_commit;
mod box_direct;
mod box_folders;
mod box_parts;
mod box_preflight;
mod box_sessions;
mod cli;
mod faults;
mod happy_path;
mod secret;
mod support;
