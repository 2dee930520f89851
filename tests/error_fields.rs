//! Every field of a server's error report (`ServerFields::field`, `pgsess_error_field` in C)
//! equals what an independent client (the `postgres` crate) parses from the same error of the
//! same statement on the same server; and the notice hook (`SessionOptions::set_notice_hook`)
//! gets every notice, in order, on the thread that ran the statement. tests/c/error_fields.c
//! compares the same with libpq, byte for byte.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use pgsess::config::NoticeHook;
use pgsess::error::ServerFields;
use pgsess::{Session, SessionOptions};

/// Every field code, in protocol order.
const CODES: &[u8] = b"SVCMDHPpqWstcdnFLR";

fn options() -> SessionOptions {
    SessionOptions { db_url: Some(support::shared().uri()), ..Default::default() }
}

fn session() -> Session {
    Session::open("x", &options()).unwrap()
}

/// The fields as the `postgres` crate parsed them, by protocol code.
fn reference(e: &postgres::error::DbError) -> Vec<(u8, Option<String>)> {
    use postgres::error::ErrorPosition;
    let (position, internal_position, internal_query) = match e.position() {
        Some(ErrorPosition::Original(p)) => (Some(p.to_string()), None, None),
        Some(ErrorPosition::Internal { position, query }) => (None, Some(position.to_string()), Some(query.clone())),
        None => (None, None, None),
    };
    let s = |v: Option<&str>| v.map(str::to_owned);
    vec![
        (b'S', Some(e.severity().to_owned())),
        (b'V', e.parsed_severity().map(|v| v.to_string())),
        (b'C', Some(e.code().code().to_owned())),
        (b'M', Some(e.message().to_owned())),
        (b'D', s(e.detail())),
        (b'H', s(e.hint())),
        (b'P', position),
        (b'p', internal_position),
        (b'q', internal_query),
        (b'W', s(e.where_())),
        (b's', s(e.schema())),
        (b't', s(e.table())),
        (b'c', s(e.column())),
        (b'd', s(e.datatype())),
        (b'n', s(e.constraint())),
        (b'F', s(e.file())),
        (b'L', e.line().map(|l| l.to_string())),
        (b'R', s(e.routine())),
    ]
}

/// Run `sql` (simple protocol) on pgsess and on the reference client; assert every field
/// agrees and each code of `present` is there. Returns pgsess's fields.
fn same_error(s: &Session, control: &mut postgres::Client, sql: &str, present: &[u8]) -> ServerFields {
    let mine = s.query(sql, &[]).err().unwrap_or_else(|| panic!("{sql} succeeds on pgsess"));
    let theirs = control.batch_execute(sql).err().unwrap_or_else(|| panic!("{sql} succeeds on postgres"));
    let theirs = theirs.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {theirs}"));
    let fields = mine.server.as_deref().unwrap_or_else(|| panic!("{sql}: no server fields: {mine}")).clone();
    let reference = reference(theirs);
    assert_eq!(reference.iter().map(|(c, _)| *c).collect::<Vec<_>>(), CODES, "every code is compared");
    assert_eq!(ServerFields::FIELD_CODES, CODES);
    for (code, want) in reference {
        assert_eq!(fields.field(code), want.as_deref(), "{sql}: field '{}'", code as char);
    }
    for &code in present {
        assert!(fields.field(code).is_some(), "{sql}: field '{}' missing", code as char);
    }
    assert_eq!(mine.sqlstate(), fields.field(b'C'));
    assert_eq!(mine.message, fields.message);
    assert_eq!(mine.detail(), fields.field(b'D'));
    assert_eq!(mine.hint(), fields.field(b'H'));
    fields
}

