//! The Parquet warehouse for data scientists: a sink job writing Hive-partitioned Parquet (one
//! table per event family, offsets recorded so a restart neither loses nor duplicates a row), a
//! DataFusion catalog over it for `aperture sql`, and the rollups the project owns as SQL.
//!
//! This crate is filled in by the warehouse work; today it holds only this contract.
