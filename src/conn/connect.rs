//! Opening a connection: try each host in turn (shuffled with `load_balance_hosts=random`), run the
//! startup and authentication exchange within the connect timeout, then check
//! `target_session_attrs` the way libpq does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::stream::HandshakeError;
use super::tls::TlsSetup;
use super::{server_fields, CancelKey, PgConn, Stream, TxStatus};
use crate::config::{AuthMethod, ChannelBinding, ConnectConfig, Host, HostSpec, SslMode, TargetSessionAttrs};
use crate::error::{Error, Result};

/// What one connection attempt does about TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// No SSLRequest.
    Never,
    /// SSLRequest; plain text on the same connection when the server has no TLS.
    Preferred,
    /// SSLRequest; a server without TLS is an error.
    Required,
}

/// A failed attempt, with what libpq's sslmode fallbacks look at.
struct Failure {
    error: Error,
    /// The server sent an error during authentication (pg_hba.conf rejected us, wrong password).
    auth_rejected: bool,
    /// The attempt ran over TLS.
    tls_used: bool,
    /// TLS setup or the handshake failed (`prefer` then retries in plain text).
    tls_failed: bool,
    /// The client refused an authentication request it accepts only over TLS (`allow` then
    /// retries with TLS).
    needs_tls: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, auth_rejected: false, tls_used: false, tls_failed: false, needs_tls: false }
    }
}

/// A failed authentication exchange, and whether TLS would have avoided it: a refusal by
/// pgsess's plain-text rules ([`PgConn::refuse_in_plain_text`]).
struct AuthFailure {
    error: Error,
    needs_tls: bool,
}

impl From<Error> for AuthFailure {
    fn from(error: Error) -> AuthFailure {
        AuthFailure { error, needs_tls: false }
    }
}

/// The least SCRAM iteration count accepted: PostgreSQL's default `scram_iterations`. The
/// client's proof (which a listener on a plain-text connection, or a server posing as the real
/// one, keeps) costs a password guesser this many HMACs per guess; 1 makes it about as cheap as
/// MD5. Not configurable: a server's `scram_iterations` below it is refused.
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// The most accepted (postgres-protocol's own cap): the PBKDF2 loop runs before the connect
/// deadline is looked at again, so a server could otherwise keep the client busy for minutes.
pub const MAX_SCRAM_ITERATIONS: u32 = 100_000;
/// The shortest SCRAM salt accepted, in bytes (PostgreSQL and PgBouncer make 16-byte salts).
pub const MIN_SCRAM_SALT_BYTES: usize = 8;

