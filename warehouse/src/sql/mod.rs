//! SQL over the warehouse with DataFusion, for `aperture sql` and for tests and benchmarks.
//!
//! - [`catalog`]: a [`SessionContext`] with every table registered as a listing table over its
//!   folder (`dt` a Date32 partition column, so a filter on `dt` skips whole folders, and
//!   Parquet statistics skip row groups) and the rollups of `warehouse/sql/` as views.
//! - [`rollup`]: how a rollup view is read: its plan optimised once per session, a
//!   statement's filters and columns pushed into it.
//! - [`output`]: results as a pretty table, CSV, JSON lines or Parquet.
//! - [`shell`]: the interactive `aperture sql` prompt.
//! - [`dictionary`]: the data dictionary, generated from the table definitions and the views.
//! - [`in_place`]: the store local roots are read through, which reads byte ranges and lists
//!   folders on the calling thread.
//!
//! SQL is read-only here: statements that write (`INSERT`, `COPY`) are refused, because files
//! written into the table folders by anything but the sink and compaction would bypass the
//! manifest.

pub mod catalog;
pub mod dictionary;
pub mod in_place;
pub mod output;
pub mod rollup;
pub mod shell;

use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

pub use catalog::{VIEWS, View, context};
pub use output::Format;

/// Why a query could not be answered or its result not written.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query is wrong, or DataFusion failed running it; the message says which.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("could not write the result: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("could not write the result as parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("could not {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Root(String),
    #[error("bug: rollup {view} does not plan: {source}")]
    View {
        view: &'static str,
        #[source]
        source: DataFusionError,
    },
}

/// Runs one statement and returns its result (empty for statements that return nothing).
///
/// The statement sees the files the root holds when it starts (see [`plan`]).
pub async fn query(
    ctx: &SessionContext,
    sql: &str,
) -> Result<
    (
        arrow::datatypes::SchemaRef,
        Vec<arrow::record_batch::RecordBatch>,
    ),
    SqlError,
> {
    let planned = plan(ctx, sql).await?;
    let batches = datafusion::physical_plan::collect(planned.plan, planned.task).await?;
    Ok((planned.schema, batches))
}

/// A statement planned and ready to run: what [`plan`] returns.
#[derive(Debug)]
pub struct Planned {
    /// The columns of the result.
    pub schema: arrow::datatypes::SchemaRef,
    /// The physical plan, over the files listed when it was planned.
    pub plan: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    /// The session's settings and resources, for running `plan`.
    pub task: std::sync::Arc<datafusion::execution::TaskContext>,
}

/// Plans one statement down to the files it reads, without running it: [`query`] is this and
/// then the run. The benchmark times it apart to tell planning from reading.
///
/// DataFusion keeps each table's file listing for the life of a session by default; that
/// listing is dropped first, because the sink adds files and compaction replaces them while a
/// session (the `aperture sql` shell) stays open, and a kept listing would miss the new rows
/// and name files that are gone. Within one statement the listing is shared, so a table read
/// twice is read the same. On an object root the manifest is read first, and the statement
/// reads the files it lists (see [`crate::object::read`]).
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<Planned, SqlError> {
    if let Some(listings) = ctx.runtime_env().cache_manager.get_list_files_cache() {
        listings.clear();
    }
    let snapshot = ctx
        .state_ref()
        .read()
        .config()
        .get_extension::<crate::object::read::SnapshotStore>();
    if let Some(snapshot) = snapshot {
        snapshot
            .refresh()
            .await
            .map_err(|e| SqlError::Root(e.to_string()))?;
    }
    let options = datafusion::execution::context::SQLOptions::new().with_allow_dml(false);
    let frame = ctx.sql_with_options(sql, options).await?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let task = std::sync::Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await?;
    Ok(Planned { schema, plan, task })
}
