//! Opening a physical replication connection: one host chosen as libpq chooses, TCP or Unix
//! socket, TLS, then the startup and authentication.

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::conninfo::{ConnParams, Host};
use super::error::{ErrorKind, PgError};
use super::replication::{Io, ReplicationClient, ReplicationOptions};
use super::tls::{self, TlsPlan};

/// Opens a physical replication connection, bounded by the connect timeout.
pub async fn connect_replication(
    params: &ConnParams,
    opts: &ReplicationOptions,
) -> Result<ReplicationClient, PgError> {
    let timeout = params.connect_timeout().unwrap_or(opts.connect_timeout);
    // Several hosts: pick one with a SQL session first (libpq's rules), then stream from it.
    let pinned;
    let params = if params.needs_host_choice() {
        let sopts = super::session::SessionOptions {
            connect_timeout: timeout,
            ..Default::default()
        };
        let (p, s, _) = super::multihost::choose(params, &sopts).await?;
        s.close().await;
        pinned = p;
        &pinned
    } else {
        params
    };
    let target = params.target();
    // The outer timeout bounds everything; inner waits use the same limit.
    let inner = ReplicationOptions {
        connect_timeout: timeout,
        ..*opts
    };
    match tokio::time::timeout(timeout, connect_inner(params, &inner, &target)).await {
        Ok(r) => r,
        Err(_) => Err(PgError::timeout(
            &target,
            "opening a replication connection (TCP, TLS, authentication and startup)",
            timeout,
        )),
    }
}

async fn connect_inner(
    params: &ConnParams,
    opts: &ReplicationOptions,
    target: &str,
) -> Result<ReplicationClient, PgError> {
    let plan = tls::plan(params).map_err(|e| match e.into_kind() {
        ErrorKind::Tls { message, hint, .. } => PgError::tls(target, message, hint),
        other => PgError::new(other),
    })?;
    let io: Box<dyn Io> = match params.host() {
        Host::Unix(_) => {
            let path = params
                .socket_path()
                .ok_or_else(|| PgError::config("no socket path"))?;
            Box::new(
                UnixStream::connect(&path)
                    .await
                    .map_err(|e| PgError::connect(target, e.to_string()))?,
            )
        }
        Host::Tcp(host) => {
            let tcp = tcp_connect(host, params, target).await?;
            match &plan {
                TlsPlan::Disabled => Box::new(tcp),
                TlsPlan::Optional(cfg, _) | TlsPlan::Required(cfg, _) => {
                    let mut tcp = tcp;
                    let mut buf = BytesMut::new();
                    frontend::ssl_request(&mut buf);
                    tcp.write_all(&buf)
                        .await
                        .map_err(|e| PgError::connect(target, e.to_string()))?;
                    let answer = tcp.read_u8().await.map_err(|e| {
                        PgError::protocol(target, format!("no answer to SSLRequest: {e}"))
                    })?;
                    match answer {
                        b'S' => {
                            let name = params.tls_server_name();
                            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                                .map_err(|e| {
                                    PgError::tls(
                                        target,
                                        format!("\"{name}\" is not a valid TLS server name: {e}"),
                                        None,
                                    )
                                })?;
                            let connector = tokio_rustls::TlsConnector::from(cfg.clone());
                            let stream =
                                connector.connect(server_name, tcp).await.map_err(|e| {
                                    tls::explain_handshake_error(target, &name, &e).unwrap_or_else(
                                        || {
                                            PgError::tls(
                                                target,
                                                format!("TLS handshake failed: {e}"),
                                                None,
                                            )
                                        },
                                    )
                                })?;
                            Box::new(stream)
                        }
                        b'N' if matches!(plan, TlsPlan::Required(..)) => {
                            return Err(PgError::tls(
                                target,
                                format!(
                                    "the server does not support TLS but sslmode={} requires it",
                                    params.sslmode()
                                ),
                                Some(
                                    "enable ssl on the server, or use sslmode=prefer or disable"
                                        .into(),
                                ),
                            ))
                        }
                        b'N' => Box::new(tcp),
                        other => {
                            return Err(PgError::protocol(
                                target,
                                format!("unexpected answer {other:#04x} to SSLRequest"),
                            ))
                        }
                    }
                }
            }
        }
    };
    let mut client = ReplicationClient {
        io,
        rbuf: BytesMut::with_capacity(64 * 1024),
        target: target.to_string(),
        user: params.user().to_string(),
        password: params.password().map(str::to_string),
        opts: *opts,
        server_params: Vec::new(),
        notices: Vec::new(),
        stream_open: false,
        broken: false,
    };
    client.startup(params).await?;
    Ok(client)
}

async fn tcp_connect(host: &str, params: &ConnParams, target: &str) -> Result<TcpStream, PgError> {
    let port = params.port();
    let addrs: Vec<std::net::SocketAddr> = match params.hostaddr() {
        Some(a) => vec![std::net::SocketAddr::new(a, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| PgError::connect(target, format!("cannot resolve host name: {e}")))?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(PgError::connect(
        target,
        last.map(|e| e.to_string())
            .unwrap_or_else(|| "the host name resolved to no addresses".into()),
    ))
}
