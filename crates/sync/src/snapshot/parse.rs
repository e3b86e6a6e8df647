//! Reading a snapshot file into rows: gzip recognised by its magic bytes; CSV (a header naming
//! `email` and/or `userId`, other columns are data fields) or NDJSON (one object per line:
//! `email`, `userId`, `dataFields`, other keys are data fields too), told apart by the first
//! byte unless the caller knows. A row that cannot be used is a [`Row::Bad`] with its line
//! and the reason; only what makes the rest unreadable (a broken header, a broken gzip
//! stream, a CSV row over [`MAX_ROW_BYTES`]) is a [`ParseError`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::store::Identity;

/// The longest row (NDJSON line or CSV record) read; a longer NDJSON line is a bad row, a
/// longer CSV record (an unclosed quote, usually) stops the reading.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// From the first byte after decompression: `{` is NDJSON, anything else CSV.
    Auto,
    Csv,
    Ndjson,
}

impl Format {
    /// From a file name: `.csv`, `.ndjson`/`.jsonl`/`.json` (each possibly with `.gz`).
    pub fn of_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        let base = lower.strip_suffix(".gz").unwrap_or(&lower);
        if base.ends_with(".csv") {
            Format::Csv
        } else if [".ndjson", ".jsonl", ".json"]
            .iter()
            .any(|e| base.ends_with(e))
        {
            Format::Ndjson
        } else {
            Format::Auto
        }
    }
}

/// A member of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMember {
    pub identity: Identity,
    pub data_fields: Option<Map<String, Value>>,
    pub line: u64,
}

/// A row that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Member(SnapshotMember),
    Bad(BadRow),
}

/// What stops the reading of a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read the snapshot: {0}")]
    Io(#[from] io::Error),
    #[error("line 1: the CSV header {0}")]
    Header(String),
    #[error("line {line}: {message}")]
    Fatal { line: u64, message: String },
}

/// The rows of a snapshot read from `input` (decompressed if it is gzip).
pub fn read_rows<'r>(
    input: impl Read + 'r,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Result<Row, ParseError>> + 'r>, ParseError> {
    let mut buffered = BufReader::with_capacity(64 * 1024, input);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut text: Box<dyn BufRead + 'r> = if gzip {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    // A byte order mark (spreadsheets write one) is no part of the first row.
    if text.fill_buf()?.starts_with(b"\xef\xbb\xbf") {
        text.consume(3);
    }
    let format = match format {
        Format::Auto => {
            let head = text.fill_buf()?;
            let first = head.iter().find(|b| !b" \t\r\n".contains(b));
            if first == Some(&b'{') {
                Format::Ndjson
            } else {
                Format::Csv
            }
        }
        f => f,
    };
    Ok(match format {
        Format::Ndjson => Box::new(Ndjson {
            input: text,
            line: 0,
        }),
        _ => Box::new(Csv::new(text)?),
    })
}

/// The checks every member passes: an identity, and an email that looks like one.
fn member(
    email: Option<&str>,
    user_id: Option<&str>,
    data_fields: Option<Map<String, Value>>,
    line: u64,
) -> Row {
    let (email, user_id) = (email.map(str::trim), user_id.map(str::trim));
    let identity = Identity::new(email, user_id);
    let bad = |reason: String| Row::Bad(BadRow { line, reason });
    if identity.is_empty() {
        return bad("the row has neither an email nor a userId".into());
    }
    if let Some(e) = &identity.email
        && !looks_like_email(e)
    {
        return bad(format!("email {e:?} is not an email address"));
    }
    if let Some(u) = &identity.user_id
        && u.chars().any(char::is_control)
    {
        return bad(format!("userId {u:?} holds control characters"));
    }
    Row::Member(SnapshotMember {
        identity,
        data_fields: data_fields.filter(|m| !m.is_empty()),
        line,
    })
}

