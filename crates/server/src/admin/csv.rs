//! The CSV export of an audience's rejected users: read in pages as the body is sent, each
//! cell safe to open in a spreadsheet.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use sync::{Identity, RejectedKey};
use tokio::sync::mpsc;

use super::AdminError;
use super::params::MAX_LIMIT;
use super::read::{checked_filter, known_audience};
use crate::app::AppState;

/// A cell of the CSV export, safe to open in a spreadsheet: a value that a spreadsheet would
/// read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// leading `'`.
fn csv_cell(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    }
}

/// The header of the CSV export.
pub const CSV_HEADER: [&str; 7] = [
    "email", "userId", "change", "reason", "seq", "accepted", "rejected",
];

fn csv_chunk(rows: &[RejectedKey], header: bool) -> Result<Bytes, AdminError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| AdminError::Store(format!("CSV: {e}"));
    if header {
        w.write_record(CSV_HEADER).map_err(err)?;
    }
    for k in rows {
        let time = segment::event::format_timestamp_ms;
        w.write_record([
            csv_cell(k.identity.email.as_deref().unwrap_or("")),
            csv_cell(k.identity.user_id.as_deref().unwrap_or("")),
            if k.member { "add" } else { "remove" }.to_string(),
            csv_cell(k.reason.as_deref().unwrap_or("")),
            k.seq.to_string(),
            time(k.accepted_ms),
            k.rejected_ms.map(time).unwrap_or_default(),
        ])
        .map_err(err)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| AdminError::Store(format!("CSV: {e}")))
}

/// Every rejected user of an audience as CSV ([`CSV_HEADER`]), read in pages of
/// [`MAX_LIMIT`] as the body is sent: memory does not grow with the rows, and a client that
/// stops reading stops the reads. A store error ends the body with that error.
pub struct CsvStream {
    rx: mpsc::Receiver<Result<Bytes, AdminError>>,
}

impl CsvStream {
    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, AdminError>> {
        self.rx.recv().await
    }
}

impl Body for CsvStream {
    type Data = Bytes;
    type Error = AdminError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AdminError>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
}

/// `GET /v1/admin/destinations/{destination}/audiences/{audience}/rejected.csv`: checks the
/// destination, audience and filter, then streams the rows.
pub async fn rejected_csv(
    state: Arc<AppState>,
    destination: &str,
    audience: &str,
    filter: Option<String>,
) -> Result<CsvStream, AdminError> {
    checked_filter(&filter)?;
    known_audience(&state, destination, audience).await?;
    let (tx, rx) = mpsc::channel(2);
    let (destination, audience) = (destination.to_string(), audience.to_string());
    tokio::spawn(async move {
        let mut after: Option<Identity> = None;
        let mut header = true;
        loop {
            let page = state
                .store
                .rejected_keys(
                    &destination,
                    &audience,
                    after.as_ref(),
                    filter.as_deref(),
                    MAX_LIMIT,
                )
                .await
                .map_err(AdminError::from);
            let chunk = page.and_then(|rows| {
                let chunk = csv_chunk(&rows, header)?;
                Ok((chunk, rows))
            });
            header = false;
            match chunk {
                Ok((bytes, rows)) => {
                    let last = rows.len() < MAX_LIMIT;
                    after = rows.last().map(|k| k.identity.clone());
                    if tx.send(Ok(bytes)).await.is_err() || last {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    Ok(CsvStream { rx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_read_as_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("@a"), "'@a");
        assert_eq!(csv_cell("jane@x.co"), "jane@x.co");
        let rows = [RejectedKey {
            identity: Identity::new(Some("a,\"b\"@x.co"), None),
            member: true,
            reason: Some("invalidEmails".into()),
            seq: 7,
            accepted_ms: 0,
            rejected_ms: None,
        }];
        let text = csv_chunk(&rows, true).expect("csv");
        assert_eq!(
            std::str::from_utf8(&text).expect("utf-8"),
            "email,userId,change,reason,seq,accepted,rejected\n\
             \"a,\"\"b\"\"@x.co\",,add,invalidEmails,7,1970-01-01T00:00:00.000Z,\n"
        );
    }
}
