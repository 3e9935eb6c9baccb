//! NDJSON and CSV: round trips (proptest) and every rejection path.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use tally_engine::text::time::MAX_TS;
use tally_engine::text::{
    csv_header, format_ts, parse_ndjson_chunk, parse_ndjson_line, parse_ts, write_csv,
    write_ndjson, CsvEventReader, LineError, FIELD_NAMES,
};
use tally_engine::{Event, EventBatch};

fn sample() -> Event {
    Event {
        ts: parse_ts("2026-11-25T10:00:00.123456Z").expect("ts"),
        api_key: "key_000123".into(),
        endpoint: "/v1/users/:id".into(),
        method: "GET".into(),
        status_code: 200,
        latency_ms: 12.345,
        request_bytes: 310,
        response_bytes: 2048,
        ip: IpAddr::V4(Ipv4Addr::new(52, 1, 2, 3)),
        user_agent: "curl/8.5.0".into(),
        geo_country: "US".into(),
        request_id: Some("req_00000000deadbeef".into()),
    }
}

fn ndjson_of(events: &[Event]) -> String {
    let mut out = Vec::new();
    for e in events {
        write_ndjson(&e.as_ref(), &mut out);
    }
    String::from_utf8(out).expect("utf8")
}

fn csv_of(events: &[Event]) -> Vec<u8> {
    let mut out = csv_header().as_bytes().to_vec();
    out.push(b'\n');
    for e in events {
        write_csv(&e.as_ref(), &mut out);
    }
    out
}

fn parse_one(line: &str) -> Result<Event, String> {
    let mut b = EventBatch::new();
    parse_ndjson_line(line, &mut b)?;
    assert_eq!(b.len(), 1);
    Ok(b.get(0).to_owned())
}

fn read_csv(text: &[u8], max_rows: usize) -> Result<(Vec<Event>, Vec<LineError>), String> {
    let mut r = CsvEventReader::new(text)?;
    let mut b = EventBatch::new();
    let mut errors = Vec::new();
    loop {
        let n = r.read_into(&mut b, max_rows, &mut errors)?;
        if n == 0 {
            break;
        }
        assert!(n <= max_rows);
    }
    Ok((b.to_events(), errors))
}

fn ndjson_err(line: &str) -> String {
    let mut b = EventBatch::new();
    let err = parse_ndjson_line(line, &mut b).expect_err(line);
    assert!(b.is_empty(), "batch must be unchanged on error");
    err
}

/// A valid line with `field` replaced by raw JSON `value` (or removed).
fn line_with(field: &str, value: Option<&str>) -> String {
    let fields = [
        ("ts", "\"2026-11-25T10:00:00Z\""),
        ("api_key", "\"key_1\""),
        ("endpoint", "\"/v1/users/:id\""),
        ("method", "\"GET\""),
        ("status_code", "200"),
        ("latency_ms", "12.5"),
        ("request_bytes", "100"),
        ("response_bytes", "200"),
        ("ip", "\"10.0.0.1\""),
        ("user_agent", "\"curl/8\""),
        ("geo_country", "\"DE\""),
        ("request_id", "\"r1\""),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|&(k, v)| {
            let v = if k == field { value? } else { v };
            Some(format!("\"{k}\":{v}"))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

// ---------------------------------------------------------------------------
// Timestamps.

#[test]
fn timestamps_parse_and_format() {
    let base = parse_ts("2026-11-25T10:00:00Z").expect("base");
    assert_eq!(format_ts(base), "2026-11-25T10:00:00.000000Z");
    assert_eq!(parse_ts("2026-11-25 10:00:00Z"), Ok(base));
    assert_eq!(parse_ts("2026-11-25T12:00:00+02:00"), Ok(base));
    assert_eq!(parse_ts("2026-11-25T05:30:00-04:30"), Ok(base));
    assert_eq!(parse_ts("2026-11-25T10:00:00.5Z"), Ok(base + 500_000));
    assert_eq!(
        parse_ts("2026-11-25T10:00:00.123456789Z"),
        Ok(base + 123_456)
    );
    assert_eq!(parse_ts(&base.to_string()), Ok(base));
    assert_eq!(parse_ts("0"), Ok(0));
    assert_eq!(format_ts(0), "1970-01-01T00:00:00.000000Z");
    for bad in [
        "yesterday",
        "2026-11-25",
        "2026-11-25T10:00Z",
        "2026-11-31T10:00:00Z",
        "2026-11-25T10:00:00",
        "2026-11-25T10:00:00+25:00",
        "1969-12-31T23:59:59.999999Z",
        "10000-01-01T00:00:00Z",
        "253402300800000000",
        "-5",
        "1.5",
    ] {
        let e = parse_ts(bad).expect_err(bad);
        assert!(e.contains("timestamp"), "{bad}: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ts_round_trips(us in 0i64..=MAX_TS) {
        let s = format_ts(us);
        prop_assert_eq!(s.len(), 27);
        prop_assert_eq!(parse_ts(&s), Ok(us));
        prop_assert_eq!(parse_ts(&us.to_string()), Ok(us));
    }
}

// ---------------------------------------------------------------------------
// Round trips.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        4 => "[a-zA-Z0-9_,\"\n\r\t \\\\/:;{}é😀]{0,16}",
        1 => Just(String::new()),
        1 => Just("\"quoted\", with comma\nand newline\r\n".to_string()),
    ]
}

fn latency() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.1),
        Just(1e-300),
        Just(123.456),
        Just(0.0),
        Just(-0.0),
        Just(5e-324),
        Just(f64::MAX),
        Just(0.30000000000000004),
        0.0f64..1e6,
        (0u64..1_000_000_000).prop_map(|us| us as f64 / 1000.0),
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |x| x.is_finite()),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

