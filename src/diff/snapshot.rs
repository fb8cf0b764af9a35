//! One consistent, read-only snapshot per node, shared by all of that node's connections.
//!
//! The first connection runs `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` and
//! `pg_export_snapshot()`; the others import it with `SET TRANSACTION SNAPSHOT`, so concurrent
//! writes on the new primary cannot create phantom differences between two queries of the run.
//! This works on a hot standby too (a snapshot exported in recovery can be imported in
//! recovery). Every session pins the settings that shape text output identically on both
//! nodes, and an empty `search_path` (everything the tool sends is schema-qualified).

use crate::pg::{self, ConnParams, Host, Session, SessionOptions};

use super::error::{DiffError, Node};

/// Settings pinned on every session before its transaction starts. `jit` is off: the bucket
/// expression of a composite key (a `CASE` tree of row comparisons, see
/// [`super::chunk::KeyColumns::bucket_sql`]) is costed as if every branch ran, which crosses
/// `jit_optimize_above_cost`: with 780 bounds over 200,000 rows the query took 17 s (JIT
/// compilation) instead of 0.3 s. The integer-key first pass over 1 M rows showed no gain
/// from JIT either (0.37–0.44 s with it, 0.38–0.58 s without).
pub const PIN_SQL: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
SET standard_conforming_strings = on; SET search_path = ''; SET jit = off; \
SET default_transaction_read_only = on";

/// The transaction every session runs in.
pub const BEGIN_SQL: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The connections of one node inside one database, all reading the same snapshot.
#[derive(Debug)]
pub struct NodePool {
    /// Which node.
    pub node: Node,
    /// `host:port`.
    pub target: String,
    /// The database.
    pub database: String,
    /// Sessions, each inside the shared snapshot's transaction.
    pub sessions: Vec<Session>,
    /// Whether the node is a standby (`pg_is_in_recovery()`).
    pub in_recovery: bool,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// True when the extra sessions imported the first one's snapshot.
    pub shared_snapshot: bool,
}

/// `params` with another database name (rebuilt as a conninfo string; the password is kept).
pub fn with_dbname(params: &ConnParams, dbname: &str) -> Result<ConnParams, String> {
    fn q(v: &str) -> String {
        let mut s = String::from("'");
        for c in v.chars() {
            if c == '\'' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('\'');
        s
    }
    let mut parts = Vec::new();
    match params.host() {
        Host::Tcp(h) => parts.push(format!("host={}", q(h))),
        Host::Unix(p) => parts.push(format!("host={}", q(&p.display().to_string()))),
    }
    if let Some(a) = params.hostaddr() {
        parts.push(format!("hostaddr={}", q(&a.to_string())));
    }
    parts.push(format!("port={}", params.port()));
    parts.push(format!("user={}", q(params.user())));
    parts.push(format!("dbname={}", q(dbname)));
    if let Some(pw) = params.password() {
        parts.push(format!("password={}", q(pw)));
    }
    parts.push(format!("sslmode={}", params.sslmode().as_str()));
    if let Some(r) = params.sslrootcert() {
        parts.push(format!("sslrootcert={}", q(&r.display().to_string())));
    }
    if let Some(t) = params.connect_timeout() {
        parts.push(format!("connect_timeout={}", t.as_secs().max(1)));
    }
    if let Some(o) = params.options() {
        parts.push(format!("options={}", q(o)));
    }
    ConnParams::parse(&parts.join(" "), &|_| None).map_err(|e| e.to_string())
}

async fn start(
    node: Node,
    params: &ConnParams,
    opts: &SessionOptions,
    snapshot: Option<&str>,
) -> Result<Session, DiffError> {
    let err = |what: &str, source| DiffError::Session {
        node,
        target: params.target(),
        database: params.dbname().to_string(),
        what: what.to_string(),
        source,
    };
    let s = pg::connect(params, opts)
        .await
        .map_err(|e| err("connecting", e))?;
    s.simple_query(PIN_SQL)
        .await
        .map_err(|e| err("pinning session settings", e))?;
    s.simple_query(BEGIN_SQL)
        .await
        .map_err(|e| err("starting a repeatable-read transaction", e))?;
    if let Some(id) = snapshot {
        let sql = format!("SET TRANSACTION SNAPSHOT {}", super::sql::literal(id));
        s.simple_query(&sql)
            .await
            .map_err(|e| err("importing the shared snapshot", e))?;
    }
    Ok(s)
}

impl NodePool {
    /// Opens `jobs` sessions on one node, all on one snapshot (falls back to a single
    /// session when the server refuses to export it).
    pub async fn open(
        node: Node,
        params: &ConnParams,
        opts: &SessionOptions,
        jobs: usize,
    ) -> Result<NodePool, DiffError> {
        let first = start(node, params, opts, None).await?;
        let target = params.target();
        let database = params.dbname().to_string();
        let facts = first
            .query_one(
                "SELECT pg_catalog.pg_is_in_recovery(), \
                 pg_catalog.current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(|e| DiffError::Session {
                node,
                target: target.clone(),
                database: database.clone(),
                what: "reading server facts".into(),
                source: e,
            })?;
        let in_recovery: bool = facts.get(0);
        let server_version_num: i32 = facts.get(1);
        let mut pool = NodePool {
            node,
            target,
            database,
            sessions: vec![first],
            in_recovery,
            server_version_num,
            shared_snapshot: false,
        };
        if jobs <= 1 {
            return Ok(pool);
        }
        let exported = pool.sessions[0]
            .simple_value("SELECT pg_catalog.pg_export_snapshot()")
            .await;
        let id = match exported {
            Ok(Some(id)) => id,
            Ok(None) | Err(_) => {
                // The transaction is aborted after an error: start it again, alone.
                let s = &pool.sessions[0];
                let _ = s.simple_query("ROLLBACK").await;
                s.simple_query(BEGIN_SQL)
                    .await
                    .map_err(|e| DiffError::Session {
                        node,
                        target: pool.target.clone(),
                        database: pool.database.clone(),
                        what: "restarting the transaction".into(),
                        source: e,
                    })?;
                return Ok(pool);
            }
        };
        let rest = futures_util::future::join_all(
            (1..jobs).map(|_| start(node, params, opts, Some(id.as_str()))),
        )
        .await;
        for r in rest {
            pool.sessions.push(r?);
        }
        pool.shared_snapshot = true;
        Ok(pool)
    }

    /// The pool with every session paced by `pacer` from now on (`None`: unpaced).
    pub fn paced(mut self, pacer: Option<std::sync::Arc<crate::pg::Pacer>>) -> NodePool {
        self.sessions = self
            .sessions
            .into_iter()
            .map(|s| s.paced(pacer.clone()))
            .collect();
        self
    }

    /// Ends every transaction and closes the sessions.
    pub async fn close(self) {
        for s in self.sessions {
            let _ = s.simple_query("ROLLBACK").await;
            s.close().await;
        }
    }
}
