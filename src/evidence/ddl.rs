//! The relations that lost DDL created, altered or dropped, named from both servers' catalogs.
//!
//! Created and altered relations are the former primary's `pg_class` rows whose `xmin` is the
//! xid of a lost transaction (looked up on the former primary only: the new primary reuses
//! those xid numbers); a relation whose OID the new primary lacks was created, one it has was
//! altered. Dropped relations are the relation files a lost commit record drops, named by the
//! new primary (`pg_filenode_relation`), which still has them; a file whose relation still
//! exists on the former primary was rewritten (TRUNCATE, VACUUM FULL, a column type change),
//! not dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::lsn::Xid;
use crate::pg::connect;
use crate::pg::session::SessionOptions;
use crate::pg::ConnParams;
use crate::wal::accounting::LostTransactions;
use crate::wal::RelFileLocator;

use super::names::database_names;

/// What a lost transaction did to a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DdlAction {
    /// The relation exists only on the former primary: a lost transaction created it.
    Created,
    /// A lost transaction changed its definition (a column, an index, its storage, a grant).
    Altered,
    /// A lost transaction dropped it: the new primary still has it.
    Dropped,
    /// A lost commit removed its file, and the former primary could not be asked whether the
    /// relation was dropped or only rewritten (TRUNCATE, VACUUM FULL, ALTER COLUMN TYPE).
    DroppedOrRewritten,
}

impl DdlAction {
    /// The word in reports (`created`, `altered`, `dropped`, `dropped or rewritten`).
    pub fn as_str(self) -> &'static str {
        match self {
            DdlAction::Created => "created",
            DdlAction::Altered => "altered",
            DdlAction::Dropped => "dropped",
            DdlAction::DroppedOrRewritten => "dropped or rewritten",
        }
    }
}

/// One relation that lost DDL created, altered or dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostDdlRelation {
    /// The database.
    pub database: Option<String>,
    /// `schema.name`.
    pub relation: String,
    /// `table`, `index`, `sequence`, `view`, `materialized view`, ...
    pub kind: String,
    /// What the lost transaction did to it.
    pub action: DdlAction,
    /// The lost transaction (top-level xid on the former timeline), when known.
    pub xid: Option<Xid>,
    /// The relation's OID (on the former primary; on the new one for dropped relations).
    pub oid: u32,
}

impl LostDdlRelation {
    /// `table public.x created by lost xid 1234 in database db`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}", self.kind, self.relation, self.action.as_str());
        if let Some(x) = self.xid {
            s.push_str(&format!(" by lost xid {x}"));
        }
        if let Some(d) = &self.database {
            s.push_str(&format!(" in database {d}"));
        }
        s
    }
}

/// Relations in words (`relkind` letters).
fn kind_name(relkind: &str) -> &'static str {
    match relkind {
        "r" => "table",
        "p" => "partitioned table",
        "i" | "I" => "index",
        "S" => "sequence",
        "v" => "view",
        "m" => "materialized view",
        "c" => "composite type",
        "f" => "foreign table",
        "t" => "toast table",
        _ => "relation",
    }
}

/// A `pg_class` row as both queries read it.
struct ClassRow {
    oid: u32,
    relkind: String,
    name: String,
    /// The table of an index (0 otherwise).
    indrelid: u32,
    /// `pg_toast` or a temporary schema: never shown on its own.
    internal: bool,
}

const CLASS_COLUMNS: &str = "c.oid::int8, c.relkind::text, n.nspname::text, c.relname::text, \
     COALESCE(i.indrelid, 0)::int8, (n.nspname = 'pg_toast' OR c.relpersistence = 't')";
const CLASS_FROM: &str = "FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid";

fn class_row(r: &tokio_postgres::Row) -> ClassRow {
    ClassRow {
        oid: r.get::<_, i64>(0) as u32,
        relkind: r.get(1),
        name: format!("{}.{}", r.get::<_, String>(2), r.get::<_, String>(3)),
        indrelid: r.get::<_, i64>(4) as u32,
        internal: r.get(5),
    }
}