prop_compose! {
    fn event()(
        ts in 0i64..=MAX_TS,
        api_key in text(),
        endpoint in text(),
        method in text(),
        status_code in any::<u16>(),
        latency_ms in latency(),
        request_bytes in any::<u64>(),
        response_bytes in prop_oneof![any::<u64>(), 0u64..100_000],
        ip in ip(),
        user_agent in text(),
        geo_country in text(),
        request_id in proptest::option::of(text()),
    ) -> Event {
        Event {
            ts, api_key, endpoint, method, status_code, latency_ms, request_bytes,
            response_bytes, ip, user_agent, geo_country,
            request_id: request_id.filter(|r| !r.is_empty()),
        }
    }
}

fn assert_same(got: &[Event], want: &[Event]) {
    assert_eq!(got, want);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.latency_ms.to_bits(), w.latency_ms.to_bits());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ndjson_round_trip(events in proptest::collection::vec(event(), 1..6)) {
        let text = ndjson_of(&events);
        prop_assert_eq!(text.lines().count(), events.len());
        let mut b = EventBatch::new();
        let mut errors = Vec::new();
        parse_ndjson_chunk(&text, 1, &mut b, &mut errors);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        assert_same(&b.to_events(), &events);
        // Line by line too, and with CRLF line ends.
        let crlf = text.replace('\n', "\r\n");
        let mut b2 = EventBatch::new();
        parse_ndjson_chunk(&crlf, 1, &mut b2, &mut errors);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        assert_same(&b2.to_events(), &events);
    }

    #[test]
    fn csv_round_trip(events in proptest::collection::vec(event(), 1..6), max in 1usize..4) {
        let text = csv_of(&events);
        let (got, errors) = read_csv(&text, max).map_err(TestCaseError::fail)?;
        prop_assert!(errors.is_empty(), "{:?}", errors);
        assert_same(&got, &events);
    }

    #[test]
    fn ndjson_never_panics(line in any::<String>()) {
        let mut b = EventBatch::new();
        let _ = parse_ndjson_line(&line, &mut b);
    }

    #[test]
    fn ndjson_truncation_is_an_error(e in event(), cut in 0usize..400) {
        let text = ndjson_of(std::slice::from_ref(&e));
        let line = text.trim_end();
        let mut cut = cut.min(line.len().saturating_sub(1));
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut b = EventBatch::new();
        prop_assert!(parse_ndjson_line(&line[..cut], &mut b).is_err());
        prop_assert!(b.is_empty());
    }

    #[test]
    fn csv_never_panics(body in any::<Vec<u8>>()) {
        let mut text = csv_header().as_bytes().to_vec();
        text.push(b'\n');
        text.extend_from_slice(&body);
        let _ = read_csv(&text, 7);
    }
}