#[test]
fn every_field_equals_the_reference_clients() {
    let s = session();
    let mut control = support::shared().control();
    let (parent, child, ranges) = ("ef_parent", "ef_child", "ef_ranges");
    s.query(
        &format!(
            "CREATE TABLE {parent} (id int PRIMARY KEY, n int NOT NULL CONSTRAINT n_small CHECK (n < 100));
             CREATE TABLE {child} (id int REFERENCES {parent} (id));
             CREATE TABLE {ranges} (r int4range, EXCLUDE USING gist (r WITH &&));
             INSERT INTO {parent} VALUES (1, 1); INSERT INTO {ranges} VALUES ('[1,5)')"
        ),
        &[],
    )
    .unwrap();

    let f = same_error(&s, &mut control, &format!("INSERT INTO {parent} VALUES (1, 1)"), b"SVCMDstnFLR");
    assert_eq!((f.field(b'C'), f.field(b'n'), f.field(b't')), (Some("23505"), Some("ef_parent_pkey"), Some(parent)));
    assert_eq!(f.field(b'D'), Some("Key (id)=(1) already exists."));
    let f = same_error(&s, &mut control, &format!("INSERT INTO {child} VALUES (2)"), b"SVCMDstnFLR");
    assert_eq!((f.field(b'C'), f.field(b'n')), (Some("23503"), Some("ef_child_id_fkey")));
    let f = same_error(&s, &mut control, &format!("INSERT INTO {parent} VALUES (3, NULL)"), b"SVCMDstcFLR");
    assert_eq!((f.field(b'C'), f.field(b'c')), (Some("23502"), Some("n")));
    let f = same_error(&s, &mut control, &format!("INSERT INTO {parent} VALUES (3, 200)"), b"SVCMDstnFLR");
    assert_eq!((f.field(b'C'), f.field(b'n')), (Some("23514"), Some("n_small")));
    let f = same_error(&s, &mut control, &format!("INSERT INTO {ranges} VALUES ('[2,3)')"), b"SVCMDstnFLR");
    assert_eq!((f.field(b'C'), f.field(b'n')), (Some("23P01"), Some("ef_ranges_r_excl")));
    let sql = format!("SELECT 1 FROM {parent} WHERE id = = 1");
    let f = same_error(&s, &mut control, &sql, b"SVCMPFLR");
    let second_equals = (sql.find("= =").unwrap() + 3).to_string(); // 1-based, in characters
    assert_eq!((f.field(b'C'), f.field(b'P')), (Some("42601"), Some(second_equals.as_str())));
    let f = same_error(&s, &mut control, "SELECT 'abc'::integer", b"SVCMPFLR");
    assert_eq!(f.field(b'M'), Some("invalid input syntax for type integer: \"abc\""));
    assert_eq!(f.field(b'P'), Some("8"));
    let f = same_error(&s, &mut control, "DO $$ BEGIN PERFORM 1/0; END $$", b"SVCMWFLR");
    assert_eq!(
        f.field(b'W'),
        Some("SQL statement \"SELECT 1/0\"\nPL/pgSQL function inline_code_block line 1 at PERFORM")
    );
    let f = same_error(&s, &mut control, "DO $$ BEGIN EXECUTE 'SELEC 1'; END $$", b"SVCMpqWFLR");
    assert_eq!((f.field(b'q'), f.field(b'p'), f.field(b'P')), (Some("SELEC 1"), Some("1"), None));
    same_error(&s, &mut control, &format!("DO $$ BEGIN EXECUTE 'SELECT nosuch FROM {parent}'; END $$"), b"SVCMpqWFLR");
    let f = same_error(
        &s,
        &mut control,
        "DO $$ BEGIN RAISE EXCEPTION 'custom %', 42 USING ERRCODE = 'P0042', SCHEMA = 'sch', TABLE = 'tbl', \
         COLUMN = 'col', DATATYPE = 'typ', CONSTRAINT = 'con', DETAIL = 'det', HINT = 'hin'; END $$",
        b"SVCMDHWstcdnFLR",
    );
    let got: Vec<_> = b"CMDHstcdn".iter().map(|&c| f.field(c).unwrap()).collect();
    assert_eq!(got, ["P0042", "custom 42", "det", "hin", "sch", "tbl", "col", "typ", "con"]);
    // Sent empty: empty, not absent (libpq gives "" too).
    let f =
        same_error(&s, &mut control, "DO $$ BEGIN RAISE EXCEPTION USING MESSAGE = '', DETAIL = ''; END $$", b"SVCMD");
    assert_eq!((f.field(b'M'), f.field(b'D'), f.field(b'H')), (Some(""), Some(""), None));
    assert_eq!(f.field(b'S'), Some("ERROR"));
    assert_eq!(f.field(b'x'), None, "an unknown code");

    // Through the extended protocol (a parameter, cast by the statement): the same fields as the
    // reference's prepared statement gives.
    let mine = s.query("SELECT $1::text::int", &[Some(b"abc")]).unwrap_err();
    let theirs = control.query("SELECT $1::text::int", &[&"abc"]).unwrap_err();
    let theirs = theirs.as_db_error().unwrap();
    let fields = mine.server.as_deref().unwrap();
    for (code, want) in reference(theirs) {
        assert_eq!(fields.field(code), want.as_deref(), "parameter: field '{}'", code as char);
    }
    assert_eq!(fields.field(b'C'), Some("22P02"));

    s.query(&format!("DROP TABLE {child}, {parent}, {ranges}"), &[]).unwrap();
}