/// Names the relations that the lost DDL created, altered or dropped. `former` is the former
/// primary (created and altered relations need its catalogs), `new` the new primary (dropped
/// ones). Returns the relations and, for what could not be named, one line saying why.
pub async fn name_lost_ddl(
    former: Option<&ConnParams>,
    new: Option<&ConnParams>,
    opts: &SessionOptions,
    lost: &LostTransactions,
    created_after_switchpoint: &BTreeSet<RelFileLocator>,
    former_databases: &BTreeMap<u32, String>,
    new_side_first_xid: Option<Xid>,
) -> (Vec<LostDdlRelation>, Vec<String>) {
    let mut found: Vec<(String, ClassRow, DdlAction, Option<Xid>)> = Vec::new();
    let mut unnamed = Vec::new();
    let ddl: Vec<_> = lost.lost_commits.iter().filter(|c| c.ddl).collect();
    if ddl.is_empty() {
        return (Vec::new(), unnamed);
    }
    // Every xid of a DDL transaction (subtransactions too) → its top-level xid.
    let mut top: HashMap<u32, Xid> = HashMap::new();
    let mut by_db: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut dropped: BTreeMap<u32, Vec<(RelFileLocator, Xid)>> = BTreeMap::new();
    let mut no_db = 0usize;
    for c in &ddl {
        for x in std::iter::once(c.top_xid).chain(c.subxids.iter().copied()) {
            top.insert(x.0, c.top_xid);
            match c.db_id {
                Some(db) if db != 0 => by_db.entry(db).or_default().push(i64::from(x.0)),
                _ => {}
            }
        }
        if !matches!(c.db_id, Some(db) if db != 0) {
            no_db += 1;
        }
        for r in &c.dropped_rels {
            dropped.entry(r.db).or_default().push((*r, c.top_xid));
        }
    }
    if no_db > 0 {
        unnamed.push(format!(
            "{no_db} lost DDL transaction(s) name no database (shared catalogs only: roles, \
             tablespaces, databases); they are not listed by relation"
        ));
    }

    // The databases' names on each server.
    let former_dbs = match former {
        Some(p) if former_databases.is_empty() => database_names(p, opts).await.ok(),
        Some(_) => Some(former_databases.clone()),
        None => None,
    };
    // The new primary's, only where they are read below: with the former primary connected
    // (created, altered, dropped without storage) or for dropped relation files.
    let new_dbs = match new {
        Some(p) if former.is_some() || !dropped.is_empty() => database_names(p, opts).await.ok(),
        _ => None,
    };

    // Created and altered: the former primary's pg_class rows written by lost xids.
    let mut former_oids: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    match (former, &former_dbs) {
        (Some(fp), Some(fdbs)) => {
            for (db, xids) in &by_db {
                let Some(dbname) = fdbs.get(db) else {
                    unnamed.push(format!(
                        "database with OID {db} no longer exists on the former primary: the \
                         relations its lost DDL created or altered cannot be named"
                    ));
                    continue;
                };
                match created_or_altered(fp, new, new_dbs.as_ref(), opts, dbname, xids).await {
                    Ok((rows, oids)) => {
                        former_oids.insert(*db, oids);
                        for (row, action, xmin) in rows {
                            let xid = top.get(&xmin).copied();
                            found.push((dbname.clone(), row, action, xid));
                        }
                    }
                    Err(e) => unnamed.push(format!(
                        "database {dbname}: the relations lost DDL created or altered cannot be \
                         named: reading the former primary's pg_class failed: {e}"
                    )),
                }
            }
        }
        (Some(_), None) => unnamed.push(
            "the relations lost DDL created or altered cannot be named: the former primary's \
             databases could not be listed"
                .into(),
        ),
        (None, _) => unnamed.push(format!(
            "the relations that {} lost DDL transaction(s) created or altered cannot be named: \
             only the former primary's catalogs hold them, and it was not connected (its WAL was \
             read from files)",
            ddl.len()
        )),
    }

    // Dropped: the relation files lost commits dropped, named by the new primary.
    if !dropped.is_empty() {
        match (new, &new_dbs) {
            (Some(np), Some(ndbs)) => {
                for (db, locs) in &dropped {
                    let dbname = ndbs.get(db).or_else(|| {
                        former_dbs
                            .as_ref()
                            .and_then(|f| f.get(db))
                            .filter(|_| *db == 0)
                    });
                    let Some(dbname) = dbname else {
                        let gone: Vec<_> = locs
                            .iter()
                            .filter(|(l, _)| !created_after_switchpoint.contains(l))
                            .collect();
                        if !gone.is_empty() {
                            unnamed.push(format!(
                                "{} relation file(s) dropped by lost transactions in the database \
                                 with OID {db} cannot be named: the new primary has no such database",
                                gone.len()
                            ));
                        }
                        continue;
                    };
                    let fp = former.map(|p| p.with_dbname(dbname));
                    match dropped_relations(
                        &np.with_dbname(dbname),
                        fp.as_ref(),
                        opts,
                        locs,
                        created_after_switchpoint,
                        former_oids.get(db),
                    )
                    .await
                    {
                        Ok((rows, missing)) => {
                            for (row, action, xid) in rows {
                                found.push((dbname.clone(), row, action, Some(xid)));
                            }
                            if missing > 0 {
                                unnamed.push(format!(
                                    "database {dbname}: {missing} relation file(s) dropped by lost \
                                     transactions are unknown to the new primary (rewritten or \
                                     dropped there after the promotion)"
                                ));
                            }
                        }
                        Err(e) => unnamed.push(format!(
                            "database {dbname}: the relations lost DDL dropped cannot be named: \
                             {e}"
                        )),
                    }
                }
            }
            _ => unnamed.push(
                "the relations lost DDL dropped cannot be named: the new primary's catalogs \
                 name them, and it was not connected"
                    .into(),
            ),
        }
    }
    // Dropped relations without storage (views, partitioned tables, composite and foreign
    // types): no file names them, so they are the new primary's rows that existed before the
    // promotion (xmin before its first xid) and whose OID the former primary no longer has.
    if let (Some(np), Some(ndbs)) = (new, &new_dbs) {
        for (db, oids) in &former_oids {
            let Some(dbname) = ndbs.get(db) else {
                continue;
            };
            let Some(first) = new_side_first_xid else {
                unnamed.push(format!(
                    "database {dbname}: views and other relations without storage dropped by \
                     lost DDL cannot be told apart: the new primary's first xid is unknown"
                ));
                continue;
            };
            match dropped_without_storage(&np.with_dbname(dbname), opts, first, oids).await {
                Ok(rows) => found.extend(
                    rows.into_iter()
                        .map(|r| (dbname.clone(), r, DdlAction::Dropped, None)),
                ),
                Err(e) => unnamed.push(format!(
                    "database {dbname}: views and other relations without storage dropped by \
                     lost DDL cannot be named: reading the new primary's pg_class failed: {e}"
                )),
            }
        }
    }

    // An index created or dropped with its table (`CREATE TABLE … PRIMARY KEY`, `DROP TABLE`)
    // is said by the table's line; a TOAST table never has a line of its own.
    let tables: BTreeSet<(String, u32, DdlAction)> = found
        .iter()
        .map(|(db, r, a, _)| (db.clone(), r.oid, *a))
        .collect();
    let mut out: Vec<LostDdlRelation> = found
        .into_iter()
        .filter(|(db, r, a, _)| {
            r.relkind != "t" && !(r.indrelid != 0 && tables.contains(&(db.clone(), r.indrelid, *a)))
        })
        .map(|(db, r, action, xid)| LostDdlRelation {
            database: Some(db),
            kind: kind_name(&r.relkind).into(),
            relation: r.name,
            action,
            xid,
            oid: r.oid,
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.database, a.action, &a.relation).cmp(&(&b.database, b.action, &b.relation))
    });
    (out, unnamed)
}

