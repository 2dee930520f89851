//! The script of the `server` fuzz target: what a fake server answers, connection by connection
//! and exchange by exchange, and what the client runs against it. Shared by the target
//! (`fuzz_targets/server.rs`, which decodes its input) and by the seed writer
//! (`examples/server_seeds.rs`, which encodes the cases).
//!
//! # Format
//!
//! A flags byte, then instructions, each an opcode byte (taken modulo [`OPCODES`], so every byte
//! string decodes to a script) and its arguments (missing bytes read as 0, multi-byte numbers are
//! little-endian unless said otherwise):
//!
//! - the flags: bit 0 turns the statement cache on (capacity 4), bit 1 makes the pool 2
//!   connections (else 1), bit 2 runs the hostile part on a pinned session (the pool is then 2).
//! - `CONN` starts the script of the next connection the server accepts (the first one's is
//!   open from the start; at most [`MAX_CONNS`]; later connections are honest). Steps after it
//!   make that connection's answer to the StartupMessage.
//! - `REPLY` starts that connection's answer to its next exchange (at most [`MAX_REPLIES`]; a
//!   reply with no steps, and every exchange past the last reply, is answered honestly).
//! - the other server opcodes append a [`Step`] to the current reply; the client opcodes append
//!   an [`Op`] to what the client runs (at most [`MAX_OPS`]; none means one simple query).
//!
//! An exchange is what the client sends up to a Query, a Sync or a Flush (see the harness's
//! `next_exchange_or_flush`).

/// How many opcodes there are: an opcode byte is taken modulo this.
pub const OPCODES: u8 = 32;
pub const MAX_CONNS: usize = 3;
pub const MAX_REPLIES: usize = 24;
pub const MAX_STEPS: usize = 64;
pub const MAX_OPS: usize = 10;
/// The most any one reply may hold, so that one input cannot take minutes; enough for the
/// floods of the issue (a million notices, two million rows).
pub const MAX_REPLY_BYTES: usize = 40 << 20;
/// A ROWDESC or DATAROW has at most this many columns (its pattern repeats to fill them).
pub const MAX_COLUMNS: u16 = 2048;
/// The longest PAUSE, in milliseconds.
pub const MAX_PAUSE_MS: u8 = 30;

pub mod opcode {
    pub const CONN: u8 = 0;
    pub const REPLY: u8 = 1;
    pub const HONEST: u8 = 2;
    pub const MSG: u8 = 3;
    pub const RAWLEN: u8 = 4;
    pub const RAW: u8 = 5;
    pub const RFQ: u8 = 6;
    pub const CC: u8 = 7;
    pub const ROWDESC: u8 = 8;
    pub const DATAROW: u8 = 9;
    pub const ERROR: u8 = 10;
    pub const NOTICE: u8 = 11;
    pub const PARAMSTATUS: u8 = 12;
    pub const BKD: u8 = 13;
    pub const NOTIFY: u8 = 14;
    pub const SMALL: u8 = 15;
    pub const AUTH: u8 = 16;
    pub const READ: u8 = 17;
    pub const SCRAM_FIRST: u8 = 18;
    pub const REPEAT: u8 = 19;
    pub const PAUSE: u8 = 20;
    pub const SILENCE: u8 = 21;
    pub const CLOSE: u8 = 22;
    pub const FLIP: u8 = 23;
    pub const CUT: u8 = 24;
    pub const OP_QUERY: u8 = 25;
    pub const OP_STREAM: u8 = 26;
    pub const OP_BEGIN: u8 = 27;
    pub const OP_COMMIT: u8 = 28;
    pub const OP_ROLLBACK: u8 = 29;
    pub const OP_BATCH: u8 = 30;
    pub const OP_HOLD: u8 = 31;
}

/// The command tags CC chooses from (index `which % len`); 255 reads a raw tag instead.
pub const TAGS: [&str; 12] = [
    "SELECT 1",
    "SELECT 0",
    "COMMIT",
    "ROLLBACK",
    "BEGIN",
    "INSERT 0 99999999999999999999",
    "UPDATE 18446744073709551616",
    "DISCARD ALL",
    "SET",
    "SELECT -1",
    "",
    "COPY 3",
];

/// The ParameterStatus names and values PARAMSTATUS chooses from (index `which % len`); the
/// last one is a name made unique by the repetition number (a flood of distinct names).
pub const PARAMS: [(&str, &str); 12] = [
    ("client_encoding", "LATIN1"),
    ("client_encoding", "UTF8"),
    ("client_encoding", "SQL_ASCII"),
    ("DateStyle", "SQL, DMY"),
    ("TimeZone", "Europe/Paris"),
    ("in_hot_standby", "on"),
    ("default_transaction_read_only", "on"),
    ("standard_conforming_strings", "off"),
    ("integer_datetimes", "off"),
    ("server_encoding", "LATIN1"),
    ("application_name", "\u{7f}\u{0}x"),
    ("p", "v"),
];

