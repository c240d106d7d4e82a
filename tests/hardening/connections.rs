//! Hardening tests: connections (issue 17).