/// Why a SCRAM server-first message is refused.
#[derive(Debug, PartialEq, Eq)]
enum ScramRefusal {
    /// Not a server-first message for this exchange (a protocol violation).
    Malformed(&'static str),
    /// Well formed, but asks for work too cheap (or too costly) to be accepted: the message says
    /// which and why.
    Weak(String),
}

/// Check the server-first message `r=<nonce>,s=<salt>,i=<count>` against the client-first
/// message the client sent, before anything is computed from the password: the nonce must
/// extend the client's, the salt must hold at least [`MIN_SCRAM_SALT_BYTES`], and the iteration
/// count must be within [`MIN_SCRAM_ITERATIONS`]..=[`MAX_SCRAM_ITERATIONS`].
fn check_server_first(client_first: &[u8], server_first: &[u8]) -> Result<(), ScramRefusal> {
    use ScramRefusal::{Malformed, Weak};
    let client_nonce = std::str::from_utf8(client_first)
        .ok()
        .and_then(|m| m.split(',').find_map(|f| f.strip_prefix("r=")))
        .ok_or(Malformed("the client's nonce is missing"))?;
    let text = std::str::from_utf8(server_first).map_err(|_| Malformed("not UTF-8"))?;
    let mut fields = text.split(',');
    let mut field = |prefix: &str, what: &'static str| fields.next().and_then(|f| f.strip_prefix(prefix)).ok_or(what);
    let nonce = field("r=", "no nonce (r=) first").map_err(Malformed)?;
    let salt = field("s=", "no salt (s=) second").map_err(Malformed)?;
    let count = field("i=", "no iteration count (i=) third").map_err(Malformed)?;
    if !nonce.starts_with(client_nonce) || nonce.len() == client_nonce.len() {
        return Err(Malformed("the nonce does not extend the client's"));
    }
    let count: u32 = count.parse().map_err(|_| Malformed("the iteration count is not a number"))?;
    // Base64: 6 bits a character, '=' padding carries none.
    let salt_bytes = salt.trim_end_matches('=').len() * 6 / 8;
    if salt_bytes < MIN_SCRAM_SALT_BYTES {
        return Err(Weak(format!(
            "the server's SCRAM salt is {salt_bytes} bytes, shorter than the {MIN_SCRAM_SALT_BYTES} pgsess requires \
             (a real server's is 16): refused before sending a proof of the password"
        )));
    }
    if count < MIN_SCRAM_ITERATIONS {
        return Err(Weak(format!(
            "the server's SCRAM iteration count is {count}, below the {MIN_SCRAM_ITERATIONS} pgsess requires: a proof \
             of the password made with so few iterations is cheap to crack offline, so it was not sent (the \
             server's scram_iterations must be at least {MIN_SCRAM_ITERATIONS}, PostgreSQL's default, when the \
             password is set)"
        )));
    }
    if count > MAX_SCRAM_ITERATIONS {
        return Err(Weak(format!(
            "the server's SCRAM iteration count is {count}, above the {MAX_SCRAM_ITERATIONS} pgsess accepts (it \
             would keep the client computing for too long)"
        )));
    }
    Ok(())
}

impl PgConn {
    /// Connect to the first host of `config` that accepts us and matches `target_session_attrs`.
    /// With several hosts, a failure names every host tried (never the password).
    pub fn connect(config: &ConnectConfig) -> Result<PgConn> {
        let mut order: Vec<&HostSpec> = config.hosts.iter().collect();
        if config.load_balance_hosts {
            shuffle(&mut order);
        }
        let passes: &[TargetSessionAttrs] = match config.target_session_attrs {
            // libpq: first look for a standby, then accept any server.
            TargetSessionAttrs::PreferStandby => &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any],
            ref t => std::slice::from_ref(t),
        };
        let mut failures: Vec<(String, Error)> = Vec::new();
        for want in passes {
            for spec in &order {
                match PgConn::connect_one(spec, config).and_then(|mut c| c.check_target(*want).map(|_| c)) {
                    Ok(conn) => return Ok(conn),
                    Err(e) => failures.push((spec.to_string(), e)),
                }
            }
        }
        let (_, last) = failures.pop().expect("at least one host");
        if failures.is_empty() {
            return Err(last);
        }
        let mut message = String::from("could not connect to any host: ");
        for (host, e) in &failures {
            message.push_str(&format!("{host}: {}; ", e.message));
        }
        message.push_str(&last.message);
        Err(Error { message, ..last })
    }

    /// One host, with libpq's sslmode negotiation. Every attempt on the host (a plain-text retry
    /// after TLS, or the reverse) shares the one connect timeout, as in libpq.
    fn connect_one(spec: &HostSpec, config: &ConnectConfig) -> Result<PgConn> {
        let deadline = Instant::now() + config.connect_timeout;
        let mode = config.tls.sslmode;
        // libpq never negotiates TLS over a Unix-domain socket, whatever sslmode says.
        if matches!(spec.host, Host::Unix(_)) {
            return PgConn::attempt(spec, config, deadline, Tls::Never).map_err(|f| f.error);
        }
        match mode {
            SslMode::Disable => PgConn::attempt(spec, config, deadline, Tls::Never).map_err(|f| f.error),
            // Plain text first; TLS only if the server rejects that (pg_hba.conf's hostssl), or
            // the client refuses in plain text what it would accept over TLS (a password).
            SslMode::Allow => match PgConn::attempt(spec, config, deadline, Tls::Never) {
                Err(f) if f.auth_rejected || f.needs_tls => PgConn::attempt(spec, config, deadline, Tls::Required)
                    .map_err(|f2| retried(f2.error, "with TLS (sslmode=allow)", &f.error)),
                other => other.map_err(|f| f.error),
            },
            // TLS when the server has it; plain text when it answers 'N', when the handshake
            // fails, or when the server rejects the TLS connection (pg_hba.conf's hostnossl).
            SslMode::Prefer => match PgConn::attempt(spec, config, deadline, Tls::Preferred) {
                Err(f) if f.tls_failed || (f.tls_used && f.auth_rejected) => {
                    PgConn::attempt(spec, config, deadline, Tls::Never)
                        .map_err(|f2| retried(f2.error, "without TLS (sslmode=prefer)", &f.error))
                }
                other => other.map_err(|f| f.error),
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                PgConn::attempt(spec, config, deadline, Tls::Required).map_err(|f| f.error)
            }
        }
    }

