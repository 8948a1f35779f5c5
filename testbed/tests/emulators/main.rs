//! Integration tests of the testbed over real HTTP on 127.0.0.1, one in-process
//! server per test. One test binary (modules below) to keep link time down.
//!
//! Sizes are kept tiny by lowering `box_min_session_size` and `box_part_size` (Box) and
//! `ih_min_part_size` (Insights Hub) and `exosite_part_size` (Exosite) wherever the rule
//! under test is not about them. Edgio tests turn its rate limit off (`quiet()`) unless
//! the limit is the rule under test.

mod admin;
mod box_commit;
mod box_direct;
mod box_folders;
mod box_parts;
mod box_preflight;
mod box_sessions;
mod cli;
mod edgio_auth;
mod edgio_join;
mod edgio_jsonrpc;
mod edgio_listing;
mod edgio_multipart;
mod edgio_origin;
mod edgio_post;
mod edgio_seed;
mod edgio_support;
mod exosite_catalog;
mod exosite_client;
mod exosite_ranges;
mod exosite_seed;
mod exosite_single;
mod faults;
mod happy_path;
mod insights_hub_client;
mod insights_hub_gateway;
mod insights_hub_multipart;
mod insights_hub_search;
mod insights_hub_single;
mod secret;
mod support;