/// Created and altered relations of one database: `(row, action, xmin)`, and every OID the
/// former primary's `pg_class` holds there (to tell a dropped relation from a rewritten one).
async fn created_or_altered(
    former: &ConnParams,
    new: Option<&ConnParams>,
    new_dbs: Option<&BTreeMap<u32, String>>,
    opts: &SessionOptions,
    dbname: &str,
    xids: &[i64],
) -> Result<(Vec<(ClassRow, DdlAction, u32)>, BTreeSet<u32>), crate::pg::PgError> {
    let s = connect(&former.with_dbname(dbname), opts).await?;
    let sql = format!(
        "SELECT {CLASS_COLUMNS}, c.xmin::text::int8 {CLASS_FROM} \
         WHERE c.xmin::text::int8 = ANY($1::int8[])"
    );
    let rows = s.query(sql.as_str(), &[&xids]).await?;
    let written: Vec<(ClassRow, u32)> = rows
        .iter()
        .map(|r| (class_row(r), r.get::<_, i64>(6) as u32))
        .collect();
    let all: BTreeSet<u32> = s
        .query("SELECT oid::int8 FROM pg_catalog.pg_class", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u32)
        .collect();
    s.close().await;

    // Which of them the new primary has (same OID and kind): altered; the others: created.
    let oids: Vec<i64> = written.iter().map(|(r, _)| i64::from(r.oid)).collect();
    let on_new: BTreeMap<u32, String> = match (
        new,
        new_dbs.is_some_and(|d| d.values().any(|n| n == dbname)),
    ) {
        (Some(np), true) => {
            let s = connect(&np.with_dbname(dbname), opts).await?;
            let rows = s
                .query(
                    "SELECT oid::int8, relkind::text FROM pg_catalog.pg_class \
                         WHERE oid::int8 = ANY($1::int8[])",
                    &[&oids],
                )
                .await?;
            s.close().await;
            rows.iter()
                .map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, String>(1)))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let out = written
        .into_iter()
        .filter(|(r, _)| !r.internal)
        .map(|(r, xmin)| {
            let action = if on_new.get(&r.oid) == Some(&r.relkind) {
                DdlAction::Altered
            } else {
                DdlAction::Created
            };
            (r, action, xmin)
        })
        .collect();
    Ok((out, all))
}

