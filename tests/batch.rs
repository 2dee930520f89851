//! Batches: many statements in one round trip, one outcome each.

mod support;

use pgsess::conn::BatchStatement;
use pgsess::{Code, Session, SessionOptions};

#[test]
fn a_thousand_inserts_in_one_round_trip_with_per_statement_errors() {
    let mut o = SessionOptions {
        db_url: Some(format!("{}?application_name=batch", support::shared().uri())),
        ..Default::default()
    };
    o.set_pool_max_size(1).unwrap();
    let s = Session::open("x", &o).unwrap();
    drop(s.query("DROP TABLE IF EXISTS batch_t; CREATE TABLE batch_t (id int PRIMARY KEY, v text)", &[]).unwrap());
    let mut statements: Vec<BatchStatement> = (1..=1000)
        .map(|i| BatchStatement {
            sql: "INSERT INTO batch_t VALUES ($1, $2) RETURNING id".into(),
            params: vec![
                Some(i.to_string().into_bytes()),
                if i % 10 == 0 { None } else { Some(format!("v{i}").into_bytes()) },
            ],
        })
        .collect();
    // Statement 500 repeats id 1: it alone fails; the statements after it still run.
    statements[499].params[0] = Some(b"1".to_vec());
    statements.push(BatchStatement { sql: "SELECT count(*), count(v) FROM batch_t".into(), params: vec![] });

    let outcomes = s.batch(&statements).unwrap();
    assert_eq!(outcomes.len(), 1001);
    for (i, o) in outcomes.iter().enumerate().take(1000) {
        match (i, o) {
            (499, Err(e)) => assert_eq!((e.code, e.sqlstate()), (Code::PGSESS_INTEGRITY_ERROR, Some("23505"))),
            (499, Ok(_)) => panic!("the duplicate key was accepted"),
            (_, Ok(r)) => assert_eq!(r.set.value(0, 0), Some((i + 1).to_string().as_bytes())),
            (_, Err(e)) => panic!("statement {i}: {e}"),
        }
    }
    let last = outcomes[1000].as_ref().unwrap();
    assert_eq!((last.set.value(0, 0), last.set.value(0, 1)), (Some(&b"999"[..]), Some(&b"900"[..])));
    // The connection is held until every result of the batch is gone.
    assert_eq!(s.pool_stats().in_use, 1);
    drop(outcomes);
    assert_eq!(s.pool_stats().in_use, 0);
    drop(s.query("DROP TABLE batch_t", &[]).unwrap());
}
