//! Each timeout of a connection, on an in-memory stream with Tokio's clock paused: the
//! connection closes when (and only when) the client is too slow, and the elapsed time is the
//! virtual clock's, exact and independent of the machine's load.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use listener::{Body, LINGER_TIME, LINGER_TIMEOUT, Limits, serve_connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

fn limits() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(75),
        body_min_rate: 1000,
        body_grace: Duration::from_secs(5),
        write_timeout: Duration::from_secs(30),
        max_connections: None,
    }
}

/// Reads the body; `GET /work` works for 300 s first; `GET /big` answers 1 MB; `/refuse`
/// answers `400` and `Connection: close` without reading the body (as a body refused by its
/// declared size is).
async fn handler(req: Request<Body>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/work" {
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
    if path == "/big" {
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; 1 << 20]))));
    }
    if path == "/refuse" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"refused")));
        *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
        r.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        return Ok(r);
    }
    let text = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(c) => format!("got {}", c.to_bytes().len()),
        Err(e) => format!("body failed: {e}"),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A connection served with `limits`; returns the client's end, the server's task (which gives
/// the moment it closed the connection) and the shutdown switch.
fn connect(limits: Limits) -> (DuplexStream, JoinHandle<Instant>, watch::Sender<bool>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve_connection(server, limits, handler, rx).await;
        Instant::now()
    });
    (client, task, tx)
}

/// Without a timeout, a connection would stay open for ever: the tests give up after this much
/// virtual time (which passes at once when nothing else happens).
const NEVER: Duration = Duration::from_secs(24 * 3600);

/// Reads until the server closes; returns what was read.
async fn read_to_close(c: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(NEVER, c.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "the connection was never closed");
    String::from_utf8_lossy(&out).into_owned()
}

/// When the server closed the connection.
async fn closed(task: JoinHandle<Instant>) -> Instant {
    tokio::time::timeout(NEVER, task)
        .await
        .expect("the connection was never closed")
        .expect("server task")
}

/// Reads one response (head and a short body) without waiting for the close.
async fn read_response(c: &mut DuplexStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let t0 = Instant::now();
    let (mut c, task, _tx) = connect(limits());
    assert_eq!(read_to_close(&mut c).await, "");
    let closed = closed(task).await;
    assert_eq!(closed - t0, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn half_a_header_dripped_byte_by_byte_is_closed_after_the_header_timeout() {
    let t0 = Instant::now();
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One more header byte every 2 s buys nothing.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if task.is_finished() || c.write_all(b"X").await.is_err() {
            break;
        }
    }
    let closed = closed(task).await;
    assert_eq!(closed - t0, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let (mut c, task, _tx) = connect(limits());
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let first = read_response(&mut c).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let answered = Instant::now();
    // A second request 70 s later is still served on the same connection.
    tokio::time::sleep(Duration::from_secs(70)).await;
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let second = read_response(&mut c).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let answered_again = Instant::now();
    assert_eq!(answered_again - answered, Duration::from_secs(70));
    assert_eq!(read_to_close(&mut c).await, "");
    let closed = closed(task).await;
    assert_eq!(closed - answered_again, Duration::from_secs(75));
}

#[tokio::test(start_paused = true)]
async fn one_byte_of_a_body_is_cut_off_after_the_grace() {
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\na")
        .await
        .expect("write");
    let t0 = Instant::now();
    let closed = closed(task).await;
    // 5 s of grace, and 1 ms for the byte at 1000 B/s.
    assert_eq!(closed - t0, Duration::from_millis(5001));
}

#[tokio::test(start_paused = true)]
async fn a_body_dripped_a_byte_every_two_seconds_is_cut_off() {
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("write");
    let t0 = Instant::now();
    for _ in 0..50 {
        if task.is_finished() || c.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let closed = closed(task).await;
    // Three bytes by then: 5 s of grace and 3 ms.
    assert_eq!(closed - t0, Duration::from_millis(5003));
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_above_the_minimum_rate_is_read_to_the_end() {
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
        .await
        .expect("write");
    // 1,000 bytes every 0.5 s: 2,000 B/s for 10 s, twice the minimum.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.write_all(&[b'a'; 1000]).await.expect("write");
    }
    let answer = read_response(&mut c).await;
    assert!(answer.ends_with("got 20000"), "{answer}");
    assert!(!task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_works_long_is_not_cut_off() {
    let (mut c, _task, _tx) = connect(limits());
    c.write_all(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let t0 = Instant::now();
    let answer = read_response(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(t0.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn an_unread_response_is_dropped_after_the_write_timeout() {
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let t0 = Instant::now();
    // The client reads nothing: 1 MB does not fit the 64 KB pipe.
    let closed = closed(task).await;
    assert_eq!(closed - t0, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_the_request_in_progress_then_closes() {
    let (mut c, task, tx) = connect(limits());
    c.write_all(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.send(true).expect("shutdown");
    let answer = read_to_close(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    closed(task).await;
}

/// A body refused unread: the header of a 1 MB POST to `/refuse`.
const REFUSED_HEAD: &[u8] = b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";

/// A connection whose request, [`REFUSED_HEAD`], was answered `400`; the answer.
async fn refused() -> (
    DuplexStream,
    JoinHandle<Instant>,
    watch::Sender<bool>,
    String,
) {
    let (mut c, task, tx) = connect(limits());
    c.write_all(REFUSED_HEAD).await.expect("write");
    let answer = read_response(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    (c, task, tx, answer)
}

#[tokio::test(start_paused = true)]
async fn a_client_still_sending_a_refused_body_can_finish_and_gets_a_clean_close() {
    let (mut c, task, _tx, answer) = refused().await;
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("refused"), "{answer}");
    let t0 = Instant::now();
    // The whole body, 16 times what the pipe holds, after the answer: the server reads and
    // drops it (closing its end instead would fail these writes with a broken pipe, as a
    // reset does on a socket).
    for _ in 0..100 {
        c.write_all(&[b'a'; 10_000])
            .await
            .expect("write after the answer");
    }
    c.shutdown().await.expect("client's close");
    // Then the end of the stream, not an error, and nothing more.
    assert_eq!(read_to_close(&mut c).await, "");
    assert_eq!(closed(task).await, t0);
}

#[tokio::test(start_paused = true)]
async fn lingering_ends_when_the_client_stops_sending_or_sends_for_too_long() {
    // Silent after the answer (its side left open): closed LINGER_TIMEOUT after its last bytes.
    let (mut c, task, _tx, _) = refused().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.write_all(&[b'a'; 1000]).await.expect("write");
    let last = Instant::now();
    assert_eq!(closed(task).await - last, LINGER_TIMEOUT);

    // Dripping a byte a second keeps it for LINGER_TIME at most.
    let (mut c, task, _tx, _) = refused().await;
    let since = Instant::now();
    for _ in 0..100 {
        if task.is_finished() || c.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(closed(task).await - since, LINGER_TIME);
}

#[tokio::test(start_paused = true)]
async fn a_body_read_to_its_end_does_not_linger() {
    let (mut c, task, _tx) = connect(limits());
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .expect("write");
    let t0 = Instant::now();
    // The client keeps its side open: the server closes at once all the same.
    assert!(read_to_close(&mut c).await.ends_with("got 3"));
    assert_eq!(closed(task).await, t0);
}
