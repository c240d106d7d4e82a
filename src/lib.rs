//! Dito library.