#[test]
fn client_errors_have_no_server_fields_and_a_refused_connection_has_the_servers() {
    // Nothing listens: the client's error, no fields (as libpq's own errors have none).
    let o =
        SessionOptions { db_url: Some("postgresql://u@127.0.0.1:1/d?connect_timeout=2".into()), ..Default::default() };
    let e = Session::open("x", &o).err().unwrap();
    assert!(e.server.is_none(), "{e}");
    assert_eq!(e.sqlstate(), Some("08001"));
    // The server refuses the database: its report, field by field (libpq only has the text).
    let uri = support::shared().uri();
    let uri = format!("{}/ef_no_such_db", &uri[..uri.rfind('/').unwrap()]);
    let e = Session::open("x", &SessionOptions { db_url: Some(uri), ..Default::default() }).err().unwrap();
    let f = e.server.as_deref().unwrap_or_else(|| panic!("no fields: {e}"));
    assert_eq!((f.field(b'V'), f.field(b'C')), (Some("FATAL"), Some("3D000")));
    assert_eq!(f.field(b'M'), Some("database \"ef_no_such_db\" does not exist"));
    assert!(f.field(b'R').is_some());

    // A pinned session's connection ended by the server while idle: lost, a client error
    // without fields, as libpq's PQexec gives on such a connection.
    let pinned = session().pin().unwrap();
    pinned.query("SELECT 1", &[]).unwrap();
    let pid = pinned.backend_pid();
    support::shared().control().execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let e = pinned.query("SELECT 1", &[]).unwrap_err();
    assert!(e.server.is_none(), "{e}");
    assert_eq!(e.sqlstate(), Some("08006"));
}

/// What a test's hook saw: each notice's fields and the thread it ran on.
#[derive(Default)]
struct Seen(Mutex<Vec<(ServerFields, ThreadId)>>);

