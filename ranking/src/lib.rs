//! Ranking for Explore and Reels: candidate generation from precomputed state, features from the
//! engagement job and the warehouse, and linfa models trained offline on Parquet and scored
//! online into Redis for the serving API to read.
//!
//! This crate is filled in by the ranking work; today it holds only this contract.
