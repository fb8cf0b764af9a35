//! Relfilenodes to table names, through the former primary's catalogs.
//!
//! The former primary's catalogs are the right ones: a relfilenode created by a lost TRUNCATE
//! or VACUUM FULL does not exist on the new primary. TOAST relations map to their owning table.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::pg::connect;
use crate::pg::session::{Session, SessionOptions};
use crate::pg::ConnParams;
use crate::wal::RelFileLocator;

/// What a relfilenode is, in words a DBA recognises.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelName {
    /// The database name (`None` for shared catalogs or when unknown).
    pub database: Option<String>,
    /// `schema.table` of the table (the owner, for a TOAST relation), when known.
    pub table: Option<String>,
    /// `table`, `toast`, `index`, `sequence`, `catalog`, `materialized view`, or `unknown`.
    pub kind: String,
    /// The relation's OID in its database, when known.
    pub oid: Option<u32>,
}

/// The names found, one line per database that could not be read, and the server's
/// databases (`oid → name`).
pub type Resolved = (
    BTreeMap<RelFileLocator, RelName>,
    Vec<String>,
    BTreeMap<u32, String>,
);

/// Resolves every locator in `rels`, connecting to each database of the former primary (the
/// databases are listed from `pg_database`, which needs no CONNECT privilege, so a database
/// that cannot be connected to still has its name). The session that lists the databases also
/// names the relations of the database `params` names, and the shared catalogs'.
pub async fn resolve(
    params: &ConnParams,
    opts: &SessionOptions,
    rels: &BTreeSet<RelFileLocator>,
) -> Resolved {
    resolve_listed(open(params, opts).await, params, opts, rels).await
}

/// A session to the database `params` names, and the server's databases (`oid → name`):
/// the first half of [`resolve`], which needs no relation (`compare` opens it while the WAL
/// is decoded).
pub type Listed = Result<(Session, BTreeMap<u32, String>), crate::pg::PgError>;

/// Connects for [`resolve_listed`] and lists the databases.
pub async fn open(params: &ConnParams, opts: &SessionOptions) -> Listed {
    let s = connect(params, opts).await?;
    let d = databases_of(&s).await?;
    Ok((s, d))
}

/// [`resolve`] with the session and the databases [`open`] listed.
pub async fn resolve_listed(
    listed: Listed,
    params: &ConnParams,
    opts: &SessionOptions,
    rels: &BTreeSet<RelFileLocator>,
) -> Resolved {
    let mut names = BTreeMap::new();
    let mut problems = Vec::new();
    // A session the server ended while the WAL was decoded (idle_session_timeout, a
    // restart) is opened again.
    let listed = match listed {
        Ok((s, _)) if s.client().is_closed() => open(params, opts).await,
        l => l,
    };
    let (home, databases) = match listed {
        Ok(l) => l,
        Err(e) => {
            problems.push(format!("cannot list databases: {e}"));
            return (names, problems, BTreeMap::new());
        }
    };
    if rels.is_empty() {
        return (names, problems, databases);
    }
    let mut by_db: BTreeMap<u32, Vec<RelFileLocator>> = BTreeMap::new();
    for r in rels {
        by_db.entry(r.db).or_default().push(*r);
    }
    for (db, locs) in by_db {
        // Shared catalogs (db 0) resolve from any database.
        let dbname = if db == 0 {
            Some(params.dbname().to_string())
        } else {
            databases.get(&db).cloned()
        };
        let Some(dbname) = dbname else {
            problems.push(format!(
                "database with OID {db} no longer exists on the former primary"
            ));
            continue;
        };
        let found = if dbname == params.dbname() {
            names_in(&home, &locs).await
        } else {
            match connect(&params.with_dbname(&dbname), opts).await {
                Ok(s) => names_in(&s, &locs).await,
                Err(e) => Err(e),
            }
        };
        match found {
            Ok(found) => {
                for (loc, mut name) in found {
                    name.database = (db != 0).then(|| dbname.clone());
                    names.insert(loc, name);
                }
            }
            Err(e) => problems.push(format!(
                "database {dbname}: its tables are shown as relfilenodes: {e}"
            )),
        }
    }
    (names, problems, databases)
}

/// `oid → datname` of a server.
pub async fn database_names(
    params: &ConnParams,
    opts: &SessionOptions,
) -> Result<BTreeMap<u32, String>, crate::pg::PgError> {
    Ok(open(params, opts).await?.1)
}

/// `oid → datname` of the server `s` is connected to.
async fn databases_of(s: &Session) -> Result<BTreeMap<u32, String>, crate::pg::PgError> {
    let rows = s
        .query("SELECT oid::int8, datname FROM pg_database", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, String>(1)))
        .collect())
}

/// The names of `locs` in the database `s` is connected to.
async fn names_in(
    s: &Session,
    locs: &[RelFileLocator],
) -> Result<Vec<(RelFileLocator, RelName)>, crate::pg::PgError> {
    // Tablespace 0 marks a relation OID (TRUNCATE records name relations that way), looked
    // up directly; anything else is a relfilenode. No comment inside the SQL: the read-only
    // witness (tests/readonly.rs) reads every statement for write keywords.
    const SQL: &str = "\
        SELECT c.oid::int8, c.relkind::text, n.nspname::text, c.relname::text,
               o.oid::int8, onsp.nspname::text, o.relname::text
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_class o ON c.relkind = 't' AND o.reltoastrelid = c.oid
          LEFT JOIN pg_namespace onsp ON onsp.oid = o.relnamespace
         WHERE c.oid = CASE WHEN $1::int8 = 0 THEN $2::int8::oid
                            ELSE pg_filenode_relation($1::int8::oid, $2::int8::oid) END";
    let mut out = Vec::with_capacity(locs.len());
    for loc in locs {
        let row = s
            .query_opt(SQL, &[&i64::from(loc.spc), &i64::from(loc.rel)])
            .await?;
        let name = match row {
            None => RelName {
                kind: "unknown".into(),
                ..RelName::default()
            },
            Some(r) => {
                let oid = r.get::<_, i64>(0) as u32;
                let relkind: String = r.get(1);
                let qualified = format!("{}.{}", r.get::<_, String>(2), r.get::<_, String>(3));
                let owner = r
                    .get::<_, Option<String>>(6)
                    .map(|t| format!("{}.{}", r.get::<_, String>(5), t));
                let kind = match relkind.as_str() {
                    _ if oid < crate::wal::accounting::FIRST_NORMAL_OBJECT_ID => "catalog",
                    "r" | "p" => "table",
                    "t" => "toast",
                    "i" | "I" => "index",
                    "S" => "sequence",
                    "m" => "materialized view",
                    _ => "other",
                };
                RelName {
                    database: None,
                    table: Some(owner.unwrap_or(qualified)),
                    kind: kind.into(),
                    oid: Some(oid),
                }
            }
        };
        out.push((*loc, name));
    }
    Ok(out)
}
