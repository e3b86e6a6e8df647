//! Table tests of snapshot parsing: formats, gzip, headers, bad rows with their lines.

use std::io::Write;

use super::*;

/// The rows of `input`, as `Ok(email|userId|fields)` or `Bad(line: reason)` strings.
fn rows(input: &[u8], format: Format) -> Result<Vec<String>, String> {
    let it = read_rows(input, format).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in it {
        match r.map_err(|e| e.to_string())? {
            Row::Member(m) => out.push(format!(
                "{}:{}|{}|{}",
                m.line,
                m.identity.email.unwrap_or_default(),
                m.identity.user_id.unwrap_or_default(),
                m.data_fields
                    .map(|f| Value::Object(f).to_string())
                    .unwrap_or_default()
            )),
            Row::Bad(b) => out.push(format!("bad {}: {}", b.line, b.reason)),
        }
    }
    Ok(out)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// (name, input, format, the rows or the error).
type Case<'a> = (&'a str, &'a [u8], Format, Result<Vec<&'a str>, &'a str>);

#[test]
fn rows_are_read_as_documented() {
    let cases: Vec<Case<'_>> = vec![
        (
            "csv with both ids and a data field",
            b"email,userId,plan\nA@x.io,u1,gold\nb@x.io,,\n,u3,silver\n",
            Format::Auto,
            Ok(vec![
                "2:a@x.io|u1|{\"plan\":\"gold\"}",
                "3:b@x.io||",
                "4:|u3|{\"plan\":\"silver\"}",
            ]),
        ),
        (
            "csv header names case-insensitively, BOM, CRLF, quoted comma and newline",
            b"\xef\xbb\xbfEmail,USER_ID,note\r\na@x.io,u1,\"x, \"\"y\"\"\nz\"\r\nb@x.io,u2,\r\n",
            Format::Csv,
            Ok(vec![
                "2:a@x.io|u1|{\"note\":\"x, \\\"y\\\"\\nz\"}",
                "4:b@x.io|u2|",
            ]),
        ),
        (
            "csv bad rows keep their lines; blank lines are skipped",
            b"email,userId\na@x.io,\n\nnot-an-email,\n,\nb@x.io\n\n\n\"c@x.io\",\"u\nv\"\nd@x.io,\"u,1\"",
            Format::Csv,
            Ok(vec![
                "2:a@x.io||",
                "bad 4: email \"not-an-email\" is not an email address",
                "bad 5: the row has neither an email nor a userId",
                "bad 6: 1 fields where the header has 2",
                "bad 9: userId \"u\\nv\" holds control characters",
                "11:d@x.io|u,1|",
            ]),
        ),
        (
            "csv with CRLF",
            b"email\r\na@x.io\r\nb@x.io\r\n",
            Format::Csv,
            Ok(vec!["2:a@x.io||", "3:b@x.io||"]),
        ),
        (
            "csv userId only",
            b"userId\nu1\nu2",
            Format::Auto,
            Ok(vec!["2:|u1|", "3:|u2|"]),
        ),
        (
            "csv header without an identity column",
            b"name,plan\nann,gold\n",
            Format::Auto,
            Err("line 1: the CSV header names no email or userId column (it has: name, plan)"),
        ),
        (
            "csv header with an empty name",
            b"email,,plan\n",
            Format::Csv,
            Err("line 1: the CSV header column 2 has no name"),
        ),
        (
            "csv header naming a column twice",
            b"email,Email\n",
            Format::Csv,
            Err("line 1: the CSV header names column \"Email\" twice"),
        ),
        (
            "ndjson: ids, dataFields and other keys as data fields",
            b"{\"email\":\"A@x.io\",\"dataFields\":{\"n\":1},\"plan\":\"gold\"}\n\n{\"userId\":\"u2\"}\n",
            Format::Auto,
            Ok(vec![
                "1:a@x.io||{\"n\":1,\"plan\":\"gold\"}",
                "3:|u2|",
            ]),
        ),
        (
            "ndjson bad rows",
            b"{\"email\":1}\n[1]\n{bad\n{\"userId\":\"u\",\"dataFields\":[]}\n{\"email\":null,\"userId\":\"\"}\n{\"userId\":\"u9\"}",
            Format::Ndjson,
            Ok(vec![
                "bad 1: email must be a string, got a number",
                "bad 2: not a JSON object",
                "bad 3: not valid JSON: key must be a string at line 1 column 2",
                "bad 4: dataFields must be an object, got an array",
                "bad 5: the row has neither an email nor a userId",
                "6:|u9|",
            ]),
        ),
        ("empty input", b"", Format::Ndjson, Ok(vec![])),
    ];
    for (name, input, format, want) in cases {
        let want = want
            .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
            .map_err(String::from);
        assert_eq!(rows(input, format), want, "{name}");
        // The same gzipped reads the same.
        assert_eq!(rows(&gz(input), format), want, "{name} (gzip)");
    }
}

#[test]
fn an_overlong_ndjson_line_is_a_bad_row_and_the_next_line_is_read() {
    let mut input = b"{\"email\":\"a@x.io\",\"f\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_ROW_BYTES + 10));
    input.extend_from_slice(b"\"}\n{\"email\":\"b@x.io\"}\n");
    let got = rows(&input, Format::Auto).unwrap();
    assert_eq!(
        got,
        vec![
            format!("bad 1: the line is longer than {MAX_ROW_BYTES} bytes"),
            "2:b@x.io||".to_string()
        ]
    );
}

#[test]
fn an_unclosed_csv_quote_stops_the_reading_instead_of_buffering_the_file() {
    let mut input = b"email,note\na@x.io,\"open\n".to_vec();
    for _ in 0..(MAX_ROW_BYTES / 4) {
        input.extend_from_slice(b"b@x.io,y\n");
    }
    match rows(&input, Format::Csv) {
        Err(e) => assert!(e.contains("longer than"), "{e}"),
        Ok(r) => panic!("read {} rows", r.len()),
    }
}

#[test]
fn formats_follow_the_file_name() {
    let cases = [
        ("audience.csv", Format::Csv),
        ("audience.CSV.gz", Format::Csv),
        ("a.ndjson", Format::Ndjson),
        ("a.jsonl.gz", Format::Ndjson),
        ("-", Format::Auto),
        ("members.txt", Format::Auto),
    ];
    for (name, want) in cases {
        assert_eq!(Format::of_name(name), want, "{name}");
    }
}