fn looks_like_email(e: &str) -> bool {
    match e.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !e.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

// ---- NDJSON ----------------------------------------------------------------------------------

struct Ndjson<R> {
    input: R,
    line: u64,
}

impl<R: BufRead> Ndjson<R> {
    /// The next line (without its end), or `None` at the end; a line over [`MAX_ROW_BYTES`] is
    /// skipped and reported as `Err(())`.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Result<(), ()>>> {
        buf.clear();
        let mut too_long = false;
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                return Ok((!buf.is_empty() || too_long).then_some(if too_long {
                    Err(())
                } else {
                    Ok(())
                }));
            }
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                buf.extend_from_slice(&chunk[..take]);
                if buf.len() > MAX_ROW_BYTES {
                    too_long = true;
                    buf.clear();
                }
            }
            self.input.consume(take);
            if done {
                return Ok(Some(if too_long { Err(()) } else { Ok(()) }));
            }
        }
    }
}

impl<R: BufRead> Iterator for Ndjson<R> {
    type Item = Result<Row, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        loop {
            let got = match self.next_line(&mut buf) {
                Ok(g) => g?,
                Err(e) => return Some(Err(ParseError::Io(e))),
            };
            self.line += 1;
            let line = self.line;
            if got.is_err() {
                return Some(Ok(Row::Bad(BadRow {
                    line,
                    reason: format!("the line is longer than {MAX_ROW_BYTES} bytes"),
                })));
            }
            let text = buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buf);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(ndjson_row(text, line)));
        }
    }
}

fn ndjson_row(text: &[u8], line: u64) -> Row {
    let bad = |reason: String| Row::Bad(BadRow { line, reason });
    let mut obj: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return bad("not a JSON object".into()),
        Err(e) => return bad(format!("not valid JSON: {e}")),
    };
    let mut id = |key: &str| match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} must be a string, got {}", kind_of(&other))),
    };
    let email = match id("email") {
        Ok(e) => e,
        Err(reason) => return bad(reason),
    };
    let user_id = match id("userId") {
        Ok(u) => u,
        Err(reason) => return bad(reason),
    };
    let mut fields = match obj.remove("dataFields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return bad(format!(
                "dataFields must be an object, got {}",
                kind_of(&other)
            ));
        }
    };
    // Other keys are data fields too (dataFields wins on a name given twice).
    for (k, v) in obj {
        fields.entry(k).or_insert(v);
    }
    member(email.as_deref(), user_id.as_deref(), Some(fields), line)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---- CSV -------------------------------------------------------------------------------------

/// What the CSV reader's input has seen: bytes read, where the last record ended, and where
/// the newlines are (the csv crate's own line numbers skip blank lines).
#[derive(Default)]
struct Seen {
    read: u64,
    record_end: u64,
    /// Offsets of newlines not yet passed by a record start.
    newlines: VecDeque<u64>,
    /// Newlines before those, and the offset of the last of them.
    passed: u64,
    last_passed: Option<u64>,
}

impl Seen {
    /// The line (1-based) of the last byte before `end` (a record's end), for ends in
    /// increasing order.
    fn line_before(&mut self, end: u64) -> u64 {
        while let Some(n) = self.newlines.front().copied().filter(|n| *n < end) {
            self.newlines.pop_front();
            self.passed += 1;
            self.last_passed = Some(n);
        }
        // A record ending with its newline is on the line that newline ends.
        match self.last_passed {
            Some(n) if n + 1 == end => self.passed,
            _ => self.passed + 1,
        }
    }
}

/// Counts the bytes and newlines read, and refuses to read more than [`MAX_ROW_BYTES`] past
/// the end of the last record (so that an unclosed quote cannot make the CSV reader buffer the
/// whole file).
struct Capped<R> {
    inner: R,
    seen: Rc<RefCell<Seen>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut seen = self.seen.borrow_mut();
        if seen.read > seen.record_end + MAX_ROW_BYTES as u64 + 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a row is longer than {MAX_ROW_BYTES} bytes (an unclosed quote?)"),
            ));
        }
        let n = self.inner.read(buf)?;
        let start = seen.read;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                seen.newlines.push_back(start + i as u64);
            }
        }
        seen.read += n as u64;
        Ok(n)
    }
}

/// What each column of the CSV file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Email,
    UserId,
    Field(String),
}

