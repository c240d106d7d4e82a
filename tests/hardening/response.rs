//! Hardening tests: response (issue 17).