#[test]
fn fixed_round_trips() {
    let mut e = sample();
    let mut events = vec![e.clone()];
    e.latency_ms = 1e-300;
    e.request_id = None;
    e.ip = "2001:db8::1".parse().expect("ip");
    e.api_key = "ké\"y,\n\\ 😀\u{1}".into();
    events.push(e.clone());
    e.latency_ms = 0.1;
    e.user_agent = String::new();
    e.geo_country = String::new();
    events.push(e);
    let text = ndjson_of(&events);
    let mut b = EventBatch::new();
    let mut errors = Vec::new();
    parse_ndjson_chunk(&text, 1, &mut b, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_same(&b.to_events(), &events);
    let (got, errors) = read_csv(&csv_of(&events), 100).expect("csv");
    assert!(errors.is_empty(), "{errors:?}");
    assert_same(&got, &events);
}

#[test]
fn ndjson_writer_shape() {
    let text = ndjson_of(&[sample()]);
    assert_eq!(
        text,
        "{\"ts\":\"2026-11-25T10:00:00.123456Z\",\"api_key\":\"key_000123\",\
         \"endpoint\":\"/v1/users/:id\",\"method\":\"GET\",\"status_code\":200,\
         \"latency_ms\":12.345,\"request_bytes\":310,\"response_bytes\":2048,\
         \"ip\":\"52.1.2.3\",\"user_agent\":\"curl/8.5.0\",\"geo_country\":\"US\",\
         \"request_id\":\"req_00000000deadbeef\"}\n"
    );
    let mut e = sample();
    e.request_id = None;
    assert!(!ndjson_of(&[e]).contains("request_id"));
    // The writer's output is valid JSON.
    let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json");
    assert_eq!(v["latency_ms"], 12.345);
}

#[test]
fn csv_writer_shape() {
    let mut e = sample();
    e.user_agent = "a,\"b\"\nc".into();
    e.request_id = None;
    let text = String::from_utf8(csv_of(&[e])).expect("utf8");
    assert_eq!(
        text,
        "ts,api_key,endpoint,method,status_code,latency_ms,request_bytes,response_bytes,ip,\
         user_agent,geo_country,request_id\n\
         2026-11-25T10:00:00.123456Z,key_000123,/v1/users/:id,GET,200,12.345,310,2048,\
         52.1.2.3,\"a,\"\"b\"\"\nc\",US,\n"
    );
}

// ---------------------------------------------------------------------------
// NDJSON input variants.

#[test]
fn ndjson_defaults_and_variants() {
    let line = r#"{"ts":1795600800000000,"api_key":"k","endpoint":"/e","method":"GET","status_code":404,"latency_ms":3,"ip":"::1"}"#;
    let e = parse_one(line).expect("minimal");
    assert_eq!(e.ts, parse_ts("2026-11-25T10:00:00Z").expect("ts"));
    assert_eq!(e.latency_ms, 3.0);
    assert_eq!((e.request_bytes, e.response_bytes), (0, 0));
    assert_eq!((e.user_agent.as_str(), e.geo_country.as_str()), ("", ""));
    assert_eq!(e.request_id, None);

    // Unknown fields (of any type), whitespace, escapes, nulls, string ts.
    let line =
        " { \"extra\" : {\"a\":[1,2,{\"b\":null}]}, \"ts\" : \"2026-11-25T12:00:00+02:00\" ,\
        \"api_key\":\"k\\u00e9\\n\",\"endpoint\":\"/e\",\"method\":\"POST\",\"status_code\":201,\
        \"latency_ms\":1.5e2,\"ip\":\"1.2.3.4\",\"request_id\":null,\"geo_country\":null,\
        \"more\":[true,false],\"n\":-1.5E-3,\"s\":\"x\\\"y\",\"user_agent\":\"ua\"} \r";
    let e = parse_one(line).expect("variants");
    assert_eq!(e.ts, parse_ts("2026-11-25T10:00:00Z").expect("ts"));
    assert_eq!(e.api_key, "ké\n");
    assert_eq!(e.latency_ms, 150.0);
    assert_eq!(e.request_id, None);
    assert_eq!(e.user_agent, "ua");
    assert_eq!(e.geo_country, "");

    // Empty request id = absent; ts as an integer string.
    let e = parse_one(&line_with("request_id", Some("\"\""))).expect("empty rid");
    assert_eq!(e.request_id, None);
    let e = parse_one(&line_with("ts", Some("\"1795600800000000\""))).expect("ts str");
    assert_eq!(e.ts, 1_795_600_800_000_000);
    // A leading byte-order mark is tolerated.
    assert!(parse_one(&format!("\u{feff}{}", line_with("", None))).is_ok());
    // Range validation is the engine's job, not the parser's.
    let e = parse_one(&line_with("status_code", Some("65535"))).expect("u16 max");
    assert_eq!(e.status_code, 65535);
    let e = parse_one(&line_with("latency_ms", Some("-1"))).expect("negative latency");
    assert_eq!(e.latency_ms, -1.0);
}

#[test]
fn ndjson_chunk_line_numbers() {
    let good = line_with("", None);
    let text = format!(
        "{good}\r\n\n   \r\n{bad}\n{good}\n{{\"ts\":\n{good}",
        bad = line_with("ip", Some("\"nope\""))
    );
    let mut b = EventBatch::new();
    let mut errors = Vec::new();
    parse_ndjson_chunk(&text, 101, &mut b, &mut errors);
    assert_eq!(b.len(), 3);
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![104, 106]);
    assert!(errors[0].reason.contains("\"ip\""), "{}", errors[0]);
    assert!(errors[1].reason.contains("\"ts\""), "{}", errors[1]);
    assert_eq!(
        errors[0].to_string(),
        "line 104: field \"ip\": invalid IP address \"nope\""
    );
}