struct Csv<R> {
    reader: csv::Reader<Capped<R>>,
    columns: Vec<Column>,
    record: csv::ByteRecord,
    seen: Rc<RefCell<Seen>>,
}

fn column_of(name: &str) -> Column {
    match name.to_ascii_lowercase().as_str() {
        "email" => Column::Email,
        "userid" | "user_id" => Column::UserId,
        _ => Column::Field(name.to_string()),
    }
}

impl<R: Read> Csv<R> {
    fn new(input: R) -> Result<Self, ParseError> {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let capped = Capped {
            inner: input,
            seen: seen.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            // Lines end at '\n' only, so that the reader's line numbers count CRLF files
            // right; a '\r' left at the end of a row's last field is dropped.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(capped);
        let header = reader
            .byte_headers()
            .map_err(|e| ParseError::Header(format!("cannot be read: {e}")))?
            .clone();
        let mut columns = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let name = std::str::from_utf8(raw)
                .map_err(|_| ParseError::Header(format!("column {} is not UTF-8", i + 1)))?;
            let name = name.trim_start_matches('\u{feff}').trim();
            if name.is_empty() {
                return Err(ParseError::Header(format!("column {} has no name", i + 1)));
            }
            let c = column_of(name);
            if columns.contains(&c) {
                return Err(ParseError::Header(format!("names column {name:?} twice")));
            }
            columns.push(c);
        }
        if !columns
            .iter()
            .any(|c| matches!(c, Column::Email | Column::UserId))
        {
            let names: Vec<&str> = header
                .iter()
                .map(|h| std::str::from_utf8(h).unwrap_or("?"))
                .collect();
            return Err(ParseError::Header(format!(
                "names no email or userId column (it has: {})",
                names.join(", ")
            )));
        }
        seen.borrow_mut().record_end = reader.position().byte();
        Ok(Self {
            reader,
            columns,
            record: csv::ByteRecord::new(),
            seen,
        })
    }

    fn row(&self, line: u64) -> Row {
        let bad = |reason: String| Row::Bad(BadRow { line, reason });
        if self.record.len() != self.columns.len() {
            return bad(format!(
                "{} fields where the header has {}",
                self.record.len(),
                self.columns.len()
            ));
        }
        let (mut email, mut user_id, mut fields) = (None, None, Map::new());
        let last = self.columns.len().saturating_sub(1);
        for (i, (raw, column)) in self.record.iter().zip(&self.columns).enumerate() {
            let raw = match i == last {
                true => raw.strip_suffix(b"\r").unwrap_or(raw),
                false => raw,
            };
            let Ok(value) = std::str::from_utf8(raw) else {
                return bad(format!("field {} is not UTF-8", i + 1));
            };
            match column {
                Column::Email => email = Some(value),
                Column::UserId => user_id = Some(value),
                Column::Field(name) if !value.is_empty() => {
                    fields.insert(name.clone(), Value::String(value.to_string()));
                }
                Column::Field(_) => {}
            }
        }
        member(email, user_id, Some(fields), line)
    }
}

impl<R: Read> Iterator for Csv<R> {
    type Item = Result<Row, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let got = self.reader.read_byte_record(&mut self.record);
            let end = self.reader.position().byte();
            let mut seen = self.seen.borrow_mut();
            seen.record_end = end;
            return match got {
                Ok(false) => None,
                Ok(true) => {
                    // The record's first line: its last, less the newlines inside its quotes
                    // (the csv crate's own line numbers skip blank lines).
                    let inner = self
                        .record
                        .as_slice()
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count();
                    let line = seen.line_before(end).saturating_sub(inner as u64);
                    // A blank line is no row.
                    if self.record.len() == 1 && self.record[0].iter().all(u8::is_ascii_whitespace)
                    {
                        continue;
                    }
                    drop(seen);
                    Some(Ok(self.row(line)))
                }
                Err(e) => {
                    let line = seen.line_before(end);
                    match e.into_kind() {
                        csv::ErrorKind::Io(io) => Some(Err(ParseError::Fatal {
                            line,
                            message: io.to_string(),
                        })),
                        other => Some(Ok(Row::Bad(BadRow {
                            line,
                            reason: format!("{other:?}"),
                        }))),
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests;
