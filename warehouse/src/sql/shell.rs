//! The interactive `aperture sql` prompt: statements end with `;` and may span lines; `\d`
//! lists the tables and views, `\d <name>` describes one, `\q` (or end of input) leaves.
//! Reading from a pipe works the same, without prompts, so a file of statements can be fed in.

use std::io::{BufRead, IsTerminal, Write};

use datafusion::prelude::SessionContext;

use super::output::{Format, write};
use super::{SqlError, query};

const HELP: &str = "statements end with ';' and may span lines
\\d           list tables and views
\\d <name>    describe a table or view
\\q           quit (or ctrl-d)";

/// Reads statements from `input` until it ends or `\q`, answering each on `out` in `format`.
/// A failing statement prints its error on `err` and the session goes on.
pub async fn run(
    ctx: &SessionContext,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
    format: Format,
) -> Result<(), SqlError> {
    let interactive = std::io::stdin().is_terminal();
    let io = |source| SqlError::Io {
        action: "talk to the terminal",
        source,
    };
    if interactive {
        writeln!(err, "aperture sql over the warehouse; \\? for help").map_err(io)?;
    }
    let mut statement = String::new();
    let mut line = String::new();
    loop {
        if interactive {
            let prompt = if statement.is_empty() {
                "sql> "
            } else {
                "...> "
            };
            write!(err, "{prompt}").map_err(io)?;
            err.flush().map_err(io)?;
        }
        line.clear();
        if input.read_line(&mut line).map_err(io)? == 0 {
            break;
        }
        let trimmed = line.trim();
        if statement.is_empty() && trimmed.starts_with('\\') {
            match meta(trimmed) {
                Meta::Quit => break,
                Meta::Sql(sql) => answer(ctx, &sql, out, err, format).await?,
                Meta::Help => writeln!(err, "{HELP}").map_err(io)?,
            }
            continue;
        }
        statement.push_str(&line);
        if trimmed.ends_with(';') {
            let sql = std::mem::take(&mut statement);
            answer(ctx, sql.trim(), out, err, format).await?;
        }
    }
    if !statement.trim().is_empty() {
        answer(ctx, statement.trim(), out, err, format).await?;
    }
    Ok(())
}

enum Meta {
    Quit,
    Help,
    Sql(String),
}

fn meta(command: &str) -> Meta {
    let mut words = command.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), _) => Meta::Quit,
        (Some("\\d"), None) => Meta::Sql(
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_schema = 'warehouse' ORDER BY table_type, table_name"
                .into(),
        ),
        (Some("\\d"), Some(name)) => Meta::Sql(format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_schema = 'warehouse' AND table_name = '{}' ORDER BY ordinal_position",
            name.replace('\'', "''")
        )),
        _ => Meta::Help,
    }
}

async fn answer(
    ctx: &SessionContext,
    sql: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
    format: Format,
) -> Result<(), SqlError> {
    match query(ctx, sql).await {
        Ok((schema, batches)) => write(&schema, &batches, format, out)?,
        Err(error) => writeln!(err, "error: {error}").map_err(|source| SqlError::Io {
            action: "talk to the terminal",
            source,
        })?,
    }
    out.flush().map_err(|source| SqlError::Io {
        action: "write the result",
        source,
    })
}