// ---------------------------------------------------------------------------
// NDJSON errors: each names the field.

#[test]
fn ndjson_type_errors_name_the_field() {
    assert_eq!(
        ndjson_err(&line_with("status_code", Some("\"abc\""))),
        "field \"status_code\": expected an integer, found \"abc\""
    );
    assert_eq!(ndjson_err(&line_with("ts", None)), "missing field \"ts\"");
    let cases: &[(&str, &str)] = &[
        ("ts", "\"2026-13-01T00:00:00Z\""),
        ("ts", "\"2026-11-25T10:00:00\""),
        ("ts", "\"soon\""),
        ("ts", "1.5e15"),
        ("ts", "-1"),
        ("ts", "true"),
        ("ts", "99999999999999999999999"),
        ("api_key", "12"),
        ("api_key", "null"),
        ("endpoint", "[\"/a\"]"),
        ("method", "{}"),
        ("status_code", "200.0"),
        ("status_code", "2e2"),
        ("status_code", "70000"),
        ("status_code", "-200"),
        ("status_code", "null"),
        ("latency_ms", "\"12\""),
        ("latency_ms", "1e999"),
        ("latency_ms", "null"),
        ("request_bytes", "-5"),
        ("request_bytes", "1.5"),
        ("request_bytes", "\"100\""),
        ("response_bytes", "18446744073709551616"),
        ("ip", "\"10.0.0.256\""),
        ("ip", "\"fe80::1%eth0\""),
        ("ip", "167772161"),
        ("user_agent", "5"),
        ("geo_country", "false"),
        ("request_id", "42"),
    ];
    for &(field, value) in cases {
        let err = ndjson_err(&line_with(field, Some(value)));
        assert!(
            err.contains(&format!("\"{field}\"")),
            "{field}={value}: {err}"
        );
    }
    for field in [
        "ts",
        "api_key",
        "endpoint",
        "method",
        "status_code",
        "latency_ms",
        "ip",
    ] {
        assert_eq!(
            ndjson_err(&line_with(field, None)),
            format!("missing field \"{field}\"")
        );
    }
    let err = ndjson_err(r#"{"api_key":"k"}"#);
    assert!(
        err.starts_with("missing fields \"ts\", \"endpoint\""),
        "{err}"
    );
}

#[test]
fn ndjson_syntax_errors() {
    let full = line_with("", None);
    // Truncated inside a value: names that field.
    let at = full.find("\"key_1").expect("api_key") + 3;
    let err = ndjson_err(&full[..at]);
    assert!(err.contains("\"api_key\""), "{err}");
    // Truncated right after a value.
    let at = full.find(",\"endpoint\"").expect("endpoint");
    let err = ndjson_err(&full[..at]);
    assert!(
        err.contains("\"api_key\"") && err.contains("end of line"),
        "{err}"
    );
    let err = ndjson_err(&full[..at + 1]);
    assert!(err.contains("\"api_key\""), "{err}");
    // Truncated inside a key and inside a nested unknown value.
    let err = ndjson_err(r#"{"ts":"2026-11-25T10:00:00Z","api_"#);
    assert!(err.contains("\"ts\""), "{err}");
    let err = ndjson_err(r#"{"ts":"2026-11-25T10:00:00Z","x":{"a":[1,"#);
    assert!(err.contains("\"x\""), "{err}");
    let err = ndjson_err(r#"{"ts":tru"#);
    assert!(err.contains("\"ts\""), "{err}");

    for (line, want) in [
        ("", "empty line"),
        ("[1,2]", "expected a JSON object, found an array"),
        ("\"x\"", "expected a JSON object, found \"x\""),
        ("nonsense", "expected a JSON object"),
        ("{", "end of line"),
        ("{\"ts\" 1}", "expected ':'"),
        ("{ts:1}", "expected a field name"),
        ("{\"ts\":01}", "\"ts\""),
        ("{\"ts\":1,}", "expected a field name"),
        ("{\"ts\":1 \"a\":2}", "expected ',' or '}'"),
        ("{\"ts\":\"a\tb\"}", "control character"),
        ("{\"ts\":\"\\x\"}", "invalid escape"),
        ("{\"ts\":\"\\ud800\"}", "invalid escape"),
        ("{\"x\":[1,}", "\"x\""),
        ("{\"x\":nul}", "\"x\""),
        ("{\"x\":-}", "\"x\""),
        ("{\"x\":1.}", "\"x\""),
        ("{\"x\":1e}", "\"x\""),
        ("{\"x\":+1}", "\"x\""),
    ] {
        let err = ndjson_err(line);
        assert!(err.contains(want), "{line:?}: {err}");
    }
    let err = ndjson_err(&format!("{full} x"));
    assert!(err.contains("after the object"), "{err}");
    let err = ndjson_err(&format!("{full}{full}"));
    assert!(err.contains("after the object"), "{err}");
    let dup = full.replacen("{", "{\"method\":\"PUT\",", 1);
    assert_eq!(ndjson_err(&dup), "duplicate field \"method\"");
}

// ---------------------------------------------------------------------------
// CSV input.

#[test]
fn csv_header_any_order_and_optional_columns() {
    let text = "\u{feff}ip, Status_Code ,ts,api_key,endpoint,method,latency_ms\n\
                ::1,200,2026-11-25T10:00:00Z,k,/e,GET,1.25\n\
                1.2.3.4 , 404 , 1795600800000000 ,k2,/f,POST, 2\n";
    let (events, errors) = read_csv(text.as_bytes(), 10).expect("csv");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].ip, "::1".parse::<IpAddr>().expect("ip"));
    assert_eq!(events[0].status_code, 200);
    assert_eq!(events[0].request_bytes, 0);
    assert_eq!(events[0].user_agent, "");
    assert_eq!(events[0].request_id, None);
    assert_eq!(events[1].ts, events[0].ts);
    assert_eq!(events[1].status_code, 404);
    assert_eq!(events[1].latency_ms, 2.0);

    // Empty optional cells.
    let text = format!(
        "{}\n2026-11-25T10:00:00Z,k,/e,GET,200,1,,,1.2.3.4,,,\n",
        csv_header()
    );
    let (events, errors) = read_csv(text.as_bytes(), 10).expect("csv");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!((events[0].request_bytes, events[0].response_bytes), (0, 0));
    assert_eq!(events[0].request_id, None);
}

#[test]
fn csv_header_errors() {
    let err = CsvEventReader::new(&b""[..]).expect_err("empty");
    assert!(err.contains("header"), "{err}");
    let err =
        CsvEventReader::new(&b"ts,api_key,endpoint,method,status_code,latency_ms,ip,colour\n"[..])
            .expect_err("unknown");
    assert!(err.contains("unknown CSV column \"colour\""), "{err}");
    let err =
        CsvEventReader::new(&b"ts,api_key,endpoint,method,latency_ms\n"[..]).expect_err("missing");
    assert!(
        err.contains("missing required CSV columns \"status_code\", \"ip\""),
        "{err}"
    );
    let err =
        CsvEventReader::new(&b"ts,api_key,endpoint,method,status_code,latency_ms,ip,ts\n"[..])
            .expect_err("dup");
    assert!(err.contains("duplicate CSV column \"ts\""), "{err}");
}

#[test]
fn csv_row_errors_name_the_field_and_line() {
    let good = "2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,2,1.2.3.4,ua,US,r";
    let text = format!(
        "{}\n{good}\n\
         2026-11-25T10:00:00Z,\"multi\nline\",/e,GET,abc,1.5,1,2,1.2.3.4,ua,US,r\n\
         {good}\n\
         2026-11-25T25:00:00Z,k,/e,GET,200,1.5,1,2,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,70000,1.5,1,2,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200,fast,1,2,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200,NaN,1,2,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200,1.5,-1,2,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,x,1.2.3.4,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,2,localhost,ua,US,r\n\
         2026-11-25T10:00:00Z,k,/e,GET,200\n\
         {good}\n",
        csv_header()
    );
    let (events, errors) = read_csv(text.as_bytes(), 4).expect("csv");
    assert_eq!(events.len(), 3);
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
    let want_fields = [
        (3, "\"status_code\""),
        (6, "\"ts\""),
        (7, "\"status_code\""),
        (8, "\"latency_ms\""),
        (9, "\"latency_ms\""),
        (10, "\"request_bytes\""),
        (11, "\"response_bytes\""),
        (12, "\"ip\""),
        (13, "expected 12 fields, found 5"),
    ];
    assert_eq!(got.len(), want_fields.len(), "{got:?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(want_fields) {
        assert_eq!(*line, want_line, "{reason}");
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    assert_eq!(
        errors[0].reason,
        "field \"status_code\": expected an integer, found \"abc\""
    );
}

#[test]
fn csv_crlf_line_numbers() {
    let good = "2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,2,1.2.3.4,ua,US,r";
    let text = format!(
        "{}\r\n{good}\r\n\r\n2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,2,1.2.3.4,\"a\r\nb\",US,\r\n\
         {good}\r\nnot a row\r\n",
        csv_header()
    );
    let (events, errors) = read_csv(text.as_bytes(), 100).expect("csv");
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].user_agent, "a\r\nb");
    assert_eq!(events[1].request_id, None);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 7);
    assert_eq!(csv_header().split(',').collect::<Vec<_>>(), FIELD_NAMES);
}

