//! The pacer's watcher: a session of its own that looks once a second whether other clients
//! are at work on the server, and tells the [`Pacer`].

use super::connect::connect;
use super::pace::{Pacer, LOOK_EVERY, OTHERS_AT_WORK_SQL};
use super::session::{Session, SessionOptions, APPLICATION_NAME};
use super::ConnParams;

impl Pacer {
    /// A pacer allowing `share` of the time while other sessions are at work on the server
    /// in `params`, which it looks at once a second over a connection of its own (see the
    /// module comment); it counts the server as busy until the first look says otherwise.
    /// Must be called inside a tokio runtime.
    pub fn watching(
        params: &ConnParams,
        opts: &SessionOptions,
        share: f64,
    ) -> std::sync::Arc<Pacer> {
        let pacer = std::sync::Arc::new(Pacer::new(share));
        let weak = std::sync::Arc::downgrade(&pacer);
        let (params, opts) = (params.clone(), *opts);
        let task = tokio::spawn(async move {
            // Without a connection the server stays "busy": the run is paced.
            let Ok(s) = connect(&params, &opts).await else {
                return;
            };
            loop {
                let others = others_at_work(&s).await;
                match weak.upgrade() {
                    Some(p) => p.observe(others),
                    None => break,
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
            s.close().await;
        });
        pacer.set_watcher(task);
        pacer
    }
}

/// How many other client sessions are at work on the server (`None` when the look failed).
async fn others_at_work(s: &Session) -> Option<i64> {
    s.query_one(OTHERS_AT_WORK_SQL, &[&APPLICATION_NAME])
        .await
        .ok()
        .map(|r| r.get::<_, i64>(0))
}
