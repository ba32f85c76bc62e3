//! Which rows of the catalog count, as SQL both sinks run: the `indexed_*` views that readers
//! query, and the garbage collection that removes what they hide.
//!
//! Every row carries the [`WriteId`] of the attempt that wrote it, and an attempt writes its
//! `files` rows last. A file's **canonical** rows are those of the smallest write id that has
//! a `files` row for it: complete, because that attempt wrote its child rows before its
//! `files` row (in a transaction, or one statement after another). Rows of other attempts —
//! one killed before its `files` rows, one that timed out on the client but landed later, a
//! concurrent writer of the same file — are invisible in the views and removed by
//! [`gc_statements`]. The protocol is described in `docs/sinks.md`.

use crate::catalog::{Table, WriteId};

/// How a sink names its relations: an optional schema and a prefix of every name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlNames {
    /// Schema of the tables and views; none: the connection's default.
    pub schema: Option<String>,
    /// Prefix of every table and view name (e.g. `exr_`).
    pub prefix: String,
}

impl SqlNames {
    /// `name` with the prefix, quoted: how a column of the relation is qualified.
    pub fn bare(&self, name: &str) -> String {
        format!("\"{}{name}\"", self.prefix)
    }

    /// `name` with the prefix, quoted and qualified by the schema: how it is named in `FROM`.
    pub fn qualified(&self, name: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".{}", self.bare(name)),
            None => self.bare(name),
        }
    }

    /// A table's name for `FROM`.
    pub fn table(&self, table: Table) -> String {
        self.qualified(table.name())
    }

    /// The name of the view of a table's canonical rows, for `FROM`.
    pub fn view(&self, table: Table) -> String {
        self.qualified(&view_name(table))
    }
}

/// The unprefixed name of the view of a table's canonical rows: `indexed_files`, ….
pub fn view_name(table: Table) -> String {
    format!("indexed_{}", table.name())
}

/// How a server creates a view that may exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewDdl {
    /// `CREATE OR REPLACE VIEW` (DuckDB, Trino, PostgreSQL…).
    OrReplace,
    /// `CREATE VIEW IF NOT EXISTS` (SQLite).
    IfNotExists,
}

/// The `files` rows of the smallest write id of each `file_id`.
fn canonical_files(names: &SqlNames) -> String {
    let files = names.table(Table::Files);
    format!(
        "SELECT * FROM {files} f WHERE NOT EXISTS \
         (SELECT 1 FROM {files} g WHERE g.file_id = f.file_id AND g.write_id < f.write_id)"
    )
}

/// The statements creating the four `indexed_*` views, `indexed_files` first.
pub fn create_views(names: &SqlNames, ddl: ViewDdl) -> Vec<String> {
    let create = |table: Table, body: String| match ddl {
        ViewDdl::OrReplace => format!("CREATE OR REPLACE VIEW {} AS {body}", names.view(table)),
        ViewDdl::IfNotExists => format!("CREATE VIEW IF NOT EXISTS {} AS {body}", names.view(table)),
    };
    let mut statements = vec![create(Table::Files, canonical_files(names))];
    for child in [Table::Parts, Table::Channels, Table::Attributes] {
        let body = format!(
            "SELECT c.* FROM {} c JOIN {} f ON f.file_id = c.file_id AND f.write_id = c.write_id",
            names.table(child),
            names.view(Table::Files)
        );
        statements.push(create(child, body));
    }
    statements
}

/// The statements of one garbage collection, child tables first: rows of attempts that
/// committed a file another attempt had committed with a smaller write id, and child rows
/// without a `files` row of their write id (an attempt that died before its `files` rows)
/// whose write id sorts below `orphans_before` — younger ones may belong to an attempt still
/// writing. `files` comes last, so that a collection cut short leaves a `files` row to find
/// again rather than child rows no statement could tell from a live attempt's.
pub fn gc_statements(names: &SqlNames, orphans_before: &WriteId) -> Vec<(Table, String)> {
    let files = names.table(Table::Files);
    let canonical = canonical_files(names);
    let mut statements = Vec::with_capacity(4);
    for child in [Table::Parts, Table::Channels, Table::Attributes] {
        let row = names.bare(child.name());
        statements.push((
            child,
            format!(
                "DELETE FROM {table} WHERE NOT EXISTS \
                 (SELECT 1 FROM ({canonical}) k WHERE k.file_id = {row}.file_id AND k.write_id = {row}.write_id) \
                 AND ({row}.write_id < '{orphans_before}' OR EXISTS \
                 (SELECT 1 FROM {files} f WHERE f.file_id = {row}.file_id AND f.write_id = {row}.write_id))",
                table = names.table(child),
            ),
        ));
    }
    let row = names.bare(Table::Files.name());
    statements.push((
        Table::Files,
        format!(
            "DELETE FROM {files} WHERE EXISTS \
             (SELECT 1 FROM {files} g WHERE g.file_id = {row}.file_id AND g.write_id < {row}.write_id)"
        ),
    ));
    statements
}

/// Rows a garbage collection deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcCounts {
    /// `files` rows of duplicate attempts.
    pub files: u64,
    /// `parts` rows.
    pub parts: u64,
    /// `channels` rows.
    pub channels: u64,
    /// `attributes` rows.
    pub attributes: u64,
}

impl GcCounts {
    /// Adds `rows` deleted from `table`.
    pub fn add(&mut self, table: Table, rows: u64) {
        match table {
            Table::Files => self.files += rows,
            Table::Parts => self.parts += rows,
            Table::Channels => self.channels += rows,
            Table::Attributes => self.attributes += rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_quoted_and_qualified() {
        let names = SqlNames { schema: Some("vfx".into()), prefix: "exr_".into() };
        assert_eq!(names.table(Table::Files), "\"vfx\".\"exr_files\"");
        assert_eq!(names.view(Table::Parts), "\"vfx\".\"exr_indexed_parts\"");
        assert_eq!(names.bare("parts"), "\"exr_parts\"");
        assert_eq!(SqlNames::default().table(Table::Attributes), "\"attributes\"");
    }

    #[test]
    fn views_and_gc_cover_every_table_files_first_or_last() {
        let names = SqlNames::default();
        let views = create_views(&names, ViewDdl::IfNotExists);
        assert_eq!(views.len(), 4);
        assert!(views[0].starts_with("CREATE VIEW IF NOT EXISTS \"indexed_files\" AS SELECT * FROM \"files\" f"));
        assert!(views[3].contains("JOIN \"indexed_files\" f ON f.file_id = c.file_id AND f.write_id = c.write_id"));
        let cutoff = WriteId::started_before(std::time::Duration::from_secs(3600));
        let gc = gc_statements(&names, &cutoff);
        let order: Vec<Table> = gc.iter().map(|(t, _)| *t).collect();
        assert_eq!(order, [Table::Parts, Table::Channels, Table::Attributes, Table::Files]);
        assert!(gc[0].1.contains(&format!("\"parts\".write_id < '{cutoff}'")), "{}", gc[0].1);
    }
}
