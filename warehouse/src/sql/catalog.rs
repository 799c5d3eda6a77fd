//! The DataFusion catalog of a warehouse root: its tables and the project's rollups.

use std::path::Path;
use std::sync::Arc;

use aperture_schema::warehouse::{DT, Table};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::SqlError;
use super::in_place::InPlace;
use super::rollup::Rollup;
use crate::layout::table_dir;
use crate::object::Root;
use crate::object::read::SnapshotStore;

/// A rollup the project owns: a view defined by one SQL file of `warehouse/sql/`, whose
/// leading comment documents it (see [`View::doc`] and [`View::column_docs`]).
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    /// The file's text: the comment, then `CREATE VIEW <name> AS …`.
    pub sql: &'static str,
}

/// Every rollup, registered as a view in every catalog.
pub const VIEWS: &[View] = &[
    View {
        name: "creator_daily",
        sql: include_str!("../../sql/creator_daily.sql"),
    },
    View {
        name: "creator_interactions",
        sql: include_str!("../../sql/creator_interactions.sql"),
    },
    View {
        name: "creator_top_posts",
        sql: include_str!("../../sql/creator_top_posts.sql"),
    },
    View {
        name: "hashtag_daily",
        sql: include_str!("../../sql/hashtag_daily.sql"),
    },
    View {
        name: "follower_growth",
        sql: include_str!("../../sql/follower_growth.sql"),
    },
    View {
        name: "post_likes",
        sql: include_str!("../../sql/post_likes.sql"),
    },
];

impl View {
    /// The leading comment's prose, before its `Columns:` list, as one paragraph per blank
    /// comment line.
    pub fn doc(&self) -> String {
        let mut paragraphs: Vec<String> = vec![String::new()];
        for line in self.comment() {
            if line.trim() == "Columns:" {
                break;
            }
            let text = line.trim();
            if text.is_empty() {
                paragraphs.push(String::new());
            } else if let Some(last) = paragraphs.last_mut() {
                if !last.is_empty() {
                    last.push(' ');
                }
                last.push_str(text);
            }
        }
        paragraphs.retain(|p| !p.is_empty());
        paragraphs.join("\n\n")
    }

    /// The `Columns:` list of the leading comment: `name  meaning`, a meaning continued on
    /// lines indented further.
    pub fn column_docs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut in_columns = false;
        for line in self.comment() {
            if line.trim() == "Columns:" {
                in_columns = true;
                continue;
            }
            if !in_columns || line.trim().is_empty() {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            match (indent, out.last_mut()) {
                (2, _) => {
                    let text = line.trim();
                    let (name, doc) = text.split_once(' ').unwrap_or((text, ""));
                    out.push((name.to_owned(), doc.trim().to_owned()));
                }
                (_, Some((_, doc))) => {
                    doc.push(' ');
                    doc.push_str(line.trim());
                }
                (_, None) => {}
            }
        }
        out
    }

    /// The lines of the leading comment, without their `--`.
    fn comment(&self) -> impl Iterator<Item = &'static str> {
        self.sql
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| {
                let text = l.trim_start_matches("--");
                text.strip_prefix(' ').unwrap_or(text)
            })
    }
}

/// A session over the warehouse at `root`: every table and every rollup view registered.
/// A table with no files yet is an empty table of the same schema. A session may be kept
/// open while the sink and compaction run: [`super::plan`] finds the files again for each
/// statement (on an object root, from its manifest).
pub async fn context(root: &Path) -> Result<SessionContext, SqlError> {
    with_tables(Some(root)).await
}

/// A session whose tables are all empty: for planning (the data dictionary's view columns).
pub async fn empty() -> Result<SessionContext, SqlError> {
    with_tables(None).await
}

