//! The one way to open a read-only SQL session: one host directly, several hosts (or a
//! `target_session_attrs`) chosen the way libpq chooses.

use super::conninfo::ConnParams;
use super::error::PgError;
use super::multihost;
use super::session::{self, Session, SessionOptions};

/// Connects to the server in `params` with a read-only session, bounded by the connect timeout.
///
/// A multi-host string (or a `target_session_attrs` other than `any`) is resolved first as
/// libpq does ([`multihost::choose`]); the session's target names the host reached.
pub async fn connect(params: &ConnParams, opts: &SessionOptions) -> Result<Session, PgError> {
    if params.needs_host_choice() {
        return multihost::choose(params, opts).await.map(|(_, s, _)| s);
    }
    session::connect_single(params, opts).await
}
