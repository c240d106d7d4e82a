//! Observability: logging now; metrics and the access log arrive with the observability issue.

pub mod log;