#[test]
fn csv_line_numbers_survive_blank_lines_and_big_inputs() {
    let good = "2026-11-25T10:00:00Z,k,/e,GET,200,1.5,1,2,1.2.3.4,ua,US,r";
    let bad = "2026-11-25T10:00:00Z,k,/e,GET,oops,1.5,1,2,1.2.3.4,ua,US,r";
    for eol in ["\n", "\r\n"] {
        // Blank lines before a record, then enough rows to cycle the
        // reader's raw-byte window several times.
        let mut text = format!("{}{eol}{good}{eol}{eol}{eol}{bad}{eol}", csv_header());
        let mut want = vec![5u64];
        let mut line = 5;
        for i in 0..20_000u64 {
            line += 1;
            if i % 4999 == 0 {
                text.push_str(&format!("\"{bad}\",x{eol}"));
                want.push(line);
            } else if i % 3001 == 0 {
                text.push_str(&format!(
                    "2026-11-25T10:00:00Z,\"two{eol}lines\",/e,GET,oops,1,,,::1,,,{eol}"
                ));
                want.push(line);
                line += 1;
            } else {
                text.push_str(good);
                text.push_str(eol);
            }
        }
        let (events, errors) = read_csv(text.as_bytes(), 1000).expect("csv");
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, want, "eol {eol:?}");
        assert_eq!(events.len() + errors.len(), 20_002);
    }
}