impl Seen {
    fn take(&self) -> Vec<(ServerFields, ThreadId)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A hook recording into a new `Seen`, with an identity of its own.
fn recording_hook() -> (NoticeHook, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let identity = (Arc::as_ptr(&seen) as usize, 0);
    let into = seen.clone();
    let hook = NoticeHook::new(identity, move |n: &ServerFields| {
        into.0.lock().unwrap().push((n.clone(), std::thread::current().id()));
    });
    (hook, seen)
}

fn session_with(hook: Option<NoticeHook>) -> Session {
    let mut o = options();
    o.set_notice_hook(hook);
    Session::open("x", &o).unwrap()
}

const NOTICE_SQL: &str = "DO $$ BEGIN RAISE NOTICE 'first %', 1; \
                          RAISE WARNING 'second' USING DETAIL = 'the detail', HINT = 'the hint'; END $$";

#[test]
fn the_hook_gets_every_notice_in_order_on_the_calling_thread() {
    let (hook, seen) = recording_hook();
    let s = session_with(Some(hook));
    let results = s.query(NOTICE_SQL, &[]).unwrap();
    let got = seen.take();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(_, t)| *t == std::thread::current().id()));
    let (first, second) = (&got[0].0, &got[1].0);
    assert_eq!(
        (first.field(b'V'), first.field(b'C'), first.field(b'M')),
        (Some("NOTICE"), Some("00000"), Some("first 1"))
    );
    assert_eq!(first.field(b'D'), None);
    assert!(first.field(b'W').is_some_and(|w| w.contains("inline_code_block")));
    assert_eq!(
        (second.field(b'V'), second.field(b'C'), second.field(b'M'), second.field(b'D'), second.field(b'H')),
        (Some("WARNING"), Some("01000"), Some("second"), Some("the detail"), Some("the hint"))
    );
    // Still kept with the results, as before.
    assert_eq!(results.set.notices.len(), 2);
    assert_eq!(results.set.notices[0].to_str().unwrap(), "NOTICE:  first 1\n");
    drop(results);

    // The same notices as the reference client's notice callback gets.
    let theirs = Arc::new(Mutex::new(Vec::new()));
    let into = theirs.clone();
    let c = support::shared();
    let mut control = postgres::Config::new()
        .host_path(c.socket_dir())
        .port(c.port())
        .user("postgres")
        .dbname("pgsess")
        .notice_callback(move |n| into.lock().unwrap().push(n))
        .connect(postgres::NoTls)
        .unwrap();
    control.batch_execute(NOTICE_SQL).unwrap();
    let theirs = theirs.lock().unwrap();
    assert_eq!(theirs.len(), 2);
    for ((mine, _), theirs) in got.iter().zip(theirs.iter()) {
        for (code, want) in reference(theirs) {
            assert_eq!(mine.field(code), want.as_deref(), "notice field '{}'", code as char);
        }
    }

    // Another thread's statement: on that thread.
    let s2 = s.clone();
    let t = std::thread::spawn(move || {
        s2.query("DO $$ BEGIN RAISE NOTICE 'from a thread'; END $$", &[]).unwrap();
        std::thread::current().id()
    });
    let tid = t.join().unwrap();
    let got = seen.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, tid);

    // Raised before an error: delivered, and the statement fails as before.
    let e = s.query("DO $$ BEGIN RAISE INFO 'before'; RAISE EXCEPTION 'boom'; END $$", &[]).unwrap_err();
    assert_eq!(e.message, "boom");
    let got = seen.take();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.field(b'V'), got[0].0.field(b'M')), (Some("INFO"), Some("before")));

    // In a transaction, with LOG and DEBUG let through.
    let tx = s.begin().unwrap();
    tx.query("SET LOCAL client_min_messages = debug1", &[]).unwrap();
    tx.query("DO $$ BEGIN RAISE LOG 'a log'; RAISE DEBUG 'a debug'; END $$", &[]).unwrap();
    tx.commit().unwrap();
    let got = seen.take();
    let find = |m: &str| got.iter().position(|(n, _)| n.field(b'M') == Some(m)).unwrap_or_else(|| panic!("{m}"));
    assert!(find("a log") < find("a debug"));
    assert_eq!(got[find("a log")].0.field(b'V'), Some("LOG"));
    assert_eq!(got[find("a debug")].0.field(b'V'), Some("DEBUG"));
}

