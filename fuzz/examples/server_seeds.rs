//! Writes the seed corpus of the `server` fuzz target: issue 17's cases as scripts
//! (`fuzz_targets/server_script.rs`), one file each, named after the case.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example server_seeds -- fuzz/corpus/server
//!
//! Each script is checked to decode back to itself before it is written. To see what an input
//! (a crash, a corpus entry) scripts:
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example server_seeds -- --show FILE...

#[path = "../fuzz_targets/server_script.rs"]
#[allow(dead_code)]
mod server_script;

use server_script::{ConnScript, Field, Op, Script, Step};

/// The honest reply's pieces for `SELECT '<value>'` on the simple protocol, with `status` in
/// its ReadyForQuery.
fn select_reply(value_len: u16, status: u8) -> Vec<Step> {
    vec![
        Step::RowDesc { ncols: 1, pattern: vec![(0, 0)] },
        Step::DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(value_len)] },
        Step::Complete { which: 0, raw: None },
        Step::Ready(status),
    ]
}

/// A script whose first connection answers its first exchange with `reply` (then honestly),
/// while the client runs `ops`.
fn first_reply(reply: Vec<Step>, ops: Vec<Op>) -> Script {
    Script { conns: vec![ConnScript { startup: vec![], replies: vec![reply] }], ops, ..Script::default() }
}

fn with(mut v: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    v.extend(more);
    v
}

