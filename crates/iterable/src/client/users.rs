//! `GET /api/lists/getUsers` streamed: the identifiers reach a [`UserLines`] line by line as
//! the body arrives, so reading a list of millions holds one chunk at a time, never the body.
//! The call goes through the rate limiter (5 a minute per project) and is retried as any
//! other; a retried attempt starts the lines over.

use std::time::Duration;

use reqwest::Method;

use super::{Client, ErrorKind, IterableError, retry_after_of, scrub};
use crate::limiter::Endpoint;

/// The longest a whole `getUsers` body may take (each chunk must still come within the
/// client's timeout).
const WHOLE_BODY: Duration = Duration::from_secs(2 * 60 * 60);

/// What receives the lines of `getUsers` as they arrive.
pub trait UserLines: Send {
    /// An attempt starts (again): forget the lines of a failed one.
    fn restart(&mut self);
    /// One identifier: not empty, without its line end.
    fn line(&mut self, line: &str);
}

/// Splits a body into lines across chunk boundaries.
#[derive(Debug, Default)]
struct Splitter {
    /// The start of a line whose end has not arrived yet.
    carry: Vec<u8>,
}

impl Splitter {
    fn feed(&mut self, mut chunk: &[u8], sink: &mut dyn UserLines) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.carry.is_empty() {
                emit(&chunk[..end], sink);
            } else {
                self.carry.extend_from_slice(&chunk[..end]);
                emit(&self.carry, sink);
                self.carry.clear();
            }
            chunk = &chunk[end + 1..];
        }
        self.carry.extend_from_slice(chunk);
    }

    fn finish(&mut self, sink: &mut dyn UserLines) {
        emit(&self.carry, sink);
        self.carry.clear();
    }
}

fn emit(line: &[u8], sink: &mut dyn UserLines) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return;
    }
    sink.line(&String::from_utf8_lossy(line));
}

impl Client {
    /// `GET /api/lists/getUsers?listId=ID&preferUserId=..`, each identifier given to `sink`
    /// as it arrives. Returns the bytes of the body.
    pub async fn get_users_streamed(
        &self,
        id: i64,
        prefer_user_id: bool,
        sink: &mut dyn UserLines,
    ) -> Result<u64, IterableError> {
        let mut attempt = 1;
        loop {
            sink.restart();
            match self.users_attempt(id, prefer_user_id, sink).await {
                Ok(bytes) => return Ok(bytes),
                Err(mut e) => {
                    e.attempts = attempt;
                    let wait = retry::again(
                        &self.backoff,
                        e.class,
                        e.retry_after,
                        attempt,
                        true,
                        retry::random_fraction(),
                    );
                    let Some(wait) = wait else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn users_attempt(
        &self,
        id: i64,
        prefer_user_id: bool,
        sink: &mut dyn UserLines,
    ) -> Result<u64, IterableError> {
        const EP: Endpoint = Endpoint::GetUsers;
        self.limiter.acquire(EP).await;
        let url = format!(
            "{}/api/lists/getUsers?listId={id}&preferUserId={prefer_user_id}",
            self.base
        );
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Transport
            };
            IterableError::transport(EP, kind, scrub(e.to_string(), &self.key))
        };
        let mut resp = self
            .http
            .request(Method::GET, url)
            .header("Api-Key", self.key.expose())
            .timeout(WHOLE_BODY)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after_of(&resp);
            let body = self.next_chunk(&mut resp).await;
            let body = body.ok().flatten().unwrap_or_default();
            return Err(self.status_error(EP, status, retry_after, &body));
        }
        let mut split = Splitter::default();
        let mut bytes = 0u64;
        while let Some(chunk) = self.next_chunk(&mut resp).await? {
            bytes += chunk.len() as u64;
            split.feed(&chunk, sink);
        }
        split.finish(sink);
        Ok(bytes)
    }

    /// The next chunk of a body, waiting at most the client's timeout for it.
    async fn next_chunk(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, IterableError> {
        const EP: Endpoint = Endpoint::GetUsers;
        match tokio::time::timeout(self.timeout, resp.chunk()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Transport
                };
                Err(IterableError::transport(
                    EP,
                    kind,
                    scrub(e.to_string(), &self.key),
                ))
            }
            Err(_) => Err(IterableError::transport(
                EP,
                ErrorKind::Timeout,
                format!("no data for {} s", self.timeout.as_secs()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Vec<String>, usize);

    impl UserLines for Lines {
        fn restart(&mut self) {
            self.0.clear();
            self.1 += 1;
        }
        fn line(&mut self, line: &str) {
            self.0.push(line.to_string());
        }
    }

    #[test]
    fn lines_are_split_across_chunks_whatever_the_cut() {
        let body = b"a@x.co\r\nbb@x.co\n\nccc\nd";
        for cut in 0..body.len() {
            for cut2 in cut..body.len() {
                let mut l = Lines::default();
                let mut s = Splitter::default();
                s.feed(&body[..cut], &mut l);
                s.feed(&body[cut..cut2], &mut l);
                s.feed(&body[cut2..], &mut l);
                s.finish(&mut l);
                assert_eq!(l.0, ["a@x.co", "bb@x.co", "ccc", "d"], "cuts {cut} {cut2}");
            }
        }
    }
}
