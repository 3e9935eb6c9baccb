//! `tally keys`, `tally billing …`, `tally usage` and `tally check` on a
//! data directory: the registry commands and their errors, invoices in all
//! three formats, reconcile, close with a late event becoming an
//! adjustment, usage grouped by tier.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::{Command, Output};

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .expect("run tally")
}

fn ok(args: &[&str]) -> String {
    let out = tally(args);
    assert!(
        out.status.success(),
        "tally {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = tally(args);
    assert!(!out.status.success(), "tally {args:?} should fail");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn line(ts: &str, key: &str, endpoint: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","api_key":"{key}","endpoint":"{endpoint}","method":"GET","status_code":200,"latency_ms":1.0,"request_bytes":10,"response_bytes":90,"ip":"10.0.0.1","user_agent":"t","geo_country":"US"}}"#
    )
}

#[test]
fn keys_plans_invoices_reconcile_close_and_usage() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("data");
    let d = dir.to_str().unwrap();
    let file = t.path().join("oct.ndjson");
    let mut text = String::new();
    for i in 0..25 {
        text.push_str(&line(
            &format!("2026-10-05T10:{:02}:00Z", i),
            "acme",
            "/v1/users",
        ));
        text.push('\n');
    }
    for i in 0..4 {
        text.push_str(&line(
            &format!("2026-10-06T11:0{i}:00Z"),
            "acme",
            "/v1/search/q",
        ));
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    ok(&["import", "--data-dir", d, file.to_str().unwrap()]);

    // Registry.
    ok(&[
        "billing",
        "tier",
        "set",
        "/v1/search/*",
        "premium",
        "--data-dir",
        d,
    ]);
    ok(&[
        "billing",
        "plan",
        "set",
        "pro",
        "--quota",
        "1000",
        "--price",
        "default=10@0,*@1500",
        "--price",
        "premium=*@5000",
        "--data-dir",
        d,
    ]);
    let e = fails(&["keys", "create", "acme", "--plan", "gold", "--data-dir", d]);
    assert!(e.contains("plan \"gold\", which does not exist"), "{e}");
    ok(&[
        "keys",
        "create",
        "acme",
        "--owner",
        "Acme Inc",
        "--plan",
        "pro",
        "--rate",
        "5",
        "--data-dir",
        d,
    ]);
    let e = fails(&["keys", "create", "acme", "--data-dir", d]);
    assert!(e.contains("already registered"), "{e}");
    let e = fails(&["keys", "update", "nobody", "--quota", "5", "--data-dir", d]);
    assert!(e.contains("not registered"), "{e}");
    let e = fails(&["keys", "update", "acme", "--quota", "lots", "--data-dir", d]);
    assert!(e.contains("--quota \"lots\" is not a number"), "{e}");
    let e = fails(&["billing", "plan", "remove", "pro", "--data-dir", d]);
    assert!(e.contains("used by api key \"acme\""), "{e}");
    let e = fails(&[
        "billing",
        "plan",
        "set",
        "x",
        "--price",
        "default=*@1,5@2",
        "--data-dir",
        d,
    ]);
    assert!(e.contains("only the last step"), "{e}");
    let list = ok(&["keys", "list", "--data-dir", d]);
    assert!(
        list.contains("acme") && list.contains("Acme Inc") && list.contains("active"),
        "{list}"
    );

    // Invoice: default 25 = 10 free + 15 × 1500; premium 4 × 5000.
    let table = ok(&["billing", "invoice", "--month", "2026-10", "--data-dir", d]);
    assert!(table.contains("open: counters so far"), "{table}");
    assert!(
        table.contains("0.022500") && table.contains("0.020000"),
        "{table}"
    );
    assert!(table.contains("0.042500"), "{table}");
    let csv = ok(&[
        "billing",
        "invoice",
        "--month",
        "2026-10",
        "--format",
        "csv",
        "--data-dir",
        d,
    ]);
    assert!(
        csv.contains("2026-10,line,acme,Acme Inc,pro,default,25,2500,10,22500,,"),
        "{csv}"
    );
    assert!(
        csv.contains("2026-10,line,acme,Acme Inc,pro,premium,4,400,0,20000,,"),
        "{csv}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "billing",
        "invoice",
        "--month",
        "2026-10",
        "--format",
        "json",
        "--data-dir",
        d,
    ]))
    .unwrap();
    assert_eq!(json["keys"][0]["total_micros"], 42_500);
    let e = fails(&["billing", "invoice", "--month", "2026-1", "--data-dir", d]);
    assert!(e.contains("is not a month"), "{e}");

    let rec = ok(&["billing", "reconcile", "--data-dir", d]);
    assert!(
        rec.contains("reconciled 29 events") && rec.contains("0 differences"),
        "{rec}"
    );

    // Close October, then a late October event becomes an adjustment.
    let closed = ok(&["billing", "close", "--month", "2026-10", "--data-dir", d]);
    assert!(closed.contains("closed 2026-10: 2"), "{closed}");
    let late = t.path().join("late.ndjson");
    std::fs::write(
        &late,
        line("2026-10-31T23:59:59Z", "acme", "/v1/users") + "\n",
    )
    .unwrap();
    ok(&["import", "--data-dir", d, late.to_str().unwrap()]);
    let table = ok(&["billing", "invoice", "--month", "2026-10", "--data-dir", d]);
    assert!(table.contains("closed: invoiced numbers"), "{table}");
    assert!(
        table.contains("adjustment default +1 requests +100 bytes 0.001500"),
        "{table}"
    );
    assert!(table.contains("pending"), "{table}");
    let again = ok(&["billing", "close", "--month", "2026-10", "--data-dir", d]);
    assert!(again.contains("recorded 1 adjustments"), "{again}");
    let e = fails(&["billing", "close", "--month", "2999-01", "--data-dir", d]);
    assert!(e.contains("has not ended"), "{e}");

    // Usage by tier over October; check refuses an unknown key.
    let usage = ok(&[
        "usage",
        "--api-key",
        "acme",
        "--from",
        "2026-10-01",
        "--to",
        "2026-11-01",
        "--by",
        "tier",
        "--data-dir",
        d,
    ]);
    assert!(usage.contains("default") && usage.contains("26"), "{usage}");
    assert!(usage.contains("premium"), "{usage}");
    let e = fails(&["check", "stranger", "--data-dir", d]);
    assert!(e.contains("stranger: unknown_key"), "{e}");
    ok(&["keys", "disable", "acme", "--data-dir", d]);
    let e = fails(&["check", "acme", "--data-dir", d]);
    assert!(e.contains("acme: disabled"), "{e}");
    ok(&["keys", "enable", "acme", "--data-dir", d]);
    let c = ok(&["check", "acme", "--data-dir", d]);
    assert!(
        c.contains("acme: allowed") && c.contains("quota 1000"),
        "{c}"
    );
}
