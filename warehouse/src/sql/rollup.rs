//! The rollups as tables whose plan is optimised once per session, not once per statement.
//!
//! DataFusion registers a view as its SQL's logical plan and inlines that plan into every
//! statement that reads it; the whole statement is then optimised, view and all. For the
//! rollups that is most of a short query's time: `creator_daily` unions six aggregated
//! sources, about forty plan nodes, and optimising them took as long as reading one
//! creator's day (see `benches/warehouse.rs`). A [`Rollup`] optimises its view's plan the
//! first time a statement of the session reads it, and keeps it. A statement sees the rollup
//! as one table: what it asks of that table, its filters and its columns, is pushed into the
//! kept plan by DataFusion's own filter and projection rules, and the result is planned over
//! the files the tables hold then. A filter goes as far down as it would with the view's SQL
//! inlined (on `creator_daily`, a filter on `author_id` or `dt` reaches every scan; it stops
//! above a window it would change, such as `follower_growth`'s running total), and the
//! sources and aggregates the statement does not need are left out. Everything the
//! statement does above the rollup is optimised as usual.
//!
//! What the kept plan cannot see, it cannot use: a statement's other operators (a join, a
//! limit under a sort) are not pushed into the rollup, and settings changed with `SET` after
//! the first read do not re-optimise it. A view whose SQL calls a function that is not
//! immutable (`now()`, `random()`) is optimised again for each statement: the optimiser folds
//! a call such as `now()` into the time the statement started, which a kept plan would keep.
//!
//! The rollup's part of a statement is planned physically without the physical optimiser,
//! whose rules then run once over the whole statement. DataFusion still checks that part's
//! distribution requirements when planning it, which a join planned as a sort-merge join
//! (`SET datafusion.optimizer.prefer_hash_join = false`) would fail before the rules add its
//! repartitioning. No rollup joins today; a test keeps it so.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, exec_datafusion_err};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType, Volatility,
};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::push_down_filter::PushDownFilter;
use datafusion::optimizer::{Optimizer, OptimizerContext};
use datafusion::physical_plan::ExecutionPlan;

/// A rollup view whose optimised plan is kept for the session: see the module's doc.
#[derive(Debug)]
pub struct Rollup {
    /// The view as DataFusion registered it: its plan, columns and SQL.
    view: Arc<dyn TableProvider>,
    /// The view's plan under its name, as written (analysed and optimised per statement when
    /// it may not be kept).
    plan: LogicalPlan,
    /// Whether the optimised plan may be kept: the view calls immutable functions only.
    keep: bool,
    /// The optimised plan, once a statement has read the rollup.
    optimized: OnceLock<LogicalPlan>,
    /// The rules that push a statement's filters and columns into the optimised plan.
    push_down: Optimizer,
}

impl Rollup {
    /// The rollup of `view`, a view DataFusion registered as `name`.
    pub fn new(name: &str, view: Arc<dyn TableProvider>) -> Result<Self> {
        let plan = view
            .get_logical_plan()
            .map(Cow::into_owned)
            .ok_or_else(|| exec_datafusion_err!("bug: {name} is not a view"))?;
        let plan = LogicalPlanBuilder::from(plan).alias(name)?.build()?;
        let keep = !calls_non_immutable(&plan)?;
        Ok(Self {
            view,
            plan,
            keep,
            optimized: OnceLock::new(),
            push_down: Optimizer::with_rules(vec![
                Arc::new(PushDownFilter::new()),
                Arc::new(OptimizeProjections::new()),
            ]),
        })
    }

    /// The view's optimised plan: the kept one, or a new one when it may not be kept.
    fn optimized(&self, state: &SessionState) -> Result<Cow<'_, LogicalPlan>> {
        if let Some(plan) = self.optimized.get() {
            return Ok(Cow::Borrowed(plan));
        }
        let plan = state.optimize(&self.plan)?;
        if !self.keep {
            return Ok(Cow::Owned(plan));
        }
        Ok(Cow::Borrowed(self.optimized.get_or_init(|| plan)))
    }
}