/// Relations without storage on the new primary (`new` names the database) that existed before
/// the promotion (`xmin` before `first_xid`) and that the former primary (`former_oids`) lacks.
async fn dropped_without_storage(
    new: &ConnParams,
    opts: &SessionOptions,
    first_xid: Xid,
    former_oids: &BTreeSet<u32>,
) -> Result<Vec<ClassRow>, crate::pg::PgError> {
    let s = connect(new, opts).await?;
    let sql = format!(
        "SELECT {CLASS_COLUMNS} {CLASS_FROM} \
         WHERE c.relkind IN ('v', 'p', 'c', 'f', 'I') AND c.oid >= 16384 \
           AND c.xmin::text::int8 < $1::int8"
    );
    let rows = s.query(sql.as_str(), &[&i64::from(first_xid.0)]).await?;
    s.close().await;
    Ok(rows
        .iter()
        .map(class_row)
        .filter(|r| !r.internal && !former_oids.contains(&r.oid))
        .collect())
}

/// Dropped relations of one database: `(row as the new primary has it, action, xid)`, and how
/// many dropped files the new primary does not know.
async fn dropped_relations(
    new: &ConnParams,
    former: Option<&ConnParams>,
    opts: &SessionOptions,
    locs: &[(RelFileLocator, Xid)],
    created_after_switchpoint: &BTreeSet<RelFileLocator>,
    former_oids: Option<&BTreeSet<u32>>,
) -> Result<(Vec<(ClassRow, DdlAction, Xid)>, usize), crate::pg::PgError> {
    let s = connect(new, opts).await?;
    let sql = format!(
        "SELECT {CLASS_COLUMNS} {CLASS_FROM} \
         WHERE c.oid = pg_catalog.pg_filenode_relation($1::int8::oid, $2::int8::oid)"
    );
    let mut found = Vec::new();
    let mut missing = 0;
    for (loc, xid) in locs {
        // Created and dropped again after the switchpoint: nothing to re-create.
        if created_after_switchpoint.contains(loc) {
            continue;
        }
        match s
            .query_opt(sql.as_str(), &[&i64::from(loc.spc), &i64::from(loc.rel)])
            .await?
        {
            Some(r) => found.push((class_row(&r), *xid)),
            None => missing += 1,
        }
    }
    s.close().await;
    // The former primary's OIDs, when not read already.
    let former_oids: Option<BTreeSet<u32>> = match (former_oids, former) {
        (Some(o), _) => Some(o.clone()),
        (None, Some(fp)) => {
            let s = connect(fp, opts).await?;
            let rows = s
                .query("SELECT oid::int8 FROM pg_catalog.pg_class", &[])
                .await?;
            s.close().await;
            Some(rows.iter().map(|r| r.get::<_, i64>(0) as u32).collect())
        }
        (None, None) => None,
    };
    let out = found
        .into_iter()
        .filter(|(r, _)| !r.internal)
        .filter_map(|(r, xid)| match &former_oids {
            // Still there on the former primary: rewritten (listed as altered), not dropped.
            Some(o) if o.contains(&r.oid) => None,
            Some(_) => Some((r, DdlAction::Dropped, xid)),
            None => Some((r, DdlAction::DroppedOrRewritten, xid)),
        })
        .collect();
    Ok((out, missing))
}