/// Type oids ROWDESC chooses from.
pub const OIDS: [u32; 12] = [25, 23, 20, 21, 16, 17, 114, 3802, 1700, 1184, 1082, 0xdead_beef];

/// One piece of a server reply. Each builds messages (or acts) when the reply is sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The honest answer: to the StartupMessage, AuthenticationOk and what follows; to an
    /// exchange, what the honest server answers it.
    Honest,
    /// A message with a correct length.
    Msg {
        tag: u8,
        body: Vec<u8>,
    },
    /// A message whose length field says `len` (big-endian on the wire) whatever the body.
    RawLen {
        tag: u8,
        len: i32,
        body: Vec<u8>,
    },
    Raw(Vec<u8>),
    Ready(u8),
    /// CommandComplete with `TAGS[which]`, or `raw`.
    Complete {
        which: u8,
        raw: Option<Vec<u8>>,
    },
    /// RowDescription of `ncols` columns, the (oid choice, format code) pattern repeated.
    RowDesc {
        ncols: u16,
        pattern: Vec<(u8, i16)>,
    },
    /// DataRow with a field count of `ncols + delta` and `ncols` fields from the pattern.
    DataRow {
        ncols: u16,
        delta: i8,
        pattern: Vec<Field>,
    },
    /// ErrorResponse of a kind (see the target's `error_message`).
    Error(u8),
    /// NoticeResponse whose message is `size` bytes (`scale` 1: KiB).
    Notice {
        size: u16,
        scale: u8,
    },
    ParamStatus(u8),
    /// BackendKeyData: the connection's own pid (`forged` None) or another.
    KeyData {
        forged: Option<i32>,
    },
    Notify,
    /// One of a few bodiless or fixed messages (see the target's `small_message`).
    Small(u8),
    /// An Authentication request of a kind (see the target's `auth_message`).
    Auth(u8),
    /// Read one message from the client (a password, a SASL response). Startup only.
    Read,
    /// Read the SASLInitialResponse and answer with a server-first message of `iterations`
    /// and a salt of `salt_len` bytes. Startup only.
    ScramFirst {
        iterations: u32,
        salt_len: u8,
    },
    /// The step before, `count` more times (each with its repetition number).
    Repeat(u32),
    /// Send what is built so far, then wait this many milliseconds.
    Pause(u8),
    /// Send what is built so far, then answer nothing until a cancel request names this
    /// connection (then 57014 and ReadyForQuery), the client goes away, or a second passes.
    Silence,
    /// Send what is built so far and close the connection.
    Close,
    /// XOR the byte at `offset % len` of what is built so far with `xor`.
    Flip {
        offset: u16,
        xor: u8,
    },
    /// Drop the last `n` bytes built so far.
    Cut(u16),
}

/// One DataRow field of a pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Null,
    /// `len` bytes of text.
    Text(u16),
    /// Claims `len` bytes, has `have` (a field cut short inside the message).
    Short {
        len: u16,
        have: u8,
    },
    /// A length below -1.
    Negative,
    /// Bytes that are not UTF-8 (0xff 0xfe ...), `len` of them.
    Invalid(u16),
}

/// What the client runs in the hostile part.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A statement of a form (see the target's `run_query`).
    Query(u8),
    /// `query_stream` with `chunk_rows` (1 to 256), reading at most `chunks` chunks.
    Stream {
        chunk_rows: u16,
        chunks: u8,
    },
    Begin,
    Commit,
    Rollback,
    /// A pipelined batch of `n` (1 to 3) statements.
    Batch(u8),
    /// Keep the results of the op before alive to the end of the hostile part.
    Hold,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnScript {
    pub startup: Vec<Step>,
    pub replies: Vec<Vec<Step>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub statement_cache: bool,
    pub pool_two: bool,
    pub pinned: bool,
    pub conns: Vec<ConnScript>,
    pub ops: Vec<Op>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            statement_cache: false,
            pool_two: false,
            pinned: false,
            conns: vec![ConnScript::default()],
            ops: Vec::new(),
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let start = self.at.min(self.data.len());
        let end = self.at.saturating_add(n).min(self.data.len());
        self.at = self.at.saturating_add(n);
        self.data[start..end].to_vec()
    }
    /// A length (u16) and that many bytes.
    fn blob(&mut self) -> Vec<u8> {
        let n = self.u16() as usize;
        self.bytes(n)
    }
}