#[test]
fn csv_reader_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<CsvEventReader<std::fs::File>>();
}

#[test]
fn csv_read_into_counts_rows() {
    let events = vec![sample(); 7];
    let text = csv_of(&events);
    let mut r = CsvEventReader::new(&text[..]).expect("header");
    let mut b = EventBatch::new();
    let mut errors = Vec::new();
    assert_eq!(r.read_into(&mut b, 0, &mut errors), Ok(0));
    assert_eq!(r.read_into(&mut b, 3, &mut errors), Ok(3));
    assert_eq!(r.read_into(&mut b, 3, &mut errors), Ok(3));
    assert_eq!(r.read_into(&mut b, 3, &mut errors), Ok(1));
    assert_eq!(r.read_into(&mut b, 3, &mut errors), Ok(0));
    assert_eq!(b.len(), 7);
}

#[test]
fn csv_io_error_is_err() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let header = format!("{}\n", csv_header());
            if self.0 < header.len() {
                let n = (header.len() - self.0).min(buf.len());
                buf[..n].copy_from_slice(&header.as_bytes()[self.0..self.0 + n]);
                self.0 += n;
                Ok(n)
            } else {
                Err(std::io::Error::other("disk on fire"))
            }
        }
    }
    let mut r = CsvEventReader::new(Failing(0)).expect("header");
    let mut b = EventBatch::new();
    let err = r.read_into(&mut b, 10, &mut Vec::new()).expect_err("io");
    assert!(err.contains("disk on fire"), "{err}");
}