#[async_trait]
impl TableProvider for Rollup {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.view.get_table_definition()
    }

    /// Filters are applied inside the rollup, exactly, except those that must be evaluated
    /// where the statement wrote them: a volatile call, a subquery or a placeholder.
    /// (DataFusion keeps volatile filters and subqueries above a scan before it asks; the
    /// check here does not rely on that.)
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        filters
            .iter()
            .map(|filter| {
                let inside = !filter.is_volatile()
                    && !filter.exists(|e| {
                        Ok(matches!(
                            e,
                            Expr::ScalarSubquery(_)
                                | Expr::Exists(_)
                                | Expr::InSubquery(_)
                                | Expr::SetComparison(_)
                                | Expr::OuterReferenceColumn(..)
                                | Expr::Placeholder(_)
                        ))
                    })?;
                Ok(if inside {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                })
            })
            .collect()
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| exec_datafusion_err!("bug: a rollup is read in a SessionState"))?;
        let optimized = self.optimized(state)?;
        let schema = Arc::clone(optimized.schema());
        let mut plan = LogicalPlanBuilder::from(optimized.into_owned());
        // DataFusion passes the filters unqualified already; stripping qualifiers again keeps
        // them resolving against the view's own columns whatever the caller did.
        if let Some(filter) = conjunction(filters.iter().cloned().map(unnormalize_col)) {
            plan = plan.filter(filter)?;
        }
        if let Some(projection) = projection {
            plan = plan.project(
                projection
                    .iter()
                    .map(|&i| Expr::Column(Column::from(schema.qualified_field(i)))),
            )?;
        }
        if let Some(limit) = limit {
            plan = plan.limit(0, Some(limit))?;
        }
        // One pass: the filter rule pushes top-down through the whole plan in one pass, and
        // the projection rule walks all of it itself.
        let mut options = state.config_options().as_ref().clone();
        options.optimizer.max_passes = 1;
        let config = OptimizerContext::new_with_config_options(Arc::new(options));
        let plan = self.push_down.optimize(plan.build()?, &config, |_, _| {})?;
        // The statement's physical optimisation runs over the whole tree once this returns,
        // so the rollup's part is planned without it.
        let unoptimized = SessionStateBuilder::new_from_existing(state.clone())
            .with_physical_optimizer_rules(vec![])
            .build();
        unoptimized
            .query_planner()
            .create_physical_plan(&plan, &unoptimized)
            .await
    }
}

/// Whether `plan` calls a scalar function that is not immutable, anywhere in it: its
/// subqueries and the views it reads included.
fn calls_non_immutable(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(view) = scan.source.get_logical_plan()
        {
            found = calls_non_immutable(&view)?;
        }
        if !found {
            node.apply_expressions(|expr| {
                found = expr.exists(|e| {
                    Ok(matches!(e, Expr::ScalarFunction(f)
                        if f.func.signature().volatility != Volatility::Immutable))
                })?;
                Ok(stop_if(found))
            })?;
        }
        Ok(stop_if(found))
    })?;
    Ok(found)
}

fn stop_if(found: bool) -> TreeNodeRecursion {
    if found {
        TreeNodeRecursion::Stop
    } else {
        TreeNodeRecursion::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampNanosecondType;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    async fn rollup(ctx: &SessionContext, name: &str, sql: &str) -> Rollup {
        ctx.sql(sql).await.unwrap().collect().await.unwrap();
        Rollup::new(name, ctx.table_provider(name).await.unwrap()).unwrap()
    }

    async fn now_of(ctx: &SessionContext, sql: &str) -> i64 {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let column = batches[0].column(0);
        assert_eq!(column.len(), 1);
        column.as_primitive::<TimestampNanosecondType>().value(0)
    }

    #[tokio::test]
    async fn a_view_calling_a_function_that_is_not_immutable_is_optimised_for_each_statement() {
        let ctx = SessionContext::new();
        let fixed = rollup(&ctx, "fixed", "CREATE VIEW fixed AS SELECT 1 + 1 AS x").await;
        let clock = rollup(&ctx, "clock", "CREATE VIEW clock AS SELECT now() AS t").await;
        let nested = rollup(&ctx, "nested", "CREATE VIEW nested AS SELECT t FROM clock").await;
        let sub = rollup(
            &ctx,
            "sub",
            "CREATE VIEW sub AS SELECT x FROM fixed WHERE x > (SELECT extract(year FROM t) FROM clock)",
        )
        .await;
        assert!(fixed.keep);
        assert!(!clock.keep, "now() is stable");
        assert!(!nested.keep, "the view it reads calls now()");
        assert!(!sub.keep, "its subquery calls now()");
        ctx.deregister_table("clock").unwrap();
        ctx.register_table("clock", Arc::new(clock)).unwrap();
        let first = now_of(&ctx, "SELECT t FROM clock").await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = now_of(&ctx, "SELECT t FROM clock").await;
        assert!(second > first, "{second} after {first}");
    }

    #[tokio::test]
    async fn the_first_statement_keeps_the_plan_for_the_next() {
        let ctx = SessionContext::new();
        let fixed = Arc::new(rollup(&ctx, "fixed", "CREATE VIEW fixed AS SELECT 1 + 1 AS x").await);
        ctx.deregister_table("fixed").unwrap();
        ctx.register_table("fixed", Arc::clone(&fixed) as Arc<dyn TableProvider>)
            .unwrap();
        assert!(fixed.optimized.get().is_none());
        ctx.sql("SELECT x FROM fixed")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let kept = fixed.optimized.get().expect("kept by the first statement") as *const _;
        ctx.sql("SELECT x FROM fixed WHERE x > 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(fixed.optimized.get().unwrap() as *const _, kept);
    }

    #[test]
    fn only_a_view_makes_a_rollup() {
        let table =
            MemTable::try_new(Arc::new(arrow::datatypes::Schema::empty()), vec![vec![]]).unwrap();
        let err = Rollup::new("likes", Arc::new(table)).unwrap_err();
        assert!(err.to_string().contains("likes is not a view"), "{err}");
    }
}