fn field(r: &mut Reader) -> Field {
    match r.u8() % 5 {
        0 => Field::Null,
        1 => Field::Text(r.u16()),
        2 => Field::Short { len: r.u16(), have: r.u8() },
        3 => Field::Negative,
        _ => Field::Invalid(r.u16()),
    }
}

/// A pattern of 1 to 4 entries.
fn pattern<T>(r: &mut Reader, mut one: impl FnMut(&mut Reader) -> T) -> Vec<T> {
    let n = 1 + r.u8() as usize % 4;
    (0..n).map(|_| one(r)).collect()
}

impl Script {
    /// Decode any bytes (see the module comment).
    pub fn decode(data: &[u8]) -> Script {
        use opcode::*;
        let mut r = Reader { data, at: 0 };
        let flags = r.u8();
        let mut s = Script {
            statement_cache: flags & 1 != 0,
            pool_two: flags & 2 != 0,
            pinned: flags & 4 != 0,
            ..Script::default()
        };
        // Where steps go: the current connection's startup (None) or reply.
        let mut reply: Option<usize> = None;
        while !r.done() {
            let op = r.u8() % OPCODES;
            let step = match op {
                CONN => {
                    if s.conns.len() < MAX_CONNS {
                        s.conns.push(ConnScript::default());
                        reply = None;
                    }
                    continue;
                }
                REPLY => {
                    let conn = s.conns.last_mut().expect("one connection at least");
                    if conn.replies.len() < MAX_REPLIES {
                        conn.replies.push(Vec::new());
                        reply = Some(conn.replies.len() - 1);
                    }
                    continue;
                }
                HONEST => Step::Honest,
                MSG => Step::Msg { tag: r.u8(), body: r.blob() },
                RAWLEN => {
                    let tag = r.u8();
                    let len = i32::from_be_bytes([r.u8(), r.u8(), r.u8(), r.u8()]);
                    Step::RawLen { tag, len, body: r.blob() }
                }
                RAW => Step::Raw(r.blob()),
                RFQ => Step::Ready(r.u8()),
                CC => {
                    let which = r.u8();
                    let raw = (which == 255).then(|| {
                        let n = r.u8() as usize;
                        r.bytes(n)
                    });
                    Step::Complete { which, raw }
                }
                ROWDESC => {
                    let ncols = r.u16() % (MAX_COLUMNS + 1);
                    Step::RowDesc { ncols, pattern: pattern(&mut r, |r| (r.u8(), r.u16() as i16)) }
                }
                DATAROW => {
                    let ncols = r.u16() % (MAX_COLUMNS + 1);
                    let delta = r.u8() as i8;
                    Step::DataRow { ncols, delta, pattern: pattern(&mut r, field) }
                }
                ERROR => Step::Error(r.u8()),
                NOTICE => Step::Notice { size: r.u16(), scale: r.u8() % 2 },
                PARAMSTATUS => Step::ParamStatus(r.u8()),
                BKD => {
                    let forged = r.u8() % 2 == 1;
                    let pid = r.u32() as i32;
                    Step::KeyData { forged: forged.then_some(pid) }
                }
                NOTIFY => Step::Notify,
                SMALL => Step::Small(r.u8()),
                AUTH => Step::Auth(r.u8()),
                READ => Step::Read,
                SCRAM_FIRST => Step::ScramFirst { iterations: r.u32(), salt_len: r.u8() },
                REPEAT => Step::Repeat(r.u32()),
                PAUSE => Step::Pause(r.u8() % (MAX_PAUSE_MS + 1)),
                SILENCE => Step::Silence,
                CLOSE => Step::Close,
                FLIP => Step::Flip { offset: r.u16(), xor: r.u8() },
                CUT => Step::Cut(r.u16()),
                _ => {
                    let client = match op {
                        OP_QUERY => Op::Query(r.u8()),
                        OP_STREAM => Op::Stream { chunk_rows: 1 + u16::from(r.u8()), chunks: r.u8() },
                        OP_BEGIN => Op::Begin,
                        OP_COMMIT => Op::Commit,
                        OP_ROLLBACK => Op::Rollback,
                        OP_BATCH => Op::Batch(1 + r.u8() % 3),
                        _ => Op::Hold,
                    };
                    if s.ops.len() < MAX_OPS {
                        s.ops.push(client);
                    }
                    continue;
                }
            };
            let conn = s.conns.last_mut().expect("one connection at least");
            let steps = match reply {
                None => &mut conn.startup,
                Some(i) => &mut conn.replies[i],
            };
            if steps.len() < MAX_STEPS {
                steps.push(step);
            }
        }
        if s.ops.is_empty() {
            s.ops.push(Op::Query(0));
        }
        s
    }