    /// One connection: socket, TLS negotiation as `tls` says, startup and authentication.
    fn attempt(spec: &HostSpec, config: &ConnectConfig, deadline: Instant, tls: Tls) -> Result<PgConn, Failure> {
        let stream = Stream::connect(spec, config, deadline).map_err(|e| {
            Failure::from(Error::operational(
                "08001",
                format!("could not connect to server at {spec}: {}", io_error_text(&e)),
            ))
        })?;
        if let (Host::Unix(_), Some(want)) = (&spec.host, &config.requirepeer) {
            check_peer(&stream, want).map_err(Failure::from)?;
        }
        let mut conn = PgConn {
            stream,
            read_buf: BytesMut::with_capacity(super::stream::READ_CHUNK),
            write_buf: BytesMut::with_capacity(1024),
            backend_pid: 0,
            secret_key: 0,
            parameters: HashMap::new(),
            tx_status: TxStatus::Idle,
            tx_failure: None,
            broken: false,
            session_changed: false,
            portal_open: false,
            copy: None,
            notifications: Default::default(),
            notifications_lost: Vec::new(),
            owner_pid: crate::process::current_pid(),
            host: spec.clone(),
            opened_at: Instant::now(),
            statement_timeout: None,
            reply_since: None,
            early_answers: 0,
            staged_writes: 0,
            serial: {
                static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            last_param_count: None,
            last_row_description: None,
            spare_rows: None,
            cache: None,
            replay: Default::default(),
            parse_completes: 0,
            exchange: super::Exchange::Simple,
            cancel_key: Arc::new(CancelKey { host: spec.clone(), backend_pid: 0, secret_key: 0, tls: None }),
            require_writable: matches!(
                config.target_session_attrs,
                TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
            ),
            notice_hook: None,
            guard: Default::default(),
        };
        let context = |e: Error| if e.server.is_some() { e } else { e.context(format!("connecting to {spec}")) };
        if tls != Tls::Never {
            conn.negotiate_tls(config, deadline, tls)?;
        }
        let deadline = Some(deadline);
        let tls_used = conn.stream.is_tls();
        conn.send_startup(config, deadline).map_err(|e| Failure { tls_used, ..Failure::from(context(e)) })?;
        if let Err(AuthFailure { error: e, needs_tls }) = conn.authenticate(config, deadline) {
            // libpq retries (allow, prefer) on any error the server sends during authentication,
            // except "the database system is starting up" (57P03), which moves on to the next host.
            let auth_rejected = e.server.is_some() && e.sqlstate() != Some("57P03");
            return Err(Failure { error: context(e), auth_rejected, tls_used, tls_failed: false, needs_tls });
        }
        conn.await_ready(deadline).map_err(|e| Failure { tls_used, ..Failure::from(context(e)) })?;
        conn.session_changed = false; // the start-up's ParameterStatus messages change nothing
        Ok(conn)
    }

    /// SSLRequest, then the TLS handshake on 'S' (with `sslnegotiation=direct`, the handshake at
    /// once, and the server must select ALPN `postgresql`). With `Tls::Preferred`, a server
    /// without TLS ('N') leaves the connection in plain text.
    fn negotiate_tls(&mut self, config: &ConnectConfig, deadline: Instant, want: Tls) -> Result<(), Failure> {
        let spec = self.host.clone();
        let mode = config.tls.sslmode.as_str();
        let io_error = |e: std::io::Error| {
            Error::operational(
                "08001",
                format!("SSL negotiation with {spec} failed (sslmode={mode}): {}", io_error_text(&e)),
            )
        };
        let tls_failure = |what: String| Failure {
            error: Error::operational("08001", format!("SSL connection to {spec} failed (sslmode={mode}): {what}")),
            auth_rejected: false,
            tls_used: true,
            tls_failed: true,
            needs_tls: false,
        };
        // sslnegotiation=direct: the handshake at once (PostgreSQL 17), no SSLRequest.
        let answer = if config.tls.direct {
            b'S'
        } else {
            self.stream.ssl_request(deadline).map_err(|e| Failure::from(io_error(e)))?
        };
        match answer {
            b'S' => {}
            b'N' if want == Tls::Preferred => return Ok(()),
            b'N' => {
                return Err(Failure::from(Error::operational(
                    "08001",
                    format!("the server at {spec} does not support SSL, but sslmode={mode} requires it"),
                )))
            }
            b'E' => {
                // A server that cannot start a backend answers with an error message.
                self.read_buf.extend_from_slice(b"E");
                return Err(Failure::from(match self.read_message(Some(deadline)) {
                    Ok(Message::ErrorResponse(body)) => self.fatal(body),
                    Ok(_) | Err(_) => self.protocol_violation("invalid error message in answer to the SSL request"),
                }));
            }
            other => {
                return Err(Failure::from(
                    self.protocol_violation(&format!("invalid answer to the SSL request: byte {other}")),
                ))
            }
        }
        let host = match &spec.host {
            Host::Tcp(name) => name.as_str(),
            Host::Unix(_) => unreachable!("no TLS over Unix-domain sockets"),
        };
        let setup = Arc::new(TlsSetup::new(&config.tls, host).map_err(tls_failure)?);
        let tls = setup.connection().map_err(tls_failure)?;
        self.stream.start_tls(tls, deadline).map_err(|e| match e {
            HandshakeError::Tls(e) => tls_failure(setup.describe(&e)),
            // A server before PostgreSQL 17 takes the ClientHello for a start-up packet of a
            // wrong length and closes the connection without a word.
            HandshakeError::Io(e) if setup.direct => tls_failure(format!(
                "{} (sslnegotiation=direct needs a PostgreSQL 17 or later server; use sslnegotiation=postgres \
                 for older ones)",
                io_error_text(&e)
            )),
            HandshakeError::Io(e) => tls_failure(io_error_text(&e)),
        })?;
        if let Some(refusal) = setup.alpn_refusal(self.stream.alpn_protocol()) {
            return Err(tls_failure(refusal));
        }
        if setup.certificate_required_but_not_requested() {
            return Err(tls_failure(
                "server accepted connection without a valid SSL certificate (sslcertmode=require: the server did \
                 not ask for a client certificate)"
                    .to_owned(),
            ));
        }
        self.cancel_key = Arc::new(CancelKey { host: spec.clone(), backend_pid: 0, secret_key: 0, tls: Some(setup) });
        Ok(())
    }

    fn send_startup(&mut self, config: &ConnectConfig, deadline: Option<Instant>) -> Result<()> {
        let mut params: Vec<(&str, &str)> =
            vec![("user", &config.user), ("database", &config.dbname), ("client_encoding", "UTF8")];
        if let Some(app) = &config.application_name {
            params.push(("application_name", app));
        }
        if let Some(opts) = &config.options {
            params.push(("options", opts));
        }
        // libpq's PGDATESTYLE, PGTZ, PGGEQO.
        params.extend(config.startup_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        frontend::startup_message(params.iter().copied(), &mut self.write_buf)
            .map_err(|_| Error::config("a user name, database name or option contains a NUL byte"))?;
        self.flush_writes(deadline)
    }

    /// After authentication: parameters and the cancel key, up to the first ReadyForQuery.
    fn await_ready(&mut self, deadline: Option<Instant>) -> Result<()> {
        loop {
            match self.read_message(deadline)? {
                Message::ParameterStatus(body) => self.handle_parameter_status(&body),
                Message::BackendKeyData(body) => {
                    self.backend_pid = body.process_id();
                    self.secret_key = body.secret_key();
                }
                Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => {
                    self.cancel_key = Arc::new(CancelKey {
                        host: self.host.clone(),
                        backend_pid: self.backend_pid,
                        secret_key: self.secret_key,
                        tls: self.cancel_key.tls.clone(),
                    });
                    return Ok(());
                }
                Message::ErrorResponse(body) => {
                    self.broken = true;
                    return Err(Error::from_server(server_fields(body.fields())));
                }
                _ => return Err(self.protocol_violation("unexpected message during startup")),
            }
        }
    }

    /// The authentication exchange, up to AuthenticationOk. What the client accepts is its own
    /// choice, not the server's: libpq's `require_auth` first, then `channel_binding`, then
    /// pgsess's rules for a TCP connection without TLS (unless `sslmode=disable` says plain text
    /// is acceptable), where a man in the middle can answer the SSL request with 'N' and then ask
    /// for anything: no cleartext password and no MD5 response unless `require_auth` names the
    /// method, and no AuthenticationOk before any exchange when a password is configured unless
    /// it names `none`. SCRAM's server-first message is checked before the client computes and
    /// sends its proof ([`check_server_first`]).
    fn authenticate(&mut self, config: &ConnectConfig, deadline: Option<Instant>) -> Result<(), AuthFailure> {
        let known = config.password_to_connect(&self.host)?;
        let host = self.host.to_string();
        let password = || -> Result<&[u8]> {
            known.as_deref().map(str::as_bytes).ok_or_else(|| {
                Error::operational(
                    "28P01",
                    format!(
                        "the server at {host} asked for a password for user \"{}\" but none was given \
                         (in the URI, PGPASSWORD or the password file)",
                        config.user
                    ),
                )
            })
        };
        let require = &config.require_auth;
        let plain_tcp =
            matches!(self.host.host, Host::Tcp(_)) && !self.stream.is_tls() && config.tls.sslmode != SslMode::Disable;
        let require_binding = config.tls.channel_binding == ChannelBinding::Require;
        let mut bound = false;
        // libpq's client_finished_auth: the client answered a password request, or verified the
        // server's SCRAM signature.
        let mut finished = false;
        loop {
            match self.read_message(deadline)? {
                Message::AuthenticationOk => {
                    if !finished {
                        self.allowed(require.check(AuthMethod::None))?;
                    }
                    if require_binding && !bound {
                        self.broken = true;
                        return Err(Error::operational(
                            "08001",
                            "channel binding is required (channel_binding=require), but the server \
                             authenticated the client without channel binding",
                        )
                        .into());
                    }
                    let configured = known.as_deref().is_some_and(|p| !p.is_empty());
                    if !finished && plain_tcp && configured && !require.lists(AuthMethod::None) {
                        return Err(self.refuse_in_plain_text(AuthMethod::None));
                    }
                    return Ok(());
                }
                Message::AuthenticationCleartextPassword => {
                    self.allowed(require.check(AuthMethod::Password))?;
                    if require_binding {
                        self.broken = true;
                        return Err(channel_binding_required(self.stream.is_tls()).into());
                    }
                    if plain_tcp && !require.lists(AuthMethod::Password) {
                        return Err(self.refuse_in_plain_text(AuthMethod::Password));
                    }
                    let pw = password()?;
                    frontend::password_message(pw, &mut self.write_buf)
                        .map_err(|_| Error::config("the password contains a NUL byte"))?;
                    self.flush_writes(deadline)?;
                    finished = true;
                }
                Message::AuthenticationMd5Password(body) => {
                    self.allowed(require.check(AuthMethod::Md5))?;
                    if require_binding {
                        self.broken = true;
                        return Err(channel_binding_required(self.stream.is_tls()).into());
                    }
                    if plain_tcp && !require.lists(AuthMethod::Md5) {
                        return Err(self.refuse_in_plain_text(AuthMethod::Md5));
                    }
                    let hash = md5_hash(config.user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(|_| Error::config("invalid password"))?;
                    self.flush_writes(deadline)?;
                    finished = true;
                }
                Message::AuthenticationSasl(body) => {
                    self.allowed(require.check(AuthMethod::ScramSha256))?;
                    let mut mechanisms = body.mechanisms();
                    let (mut scram, mut plus) = (false, false);
                    while let Some(m) =
                        mechanisms.next().map_err(|_| self.protocol_violation("bad SASL mechanism list"))?
                    {
                        scram |= m == sasl::SCRAM_SHA_256;
                        plus |= m == sasl::SCRAM_SHA_256_PLUS;
                    }
                    // libpq: SCRAM-SHA-256-PLUS (tls-server-end-point) over TLS when the server
                    // offers it; otherwise plain SCRAM telling the server whether we could have
                    // bound ('y'), which lets it detect a stripped PLUS offer.
                    let may_bind = self.stream.is_tls() && config.tls.channel_binding != ChannelBinding::Disable;
                    let end_point = if may_bind && plus {
                        self.stream.peer_certificate().and_then(super::tls::server_end_point)
                    } else {
                        None
                    };
                    let (mechanism, binding) = match end_point {
                        Some(hash) => (sasl::SCRAM_SHA_256_PLUS, sasl::ChannelBinding::tls_server_end_point(hash)),
                        None if config.tls.channel_binding == ChannelBinding::Require => {
                            self.broken = true;
                            return Err(channel_binding_required(self.stream.is_tls()).into());
                        }
                        None if !scram => {
                            self.broken = true;
                            return Err(Error::not_supported(
                                "the server offers no SASL mechanism pgsess supports (SCRAM-SHA-256)",
                            )
                            .into());
                        }
                        None if may_bind && !plus => (sasl::SCRAM_SHA_256, sasl::ChannelBinding::unrequested()),
                        None => (sasl::SCRAM_SHA_256, sasl::ChannelBinding::unsupported()),
                    };
                    bound = mechanism == sasl::SCRAM_SHA_256_PLUS;
                    let mut client = sasl::ScramSha256::new(password()?, binding);
                    frontend::sasl_initial_response(mechanism, client.message(), &mut self.write_buf)
                        .map_err(|_| self.protocol_violation("SASL message too long"))?;
                    self.flush_writes(deadline)?;
                    match self.read_message(deadline)? {
                        Message::AuthenticationSaslContinue(body) => {
                            // Refused here, the client has computed and sent nothing from the password.
                            match check_server_first(client.message(), body.data()) {
                                Ok(()) => {}
                                Err(ScramRefusal::Malformed(why)) => {
                                    return Err(self
                                        .protocol_violation(&format!("invalid SCRAM server-first message: {why}"))
                                        .into())
                                }
                                Err(ScramRefusal::Weak(why)) => {
                                    self.broken = true;
                                    return Err(Error::operational("08001", why).into());
                                }
                            }
                            client
                                .update(body.data())
                                .map_err(|_| self.protocol_violation("invalid SCRAM server-first message"))?
                        }
                        Message::ErrorResponse(body) => return Err(self.fatal(body).into()),
                        _ => {
                            return Err(self
                                .protocol_violation("unexpected message during SCRAM authentication")
                                .into())
                        }
                    }
                    frontend::sasl_response(client.message(), &mut self.write_buf)
                        .map_err(|_| self.protocol_violation("SASL message too long"))?;
                    self.flush_writes(deadline)?;
                    match self.read_message(deadline)? {
                        Message::AuthenticationSaslFinal(body) => client
                            .finish(body.data())
                            .map_err(|_| self.protocol_violation("the server's SCRAM signature did not verify"))?,
                        Message::ErrorResponse(body) => return Err(self.fatal(body).into()),
                        _ => {
                            return Err(self
                                .protocol_violation("unexpected message during SCRAM authentication")
                                .into())
                        }
                    }
                    finished = true;
                }
                Message::ErrorResponse(body) => return Err(self.fatal(body).into()),
                Message::AuthenticationGss => {
                    self.allowed(require.check(AuthMethod::Gss))?;
                    return Err(self.gss_unsupported());
                }
                Message::AuthenticationSspi => {
                    self.allowed(require.check(AuthMethod::Sspi))?;
                    return Err(self.gss_unsupported());
                }
                Message::AuthenticationKerberosV5 => return Err(self.gss_unsupported()),
                _ => return Err(self.protocol_violation("unexpected authentication request").into()),
            }
        }
    }

    fn gss_unsupported(&mut self) -> AuthFailure {
        self.broken = true;
        Error::not_supported("the server requires GSSAPI/SSPI authentication, which pgsess does not support").into()
    }

    /// `Ok` when `check` (a `require_auth` check) passed; else the connection is broken and the
    /// check's error is the attempt's.
    fn allowed(&mut self, check: Result<()>) -> Result<(), AuthFailure> {
        check.map_err(|e| {
            self.broken = true;
            AuthFailure::from(e)
        })
    }

    /// pgsess's refusal (beyond libpq) of `what` on a TCP connection without TLS, saying how to
    /// allow it. `sslmode=allow` retries such a refusal with TLS.
    fn refuse_in_plain_text(&mut self, what: AuthMethod) -> AuthFailure {
        self.broken = true;
        let why = match what {
            AuthMethod::Password => "pgsess does not send a password that anyone on the path could read",
            AuthMethod::Md5 => {
                "pgsess does not send an MD5 response that anyone on the path could record and crack offline"
            }
            _ => {
                "it accepted the connection without asking for the password that is configured, which is what a \
                  man in the middle posing as the server does"
            }
        };
        let allow = match what {
            AuthMethod::Password => {
                "require_auth=password in the URI (a list: name every method the server may use, \
                                     e.g. require_auth=password,scram-sha-256)"
            }
            AuthMethod::Md5 => {
                "require_auth=md5 in the URI (a list: name every method the server may use, e.g. \
                                require_auth=md5,scram-sha-256)"
            }
            _ => {
                "require_auth=none in the URI (a list: name every method the server may use, e.g. \
                  require_auth=none,scram-sha-256)"
            }
        };
        let error = Error::operational(
            "08001",
            format!(
                "{} over a TCP connection without TLS: {why} (with sslmode=prefer, a man in the middle only has to \
                 answer the SSL request with 'N'). Use TLS (sslmode=verify-full also authenticates the server), or \
                 allow this with {allow}, or with sslmode=disable if plain text is acceptable",
                what.requested()
            ),
        );
        AuthFailure { error, needs_tls: true }
    }

    fn fatal(&mut self, body: postgres_protocol::message::backend::ErrorResponseBody) -> Error {
        self.broken = true;
        Error::from_server(server_fields(body.fields()))
    }

    pub(crate) fn protocol_violation(&mut self, what: &str) -> Error {
        self.broken = true;
        Error::operational("08P01", format!("protocol violation from {}: {what}", self.host))
    }

    /// Whether this server matches `want` (libpq's target_session_attrs), using the parameters
    /// PostgreSQL 14+ reports at startup and asking the server when they are absent.
    fn check_target(&mut self, want: TargetSessionAttrs) -> Result<()> {
        let ok = match want {
            TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => true,
            TargetSessionAttrs::ReadWrite => !self.server_read_only()?,
            TargetSessionAttrs::ReadOnly => self.server_read_only()?,
            TargetSessionAttrs::Primary => !self.server_in_hot_standby()?,
            TargetSessionAttrs::Standby => self.server_in_hot_standby()?,
        };
        if ok {
            Ok(())
        } else {
            let what = match want {
                TargetSessionAttrs::ReadWrite => "the server is read-only",
                TargetSessionAttrs::ReadOnly => "the server is not read-only",
                TargetSessionAttrs::Primary => "the server is in hot standby mode",
                _ => "the server is not in hot standby mode",
            };
            Err(Error::operational("08001", format!("{what} (target_session_attrs)")))
        }
    }

    fn server_in_hot_standby(&mut self) -> Result<bool> {
        if let Some(v) = self.parameter("in_hot_standby") {
            return Ok(v == "on");
        }
        Ok(self.scalar("SELECT pg_catalog.pg_is_in_recovery()")? == "t")
    }

    fn server_read_only(&mut self) -> Result<bool> {
        if let (Some(a), Some(b)) = (self.parameter("in_hot_standby"), self.parameter("default_transaction_read_only"))
        {
            return Ok(a == "on" || b == "on");
        }
        Ok(self.scalar("SHOW transaction_read_only")? == "on")
    }

    fn scalar(&mut self, sql: &str) -> Result<String> {
        let set = self.simple_query(sql)?;
        Ok(set.value(0, 0).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
    }
}

/// An I/O failure while connecting, in words for an error message: a deadline that passed (the
/// socket's read timeout reports `WouldBlock`) is "timed out", anything else as the system says.
/// libpq's `requirepeer`: the server at the other end of a Unix-domain socket runs as `want`.
fn check_peer(stream: &Stream, want: &str) -> Result<()> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a `ucred` of `len` bytes on the socket descriptor we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::operational(
            "08001",
            format!("could not get peer credentials: {} (requirepeer)", std::io::Error::last_os_error()),
        ));
    }
    let actual = crate::config::user_name_of(cred.uid).unwrap_or_else(|| format!("uid {}", cred.uid));
    if actual != want {
        return Err(Error::operational(
            "08001",
            format!("requirepeer specifies \"{want}\", but actual peer user name is \"{actual}\""),
        ));
    }
    Ok(())
}

fn io_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_string(),
        _ => e.to_string(),
    }
}