fn seeds() -> Vec<(&'static str, Script)> {
    use Step::*;
    let two = vec![Op::Query(0), Op::Query(0)];
    let injected = select_reply(8, b'I');
    let mut out = vec![
        (
            "honest",
            Script {
                ops: vec![Op::Query(0), Op::Query(2), Op::Stream { chunk_rows: 1, chunks: 3 }],
                ..Script::default()
            },
        ),
        ("second-ready-for-query", first_reply(vec![Honest, Ready(b'I')], two.clone())),
        ("unrequested-reply", first_reply(with(vec![Honest], injected.clone()), two.clone())),
        (
            "unrequested-reply-pinned",
            Script { pinned: true, ..first_reply(with(vec![Honest], injected.clone()), two.clone()) },
        ),
        (
            "unrequested-reply-in-transaction",
            first_reply(
                vec![Honest, Complete { which: 2, raw: None }, Ready(b'I')],
                vec![Op::Begin, Op::Query(0), Op::Commit],
            ),
        ),
        (
            "unrequested-reply-extended",
            first_reply(with(vec![Honest], injected.clone()), vec![Op::Query(2), Op::Query(2)]),
        ),
        ("length-minus-one", first_reply(vec![RawLen { tag: b'D', len: -1, body: vec![0, 1] }], two.clone())),
        (
            "length-2-31-minus-1",
            first_reply(vec![RawLen { tag: b'T', len: i32::MAX, body: vec![0, 1, b'x'] }], two.clone()),
        ),
        ("length-under-four", first_reply(vec![RawLen { tag: b'C', len: 2, body: vec![] }, Honest], two.clone())),
        ("partial-message-while-idle", first_reply(vec![Honest, Raw(b"T\0\0".to_vec())], two.clone())),
        ("partial-message-then-silence", first_reply(vec![Raw(b"T\0\0\0\x20\0\x01c".to_vec()), Silence], two.clone())),
        (
            "notices-flood",
            first_reply(vec![Notice { size: 20, scale: 0 }, Repeat(100_000), Honest], vec![Op::Query(0)]),
        ),
        ("big-notices", first_reply(vec![Notice { size: 1024, scale: 1 }, Repeat(8), Honest], vec![Op::Query(0)])),
        ("parameter-status-flood", first_reply(vec![ParamStatus(11), Repeat(100_000), Honest], vec![Op::Query(0)])),
        (
            "ignored-row-limit",
            Script {
                conns: vec![ConnScript {
                    startup: vec![],
                    replies: vec![vec![
                        Small(0),
                        Small(1),
                        RowDesc { ncols: 1, pattern: vec![(0, 0)] },
                        DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(2)] },
                        Repeat(100_000),
                        Complete { which: 0, raw: None },
                    ]],
                }],
                ops: vec![Op::Stream { chunk_rows: 100, chunks: 5 }],
                ..Script::default()
            },
        ),
        ("unknown-ready-status", first_reply(select_reply(3, b'X'), two.clone())),
        (
            "unknown-ready-status-in-transaction",
            first_reply(vec![Complete { which: 4, raw: None }, Ready(b'?')], vec![Op::Begin, Op::Query(0), Op::Commit]),
        ),
        ("client-encoding-in-reply", first_reply(with(vec![ParamStatus(0)], vec![Honest]), two.clone())),
        ("client-encoding-while-idle", first_reply(vec![Honest, ParamStatus(0)], two.clone())),
        ("error-without-sqlstate", first_reply(vec![Error(1), Ready(b'I')], two.clone())),
        ("error-without-fields", first_reply(vec![Error(3), Ready(b'I')], two.clone())),
        ("huge-row-count", first_reply(vec![Complete { which: 5, raw: None }, Ready(b'I')], two.clone())),
        (
            "second-command-complete",
            first_reply(
                vec![
                    RowDesc { ncols: 1, pattern: vec![(0, 0)] },
                    DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(3)] },
                    Complete { which: 0, raw: None },
                    Complete { which: 1, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "data-row-after-command-complete",
            first_reply(
                vec![
                    RowDesc { ncols: 1, pattern: vec![(0, 0)] },
                    DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(3)] },
                    Complete { which: 0, raw: None },
                    DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(8)] },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "wrong-format-code",
            first_reply(
                vec![
                    RowDesc { ncols: 1, pattern: vec![(1, 1)] },
                    DataRow { ncols: 1, delta: 0, pattern: vec![Field::Text(2)] },
                    Complete { which: 0, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "short-field",
            first_reply(
                vec![
                    RowDesc { ncols: 2, pattern: vec![(0, 0)] },
                    DataRow { ncols: 2, delta: 0, pattern: vec![Field::Short { len: 10, have: 3 }] },
                    Complete { which: 0, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "field-count-mismatch",
            first_reply(
                vec![
                    RowDesc { ncols: 1, pattern: vec![(0, 0)] },
                    DataRow { ncols: 1, delta: 1, pattern: vec![Field::Text(2)] },
                    Complete { which: 0, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "invalid-utf8-and-json",
            first_reply(
                vec![
                    RowDesc { ncols: 2, pattern: vec![(0, 0), (6, 0)] },
                    DataRow { ncols: 2, delta: 0, pattern: vec![Field::Invalid(7)] },
                    Complete { which: 0, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        (
            "many-columns",
            first_reply(
                vec![
                    RowDesc { ncols: 2048, pattern: vec![(0, 0)] },
                    DataRow { ncols: 2048, delta: 0, pattern: vec![Field::Null, Field::Text(1)] },
                    Complete { which: 0, raw: None },
                    Ready(b'I'),
                ],
                two.clone(),
            ),
        ),
        ("fatal-mid-reply", first_reply(vec![Error(2), Close], two.clone())),
        ("silent-server-honours-cancel", first_reply(vec![Silence], two.clone())),
        (
            "slow-server-in-pieces",
            first_reply(vec![Honest, Cut(6), Pause(20), Raw(b"Z\0\0\0\x05I".to_vec())], two.clone()),
        ),
        ("copy-in-unasked", first_reply(vec![Small(7)], two.clone())),
        ("portal-suspended-unasked", first_reply(vec![Small(4), Ready(b'I')], two.clone())),
        ("batch-with-extra-reply", first_reply(with(vec![Honest], injected.clone()), vec![Op::Batch(2), Op::Query(0)])),
        ("hold-with-pool-of-one", Script { ops: vec![Op::Query(0), Op::Hold, Op::Query(2)], ..Script::default() }),
    ];
    // Startup: what a man in the middle answering `N` to SSLRequest might ask for.
    let startup = |steps: Vec<Step>| Script {
        conns: vec![ConnScript { startup: steps, replies: vec![] }],
        ops: vec![Op::Query(0)],
        ..Script::default()
    };
    out.extend([
        ("startup-cleartext-password", startup(vec![Auth(1), Read, Honest])),
        ("startup-md5-password", startup(vec![Auth(2), Read, Honest])),
        (
            "startup-scram-one-iteration",
            startup(vec![Auth(3), ScramFirst { iterations: 1, salt_len: 16 }, Read, Auth(7)]),
        ),
        (
            "startup-scram-empty-salt",
            startup(vec![Auth(3), ScramFirst { iterations: 4096, salt_len: 0 }, Read, Auth(7)]),
        ),
        (
            "startup-scram-bad-final",
            startup(vec![Auth(3), ScramFirst { iterations: 4096, salt_len: 16 }, Read, Auth(7), Honest]),
        ),
        ("startup-unknown-auth", startup(vec![Auth(11)])),
        ("startup-silent", startup(vec![Silence])),
        ("startup-extra-ready", startup(vec![Honest, Ready(b'I')])),
        ("startup-client-encoding", startup(vec![Auth(0), ParamStatus(0), KeyData { forged: None }, Ready(b'I')])),
        ("startup-error-then-close", startup(vec![Error(2), Close])),
        (
            "startup-hostile-then-hostile-second-connection",
            Script {
                conns: vec![
                    ConnScript { startup: vec![], replies: vec![vec![Error(2), Close]] },
                    ConnScript {
                        startup: vec![Honest, Notice { size: 10, scale: 0 }],
                        replies: vec![vec![Honest, Ready(b'T')]],
                    },
                ],
                ops: vec![Op::Query(0), Op::Query(0), Op::Query(2)],
                pool_two: true,
                ..Script::default()
            },
        ),
    ]);
    out.push((
        "statement-cache-lost-statement",
        Script {
            statement_cache: true,
            conns: vec![ConnScript { startup: vec![], replies: vec![vec![], vec![Error(11), Ready(b'I')]] }],
            ops: vec![Op::Query(2), Op::Query(2), Op::Query(2)],
            ..Script::default()
        },
    ));
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--show") {
        for file in &args[1..] {
            let bytes = std::fs::read(file).expect("read an input");
            println!("{file}: {:#?}", Script::decode(&bytes));
        }
        return;
    }
    let dir = args.first().cloned().unwrap_or_else(|| "fuzz/corpus/server".to_owned());
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for (name, script) in seeds() {
        let bytes = script.encode();
        let back = Script::decode(&bytes);
        assert_eq!(back, script, "seed {name} does not decode to itself");
        std::fs::write(format!("{dir}/{name}"), &bytes).expect("write a seed");
        println!("{name}: {} bytes", bytes.len());
    }
}