    /// The bytes that decode to this script (for the seed corpus). Limits are the decoder's:
    /// an encoded script past them decodes to less.
    pub fn encode(&self) -> Vec<u8> {
        use opcode::*;
        let mut out = vec![u8::from(self.statement_cache) | u8::from(self.pool_two) << 1 | u8::from(self.pinned) << 2];
        let u16le = |out: &mut Vec<u8>, v: u16| out.extend(v.to_le_bytes());
        let blob = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend((b.len() as u16).to_le_bytes());
            out.extend(b);
        };
        for (i, conn) in self.conns.iter().enumerate() {
            if i > 0 {
                out.push(CONN);
            }
            let replies = std::iter::once(&conn.startup).chain(&conn.replies);
            for (j, steps) in replies.enumerate() {
                if j > 0 {
                    out.push(REPLY);
                }
                for step in steps {
                    match step {
                        Step::Honest => out.push(HONEST),
                        Step::Msg { tag, body } => {
                            out.extend([MSG, *tag]);
                            blob(&mut out, body);
                        }
                        Step::RawLen { tag, len, body } => {
                            out.extend([RAWLEN, *tag]);
                            out.extend(len.to_be_bytes());
                            blob(&mut out, body);
                        }
                        Step::Raw(b) => {
                            out.push(RAW);
                            blob(&mut out, b);
                        }
                        Step::Ready(s) => out.extend([RFQ, *s]),
                        Step::Complete { which, raw } => {
                            out.extend([CC, *which]);
                            if let Some(raw) = raw {
                                out.push(raw.len() as u8);
                                out.extend(raw);
                            }
                        }
                        Step::RowDesc { ncols, pattern } => {
                            out.push(ROWDESC);
                            u16le(&mut out, *ncols);
                            out.push(pattern.len() as u8 - 1);
                            for (oid, format) in pattern {
                                out.push(*oid);
                                u16le(&mut out, *format as u16);
                            }
                        }
                        Step::DataRow { ncols, delta, pattern } => {
                            out.push(DATAROW);
                            u16le(&mut out, *ncols);
                            out.push(*delta as u8);
                            out.push(pattern.len() as u8 - 1);
                            for f in pattern {
                                match f {
                                    Field::Null => out.push(0),
                                    Field::Text(n) => {
                                        out.push(1);
                                        u16le(&mut out, *n);
                                    }
                                    Field::Short { len, have } => {
                                        out.push(2);
                                        u16le(&mut out, *len);
                                        out.push(*have);
                                    }
                                    Field::Negative => out.push(3),
                                    Field::Invalid(n) => {
                                        out.push(4);
                                        u16le(&mut out, *n);
                                    }
                                }
                            }
                        }
                        Step::Error(k) => out.extend([ERROR, *k]),
                        Step::Notice { size, scale } => {
                            out.push(NOTICE);
                            u16le(&mut out, *size);
                            out.push(*scale);
                        }
                        Step::ParamStatus(w) => out.extend([PARAMSTATUS, *w]),
                        Step::KeyData { forged } => {
                            out.extend([BKD, u8::from(forged.is_some())]);
                            out.extend((forged.unwrap_or(0) as u32).to_le_bytes());
                        }
                        Step::Notify => out.push(NOTIFY),
                        Step::Small(w) => out.extend([SMALL, *w]),
                        Step::Auth(k) => out.extend([AUTH, *k]),
                        Step::Read => out.push(READ),
                        Step::ScramFirst { iterations, salt_len } => {
                            out.push(SCRAM_FIRST);
                            out.extend(iterations.to_le_bytes());
                            out.push(*salt_len);
                        }
                        Step::Repeat(n) => {
                            out.push(REPEAT);
                            out.extend(n.to_le_bytes());
                        }
                        Step::Pause(ms) => out.extend([PAUSE, *ms]),
                        Step::Silence => out.push(SILENCE),
                        Step::Close => out.push(CLOSE),
                        Step::Flip { offset, xor } => {
                            out.push(FLIP);
                            u16le(&mut out, *offset);
                            out.push(*xor);
                        }
                        Step::Cut(n) => {
                            out.push(CUT);
                            u16le(&mut out, *n);
                        }
                    }
                }
            }
        }
        for op in &self.ops {
            match op {
                Op::Query(form) => out.extend([OP_QUERY, *form]),
                Op::Stream { chunk_rows, chunks } => out.extend([OP_STREAM, (chunk_rows - 1) as u8, *chunks]),
                Op::Begin => out.push(OP_BEGIN),
                Op::Commit => out.push(OP_COMMIT),
                Op::Rollback => out.push(OP_ROLLBACK),
                Op::Batch(n) => out.extend([OP_BATCH, n - 1]),
                Op::Hold => out.push(OP_HOLD),
            }
        }
        out
    }
}