/// The error of a retry, which also tells why the first attempt failed.
fn retried(e: Error, how: &str, first: &Error) -> Error {
    Error { message: format!("{} (retried {how} after: {})", e.message, first.message), ..e }
}

fn channel_binding_required(tls: bool) -> Error {
    let why = if tls { "the server did not offer SCRAM-SHA-256-PLUS" } else { "the connection does not use TLS" };
    Error::operational("08001", format!("channel binding is required (channel_binding=require), but {why}"))
}

/// Fisher-Yates with a seed from the clock and the process: load balancing needs spread, not secrecy.
fn shuffle<T>(items: &mut [T]) {
    let mut x = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        as u64)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        items.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &[u8] = b"n,,n=,r=clientNONCE";

    fn check(server: &str) -> Result<(), ScramRefusal> {
        check_server_first(CLIENT, server.as_bytes())
    }

    #[test]
    fn server_first_accepts_what_a_real_server_sends() {
        // 16 bytes of salt, PostgreSQL's default count; a bound client's header too.
        assert_eq!(check("r=clientNONCEserver,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096"), Ok(()));
        assert_eq!(check("r=clientNONCEs,s=AAAAAAAAAAA=,i=100000"), Ok(()), "8 bytes, the cap");
        let bound = b"p=tls-server-end-point,,n=,r=r=x";
        assert_eq!(check_server_first(bound, b"r=r=xY,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096"), Ok(()));
    }

    #[test]
    fn server_first_refuses_cheap_costly_and_malformed() {
        for (server, needle) in [
            ("r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=1", "iteration count is 1, below the 4096"),
            ("r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=0", "iteration count is 0, below the 4096"),
            ("r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4095", "iteration count is 4095"),
            ("r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=100001", "above the 100000"),
            ("r=clientNONCEs,s=,i=4096", "salt is 0 bytes"),
            ("r=clientNONCEs,s=AAAAAAA=,i=4096", "salt is 5 bytes"),
        ] {
            match check(server) {
                Err(ScramRefusal::Weak(m)) => assert!(m.contains(needle), "{server}: {m}"),
                other => panic!("{server}: {other:?}"),
            }
        }
        for server in [
            "r=clientNONCE,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096", // the server added nothing
            "r=otherNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096",
            "s=AAAAAAAAAAAAAAAAAAAAAA==,r=clientNONCEs,i=4096",
            "r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==",
            "r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=-1",
            "r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=99999999999",
            "m=ext,r=clientNONCEs,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096",
            "",
        ] {
            assert!(matches!(check(server), Err(ScramRefusal::Malformed(_))), "{server}: {:?}", check(server));
        }
        assert!(matches!(check_server_first(CLIENT, b"\xff"), Err(ScramRefusal::Malformed(_))));
    }
}
