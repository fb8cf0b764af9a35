//! Discovery and schema check: user tables, their columns, types and primary keys, on both nodes.
//!
//! Ordinary tables (`relkind = 'r'`, which includes leaf partitions; partitioned parents hold
//! no rows) outside the system schemas. Tables on one side only are reported (a table created
//! by a lost transaction is itself a loss), and so are column, type and key differences; the
//! comparison continues over what both sides share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{DiffError, Node};
use super::options::TableFilter;
use super::snapshot::NodePool;
use crate::pg::Session;

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name as in the catalog (unquoted).
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, usable in casts.
    pub ty: String,
    /// The type's oid.
    pub type_oid: u32,
    /// A generated column (never inserted or updated by the recovery script).
    pub generated: bool,
}

/// One table as one node's catalog describes it.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Columns in attnum order.
    pub columns: Vec<Column>,
    /// Primary key columns in key order (empty when there is none).
    pub pk: Vec<String>,
    /// `pg_class.reltuples` (negative when never analyzed).
    pub reltuples: f64,
    /// `pg_class.relpages`.
    pub relpages: i64,
}

/// How the two catalogs differ for one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDifference {
    /// `column_only_on_new`, `column_only_on_former`, `type_differs` or `primary_key_differs`.
    pub kind: String,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// The new primary's side (type or key columns).
    pub new: Option<String>,
    /// The former primary's side.
    pub former: Option<String>,
}

/// A table matched across the two nodes.
#[derive(Debug, Clone)]
pub struct TablePair {
    /// The database.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// The new primary's definition.
    pub new: Option<TableDef>,
    /// The former primary's definition.
    pub former: Option<TableDef>,
    /// Catalog differences.
    pub differences: Vec<SchemaDifference>,
    /// Columns present on both with the same type, in the new side's order.
    pub common: Vec<Column>,
    /// The primary key used to match rows (empty: compare as multisets of whole rows).
    pub key: Vec<String>,
}

impl TablePair {
    /// `schema.table`, unquoted, for messages and the report.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The quoted, schema-qualified name.
    pub fn sql_name(&self) -> String {
        super::sql::qualified(&self.schema, &self.name)
    }

    /// The common column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.common.iter().find(|c| c.name == name)
    }
}

const TABLES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, c.reltuples::float8, c.relpages::int8, \
  ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a \
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
  ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
  ARRAY(SELECT a.atttypid::int8 FROM pg_catalog.pg_attribute a \
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
  ARRAY(SELECT a.attgenerated <> '' FROM pg_catalog.pg_attribute a \
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
  ARRAY(SELECT a.attname::text FROM pg_catalog.pg_constraint k \
        CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord) \
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum \
        WHERE k.conrelid = c.oid AND k.contype = 'p' ORDER BY u.ord) \
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind = 'r' AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' \
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
ORDER BY 1, 2";

/// The user tables of the pool's database that pass `filter`.
pub async fn list_tables(
    pool: &NodePool,
    filter: &TableFilter,
) -> Result<Vec<TableDef>, DiffError> {
    let rows = pool.sessions[0]
        .query(TABLES_SQL, &[])
        .await
        .map_err(|e| DiffError::Query {
            node: pool.node,
            target: pool.target.clone(),
            table: format!("{} (catalog)", pool.database),
            what: "listing tables".into(),
            source: e,
        })?;
    let mut out = Vec::new();
    for r in rows {
        let schema: String = r.get(0);
        let name: String = r.get(1);
        if !filter.matches(&schema, &name) {
            continue;
        }
        let names: Vec<String> = r.get(4);
        let types: Vec<String> = r.get(5);
        let oids: Vec<i64> = r.get(6);
        let generated: Vec<bool> = r.get(7);
        let columns = names
            .into_iter()
            .zip(types)
            .zip(oids)
            .zip(generated)
            .map(|(((name, ty), oid), generated)| Column {
                name,
                ty,
                type_oid: oid as u32,
                generated,
            })
            .collect();
        out.push(TableDef {
            schema,
            name,
            columns,
            pk: r.get(8),
            reltuples: r.get(2),
            relpages: r.get(3),
        });
    }
    Ok(out)
}

/// Databases that accept connections and are not templates, on one session.
pub async fn list_databases(
    session: &Session,
    node: Node,
    target: &str,
) -> Result<Vec<String>, DiffError> {
    let rows = session
        .query(
            "SELECT datname::text FROM pg_catalog.pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| DiffError::Query {
            node,
            target: target.to_string(),
            table: "(catalog)".into(),
            what: "listing databases".into(),
            source: e,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Matches the two catalogs table by table and works out what is comparable.
pub fn pair_tables(database: &str, new: Vec<TableDef>, former: Vec<TableDef>) -> Vec<TablePair> {
    let mut map: BTreeMap<(String, String), (Option<TableDef>, Option<TableDef>)> = BTreeMap::new();
    for t in new {
        let k = (t.schema.clone(), t.name.clone());
        map.entry(k).or_default().0 = Some(t);
    }
    for t in former {
        let k = (t.schema.clone(), t.name.clone());
        map.entry(k).or_default().1 = Some(t);
    }
    map.into_iter()
        .map(|((schema, name), (n, f))| {
            let mut differences = Vec::new();
            let mut common = Vec::new();
            let mut key = Vec::new();
            if let (Some(n), Some(f)) = (&n, &f) {
                for c in &n.columns {
                    match f.columns.iter().find(|x| x.name == c.name) {
                        None => differences.push(SchemaDifference {
                            kind: "column_only_on_new".into(),
                            column: Some(c.name.clone()),
                            new: Some(c.ty.clone()),
                            former: None,
                        }),
                        Some(fc) if fc.ty != c.ty => differences.push(SchemaDifference {
                            kind: "type_differs".into(),
                            column: Some(c.name.clone()),
                            new: Some(c.ty.clone()),
                            former: Some(fc.ty.clone()),
                        }),
                        Some(fc) => common.push(Column {
                            generated: c.generated || fc.generated,
                            ..c.clone()
                        }),
                    }
                }
                for fc in &f.columns {
                    if !n.columns.iter().any(|c| c.name == fc.name) {
                        differences.push(SchemaDifference {
                            kind: "column_only_on_former".into(),
                            column: Some(fc.name.clone()),
                            new: None,
                            former: Some(fc.ty.clone()),
                        });
                    }
                }
                if n.pk != f.pk {
                    differences.push(SchemaDifference {
                        kind: "primary_key_differs".into(),
                        column: None,
                        new: Some(n.pk.join(", ")),
                        former: Some(f.pk.join(", ")),
                    });
                } else if n.pk.iter().all(|k| common.iter().any(|c| &c.name == k)) {
                    key = n.pk.clone();
                }
            }
            TablePair {
                database: database.to_string(),
                schema,
                name,
                new: n,
                former: f,
                differences,
                common,
                key,
            }
        })
        .collect()
}
