//! The read API (`aperture serve`) and the creators' dashboard.
//!
//! Serving reads only what the stream jobs and the ranking crate precomputed in Redis, through
//! the keyspace in [`aperture_schema::keys`]; it never imports `stream-jobs`. Per-user reads take
//! the viewer from the `sub` of a bearer JWT.
//!
//! This crate is filled in by the feed-API work; today it holds only this contract.