#[test]
fn notices_of_pinned_sessions_copies_batches_and_requests_are_delivered() {
    let (hook, seen) = recording_hook();
    let s = session_with(Some(hook));
    let pinned = s.pin().unwrap();
    pinned.query("DO $$ BEGIN RAISE NOTICE 'pinned'; END $$", &[]).unwrap();
    assert_eq!(seen.take().len(), 1);
    drop(pinned);

    // A COPY whose rows fire a trigger that raises a notice for each.
    s.query(
        "CREATE TABLE ef_copied (n int);
         CREATE FUNCTION ef_copied_notice() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE NOTICE 'row %', NEW.n; RETURN NEW; END $$;
         CREATE TRIGGER ef_copied_notice BEFORE INSERT ON ef_copied FOR EACH ROW EXECUTE FUNCTION ef_copied_notice()",
        &[],
    )
    .unwrap();
    let mut copy = s.copy_in("COPY ef_copied FROM STDIN").unwrap();
    copy.write(b"1\n2\n3\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 3);
    drop(copy);
    let messages: Vec<_> = seen.take().into_iter().map(|(n, _)| n.message).collect();
    assert_eq!(messages, ["row 1", "row 2", "row 3"]);
    s.query("DROP TABLE ef_copied; DROP FUNCTION ef_copied_notice()", &[]).unwrap();

    // An asynchronous request: on the worker thread that reads its reply, before its completion
    // (which runs on the thread that waits for it).
    let (tx, rx) = std::sync::mpsc::channel();
    let before = seen.clone();
    let pending = s
        .query_async(
            "DO $$ BEGIN RAISE NOTICE 'async'; END $$".into(),
            vec![],
            Box::new(move |r| {
                tx.send((r.is_ok(), before.0.lock().unwrap().len(), std::thread::current().id())).unwrap();
            }),
        )
        .unwrap();
    assert!(pending.wait(Some(Duration::from_secs(10))));
    let (ok, seen_before_completion, completion_thread) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(ok);
    assert_eq!(seen_before_completion, 1);
    let got = seen.take();
    assert_eq!(got.len(), 1);
    assert_ne!(got[0].1, completion_thread, "read by the worker, not where the completion ran");
}

#[test]
fn the_hook_is_part_of_the_pool_key() {
    let plain = session_with(None);
    let (a, seen_a) = recording_hook();
    let (b, seen_b) = recording_hook();
    let sa = session_with(Some(a));
    let sa_again = session_with(Some(a));
    let sb = session_with(Some(b));
    assert_eq!(sa.pool_id(), sa_again.pool_id());
    assert_ne!(sa.pool_id(), plain.pool_id());
    assert_ne!(sa.pool_id(), sb.pool_id());
    assert_ne!(sb.pool_id(), plain.pool_id());
    // A hook made again with A's identity is A (the first closure made with it is kept).
    let a_again = NoticeHook::new(a.identity(), |_: &ServerFields| panic!("never called"));
    let sa_third = session_with(Some(a_again));
    assert_eq!(sa_third.pool_id(), sa.pool_id());
    sa_third.query("DO $$ BEGIN RAISE NOTICE 'to a'; END $$", &[]).unwrap();
    sb.query("DO $$ BEGIN RAISE NOTICE 'to b'; END $$", &[]).unwrap();
    plain.query("DO $$ BEGIN RAISE NOTICE 'to nobody'; END $$", &[]).unwrap();
    let names = |seen: &Seen| seen.take().into_iter().map(|(n, _)| n.message).collect::<Vec<_>>();
    assert_eq!(names(&seen_a), ["to a"]);
    assert_eq!(names(&seen_b), ["to b"]);
    assert_eq!(plain.notice_count(), 1);
}

#[test]
fn a_panicking_hook_loses_its_notice_and_nothing_else() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let hook = NoticeHook::new((&CALLS as *const AtomicUsize as usize, 0), |_: &ServerFields| {
        CALLS.fetch_add(1, Ordering::Relaxed);
        panic!("the hook panics");
    });
    let s = session_with(Some(hook));
    let r = s.query("DO $$ BEGIN RAISE NOTICE 'one'; RAISE NOTICE 'two'; END $$; SELECT 7", &[]).unwrap();
    assert_eq!(CALLS.load(Ordering::Relaxed), 2);
    assert_eq!(r.set.notices.len(), 2);
    drop(r);
    assert_eq!(s.query("SELECT 1", &[]).unwrap().set.command_tag.as_c_str().to_str().unwrap(), "SELECT 1");
}
