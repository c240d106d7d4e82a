//! Hardening tests: lifecycle (issue 17).
