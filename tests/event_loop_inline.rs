//! The HTTP, file and CGI suites again, every server on an `EventLoop` without workers:
//! each handler runs on the loop's own thread (`tests/strategy` picks the strategy by
//! this binary's name).

// Each suite brings its support module, as it does in its own binary.
#![allow(clippy::duplicate_mod)]

#[path = "cgi.rs"]
mod cgi;
#[path = "files_cache.rs"]
mod files_cache;
#[path = "files_compression.rs"]
mod files_compression;
#[path = "files_forms.rs"]
mod files_forms;
#[path = "files_listing.rs"]
mod files_listing;
#[path = "files_paths.rs"]
mod files_paths;
#[path = "files_ranges.rs"]
mod files_ranges;
#[path = "files_serving.rs"]
mod files_serving;
#[path = "files_uploads.rs"]
mod files_uploads;
#[path = "http_auth.rs"]
mod http_auth;
#[path = "http_clients.rs"]
mod http_clients;
#[path = "http_composition.rs"]
mod http_composition;
#[path = "http_errors.rs"]
mod http_errors;
#[path = "http_keepalive.rs"]
mod http_keepalive;
#[path = "http_limits.rs"]
mod http_limits;
#[path = "http_logging.rs"]
mod http_logging;
#[path = "http_parsing.rs"]
mod http_parsing;
#[path = "http_shortcuts.rs"]
mod http_shortcuts;
#[path = "http_smuggling.rs"]
mod http_smuggling;
#[path = "http_wrappers.rs"]
mod http_wrappers;
