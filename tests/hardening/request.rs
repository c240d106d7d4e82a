//! Hardening tests: request (issue 17).
