//! The replication connection's startup message and authentication (trust, cleartext, MD5, SCRAM).

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;

use super::client::{cstr, ReplicationClient};
use crate::pg::conninfo::ConnParams;
use crate::pg::error::{ErrorKind, PgError};
use crate::pg::session::APPLICATION_NAME;

impl ReplicationClient {
    pub(crate) async fn startup(&mut self, params: &ConnParams) -> Result<(), PgError> {
        let mut buf = BytesMut::new();
        let mut startup: Vec<(&str, &str)> = vec![
            ("user", params.user()),
            ("database", params.dbname()),
            ("replication", "true"),
            ("application_name", APPLICATION_NAME),
        ];
        if let Some(o) = params.options() {
            startup.push(("options", o));
        }
        frontend::startup_message(startup, &mut buf)
            .map_err(|e| PgError::config(format!("cannot encode startup message: {e}")))?;
        self.write(&buf).await?;
        let wait = self.opts.connect_timeout;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, mut body) = self.read_message(wait, "authenticating").await?;
            match tag {
                b'R' => {
                    if body.remaining() < 4 {
                        return Err(PgError::protocol(
                            &self.target,
                            "short authentication message",
                        ));
                    }
                    let code = body.get_i32();
                    let mut out = BytesMut::new();
                    match code {
                        0 => continue,
                        3 => {
                            let pw = self.need_password()?;
                            frontend::password_message(pw.as_bytes(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        5 => {
                            if body.remaining() < 4 {
                                return Err(PgError::protocol(&self.target, "short MD5 salt"));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let pw = self.need_password()?;
                            let hash = md5_hash(self.user.as_bytes(), pw.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        10 => {
                            let mut mechs = Vec::new();
                            while let Some(m) = cstr(&mut body) {
                                if m.is_empty() {
                                    break;
                                }
                                mechs.push(m);
                            }
                            if !mechs.iter().any(|m| m == SCRAM_SHA_256) {
                                return Err(self.auth_error(format!(
                                    "the server offers only unsupported SASL mechanisms {mechs:?}"
                                )));
                            }
                            let pw = self.need_password()?;
                            // 'n': we do not do channel binding (allowed even when the server offers -PLUS).
                            let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                PgError::protocol(&self.target, "SASLContinue without SASL")
                            })?;
                            s.update(&body)
                                .map_err(|e| self.auth_error(format!("SCRAM exchange failed: {e}")))?;
                            frontend::sasl_response(s.message(), &mut out)
                                .map_err(|e| PgError::protocol(&self.target, e.to_string()))?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                PgError::protocol(&self.target, "SASLFinal without SASL")
                            })?;
                            s.finish(&body).map_err(|e| {
                                self.auth_error(format!("the server's SCRAM signature is invalid: {e}"))
                            })?;
                            continue;
                        }
                        other => {
                            return Err(self.auth_error(format!(
                                "the server asks for authentication method {other} (GSSAPI/SSPI/Kerberos), which is not supported"
                            )))
                        }
                    }
                    self.write(&out).await?;
                }
                b'E' => {
                    self.broken = true;
                    return Err(self.server_error(body));
                }
                b'K' => {}
                b'Z' => return Ok(()),
                b'N' | b'S' => self.note(tag, body),
                other => {
                    return Err(PgError::protocol(
                        &self.target,
                        format!("unexpected message {:?} during startup", other as char),
                    ))
                }
            }
        }
    }

    pub(super) fn need_password(&self) -> Result<String, PgError> {
        self.password
            .clone()
            .ok_or_else(|| PgError::no_password(&self.target, &self.user))
    }

    pub(super) fn auth_error(&self, message: String) -> PgError {
        PgError::new(ErrorKind::Auth {
            target: self.target.clone(),
            user: self.user.clone(),
            message,
            sqlstate: None,
            hint: "check the password and the pg_hba.conf method for replication connections"
                .into(),
        })
    }
}
