//! Gathering shared by the commands: connect to a node read-only and read its facts.

/// One node after reading it: what the report shows, and the open session for later phases.
pub(crate) struct ReadNode {
    pub(crate) section: crate::report::NodeSection,
    pub(crate) facts: Option<crate::node::NodeFacts>,
    pub(crate) session: Option<crate::pg::session::Session>,
    pub(crate) findings: Vec<crate::finding::Finding>,
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
    };
    let target = params.target();
    let with_target = |msg: String| {
        if msg.contains(&target) {
            msg
        } else {
            format!("{target}: {msg}")
        }
    };
    let session = match crate::pg::session::connect(params, opts).await {
        Ok(s) => s.paced(pacer),
        Err(e) => {
            r.section.error = Some(with_target(e.to_string()));
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
            r.section.error = Some(with_target(e.to_string()));
            session.close().await;
        }
    }
    r
}