async fn with_tables(root: Option<&Path>) -> Result<SessionContext, SqlError> {
    // Statistics are not gathered when a query is planned. Gathering them reads every file's
    // footer up front and, from the files' sort order, makes aggregations run in their
    // ordered mode, which measured slower on the rollups (see `benches/warehouse.rs`). Row
    // groups and pages are still skipped by their statistics when the files are read, and a
    // filter on `dt` still skips whole folders.
    let mut config = SessionConfig::new()
        .with_collect_statistics(false)
        .with_information_schema(true)
        .with_default_catalog_and_schema("aperture", "warehouse");
    let root = root
        .map(Root::parse)
        .transpose()
        .map_err(|e| SqlError::Root(e.to_string()))?;
    // An object root is read as its manifest stands (see `object::read`), through a store
    // that `super::plan` refreshes before each statement; the session carries it for that.
    let snapshot = match &root {
        Some(Root::Object(root)) => {
            Some((root.store_url(), Arc::new(SnapshotStore::new(root.clone()))))
        }
        _ => None,
    };
    if let Some((_, store)) = &snapshot {
        config = config.with_extension(Arc::clone(store));
    }
    let ctx = SessionContext::new_with_config(config);
    if let Some((url, store)) = snapshot {
        ctx.register_object_store(&url, store);
    }
    if let Some(Root::Local(_)) = &root {
        ctx.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(InPlace::new()),
        );
    }
    for table in Table::ALL {
        let provider: Arc<dyn TableProvider> = match &root {
            Some(Root::Local(root)) => provider(root, table)?,
            Some(Root::Object(root)) => {
                listing(ListingTableUrl::parse(root.table_url(table))?, table)?
            }
            None => Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
        };
        ctx.register_table(table.name(), provider)?;
    }
    for view in VIEWS {
        ctx.sql(view.sql)
            .await
            .map_err(|source| SqlError::View {
                view: view.name,
                source,
            })?
            .collect()
            .await?;
    }
    // Each view is then read through a rollup that keeps its optimised plan (see `rollup`).
    // All views are registered first, so a view reading another inlines the other's SQL.
    for view in VIEWS {
        let failed = |source| SqlError::View {
            view: view.name,
            source,
        };
        let registered = ctx.table_provider(view.name).await.map_err(failed)?;
        let rollup = Rollup::new(view.name, registered).map_err(failed)?;
        ctx.deregister_table(view.name)?;
        ctx.register_table(view.name, Arc::new(rollup))?;
    }
    Ok(ctx)
}

/// The schema of `table` as the files store it, without `dt`, which the listing table takes
/// from the folder name instead (so a filter on it prunes folders).
fn file_schema(table: Table) -> SchemaRef {
    let full = table.schema();
    Arc::new(Schema::new(
        full.fields()
            .iter()
            .filter(|f| f.name() != DT)
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// The listing table over `table`'s folder, which need not exist yet: a folder the sink has
/// not created lists no files, and its files are seen once it has.
fn provider(root: &Path, table: Table) -> Result<Arc<dyn TableProvider>, SqlError> {
    let dir = std::path::absolute(table_dir(root, table)).map_err(|source| SqlError::Io {
        action: "resolve the warehouse root",
        source,
    })?;
    listing(
        ListingTableUrl::parse(format!("{}/", dir.display()))?,
        table,
    )
}

/// The listing table of `table`'s folder at `url`: its files, `dt` from the folder names.
fn listing(url: ListingTableUrl, table: Table) -> Result<Arc<dyn TableProvider>, SqlError> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(DT.to_owned(), DataType::Date32)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema(table));
    Ok(Arc::new(ListingTable::try_new(config)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_file_creates_the_view_it_is_named_for_and_documents_it() {
        for view in VIEWS {
            let statement = view
                .sql
                .lines()
                .find(|l| !l.starts_with("--"))
                .unwrap_or_default();
            assert_eq!(statement, format!("CREATE VIEW {} AS", view.name));
            assert!(!view.doc().is_empty(), "{} has no description", view.name);
            assert!(
                view.column_docs().len() >= 3,
                "{} documents its columns",
                view.name
            );
        }
    }

    #[tokio::test]
    async fn a_local_root_is_read_in_place() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let ctx = context(dir.path()).await.expect("the catalog opens");
        let store = ctx
            .runtime_env()
            .object_store(ObjectStoreUrl::local_filesystem())
            .expect("a store for file://");
        assert!(store.to_string().starts_with("InPlace("), "{store}");
    }

    #[test]
    fn column_docs_join_continued_lines() {
        let view = View {
            name: "v",
            sql: "-- What v is,\n-- on two lines.\n--\n-- More.\n--\n-- Columns:\n--   a   first\n--       and more\n--   b   second\nCREATE VIEW v AS SELECT 1",
        };
        assert_eq!(view.doc(), "What v is, on two lines.\n\nMore.");
        assert_eq!(
            view.column_docs(),
            [
                ("a".to_owned(), "first and more".to_owned()),
                ("b".to_owned(), "second".to_owned())
            ]
        );
    }
}
