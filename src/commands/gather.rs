//! Gathering shared by the commands: connect to a node read-only and read its facts.

/// One node after reading it: what the report shows, and the open session for later phases.
pub(crate) struct ReadNode {
    pub(crate) section: crate::report::NodeSection,
    pub(crate) facts: Option<crate::node::NodeFacts>,
    pub(crate) session: Option<crate::pg::session::Session>,
    pub(crate) findings: Vec<crate::finding::Finding>,
    /// Why the facts could not be read (also in `section.error`, as text for the report).
    pub(crate) error: Option<super::outcome::NodeError>,
}

impl ReadNode {
    /// The error of a node that could not be read (a generic one if none was kept).
    pub(crate) fn take_error(&mut self) -> super::outcome::NodeError {
        self.error
            .take()
            .unwrap_or_else(|| super::outcome::NodeError {
                target: self.section.target.clone(),
                source: crate::node::FactsError::Unexpected {
                    target: self.section.target.clone(),
                    what: "its facts",
                    detail: "unreadable".into(),
                },
            })
    }
}

/// Connects read-only and reads the node's facts; errors become one line of text.
pub(crate) async fn read_node(
    params: &crate::pg::ConnParams,
    opts: &crate::pg::session::SessionOptions,
    pacer: Option<std::sync::Arc<crate::pg::Pacer>>,
) -> ReadNode {
    let mut r = ReadNode {
        section: crate::report::NodeSection {
            target: params.redacted(),
            ..crate::report::NodeSection::default()
        },
        facts: None,
        session: None,
        findings: Vec::new(),
        error: None,
    };
    let target = params.target();
    let failed = |r: &mut ReadNode, source: crate::node::FactsError| {
        let e = super::outcome::NodeError {
            target: target.clone(),
            source,
        };
        r.section.error = Some(e.to_string());
        r.error = Some(e);
    };
    let session = match crate::pg::connect(params, opts).await {
        Ok(s) => s.paced(pacer),
        Err(e) => {
            failed(&mut r, e.into());
            return r;
        }
    };
    match crate::node::read_facts(&session, params, opts).await {
        Ok((facts, findings)) => {
            r.section.facts = Some(facts.clone());
            r.facts = Some(facts);
            r.findings = findings;
            r.session = Some(session);
        }
        Err(e) => {
            failed(&mut r, e);
            session.close().await;
        }
    }
    r
}
