//! The client side of HTTP/1.1 that the load engine and the concurrency study speak: GET requests
//! serialized once before the clock starts, sent on a keep-alive connection, and answers parsed
//! with httparse (the parser hyper itself uses) and framed by their `Content-Length`, chunked
//! coding or the end of the connection, as RFC 9112 section 6.3 orders it.
//!
//! Why not hyper's client: the engine must not be what is measured, and hyper's connection-level
//! client costs each request a trip through its dispatch channel, a response body channel and two
//! header maps. Measured with `bakeoff selftest` on the 2-CPU development machine, that put the
//! engine at 0.88x wrk's rate on `/version`; this path does one write and usually one read per
//! request, copies no body it does not check, and allocates nothing per request.
//!
//! Only what a benchmark of GET endpoints needs is here: no request bodies, no redirects, no
//! upgrades, no pipelining. A response the client cannot frame is a protocol error, never a guess.

use std::io::ErrorKind as IoErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much of an answer the connection holds at a time. A response head must fit in it; bodies
/// stream through it, whatever their length.
const BUFFER_BYTES: usize = 16 * 1024;
/// More header lines than this in one response is a protocol error (hyper's limit is 100).
const MAX_HEADERS: usize = 64;

/// How an exchange failed below HTTP semantics: the connection, the time or the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransportError {
    /// The TCP connection could not be made.
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The connection was closed or reset before the answer was complete.
    Reset,
    /// The answer was not valid HTTP.
    Protocol,
}

impl TransportError {
    /// The name used in results and reports: `connect`, `timeout`, `reset`, `protocol`.
    pub fn name(self) -> &'static str {
        match self {
            TransportError::Connect => "connect",
            TransportError::Timeout => "timeout",
            TransportError::Reset => "reset",
            TransportError::Protocol => "protocol",
        }
    }
}

/// A GET request as it goes on the wire: `GET {path} HTTP/1.1` with the `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest(Bytes);

impl GetRequest {
    /// The request for `path_and_query` (starting with `/`, without spaces or control
    /// characters) to the server at `address`.
    pub fn new(address: SocketAddr, path_and_query: &str) -> Result<GetRequest, String> {
        check_path(path_and_query)?;
        // `SocketAddr` displays an IPv6 address in brackets, as the Host header wants it.
        let text = format!("GET {path_and_query} HTTP/1.1\r\nHost: {address}\r\n\r\n");
        Ok(GetRequest(Bytes::from(text)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Checks that `path_and_query` can go on a request line as it is: it starts with `/` and holds
/// only visible ASCII (anything else must be percent-encoded) and no fragment.
pub fn check_path(path_and_query: &str) -> Result<(), String> {
    let valid = path_and_query.starts_with('/')
        && path_and_query
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'#');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{path_and_query:?} is not a request path: it must start with / and hold only visible ASCII, without #"
        ))
    }
}

/// What the caller wants done with a response body.
pub enum BodyUse<'a> {
    /// Count its bytes only.
    Count,
    /// Compare it with this (without keeping it).
    Compare(&'a [u8]),
    /// Append it here.
    Keep(&'a mut Vec<u8>),
}

/// A complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Body bytes after any chunked coding is removed.
    pub body_length: u64,
    /// With [`BodyUse::Compare`], whether the body was exactly the expected one; otherwise true.
    pub body_matches: bool,
    /// The answer carried a `Retry-After` header: a 503 with it is the contract's "come back
    /// later", one without it is a failure.
    pub retry_after: bool,
}

/// One keep-alive client connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Box<[u8]>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The server may take another request on this connection.
    reusable: bool,
}

impl Connection {
    /// Connects, within `timeout`.
    pub async fn open(
        address: SocketAddr,
        timeout: Duration,
    ) -> Result<Connection, TransportError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| TransportError::Connect)?
            .map_err(|_| TransportError::Connect)?;
        // Each request goes out in one write and waits for its answer: Nagle would only delay it.
        stream
            .set_nodelay(true)
            .map_err(|_| TransportError::Connect)?;
        Ok(Connection {
            stream,
            buffer: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            reusable: true,
        })
    }

    /// Whether another request may be sent: false after `Connection: close`, a body framed by
    /// the end of the connection, or any error.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Sends `request` and reads its whole answer. No timeout here: the caller bounds the call,
    /// and a connection whose exchange was abandoned must not be used again.
    pub async fn exchange(
        &mut self,
        request: &GetRequest,
        body: BodyUse<'_>,
    ) -> Result<Answer, TransportError> {
        if !self.reusable {
            return Err(TransportError::Reset);
        }
        // Marked reusable again only when the answer is complete and allows it.
        self.reusable = false;
        if self.start != self.end {
            // Bytes nobody asked for arrived after the previous answer.
            return Err(TransportError::Protocol);
        }
        self.start = 0;
        self.end = 0;
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| TransportError::Reset)?;
        let head = self.read_head().await?;
        let mut sink = BodySink::new(body);
        match head.framing {
            Framing::Empty => {}
            Framing::Length(length) => self.read_exact_body(length, &mut sink).await?,
            Framing::Chunked => self.read_chunked_body(&mut sink).await?,
            Framing::UntilClose => self.read_body_until_close(&mut sink).await?,
        }
        self.reusable = head.keep_alive && head.framing != Framing::UntilClose;
        Ok(Answer {
            status: head.status,
            body_length: sink.length,
            body_matches: sink.matches(),
            retry_after: head.retry_after,
        })
    }

    /// Sends `request` and returns the status and the whole body.
    pub async fn get(&mut self, request: &GetRequest) -> Result<(u16, Bytes), TransportError> {
        let mut body = Vec::new();
        let answer = self.exchange(request, BodyUse::Keep(&mut body)).await?;
        Ok((answer.status, Bytes::from(body)))
    }

    /// Reads bytes after the unread ones; `Ok(0)` is the end of the connection.
    async fn fill(&mut self) -> Result<usize, TransportError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buffer.len() {
            if self.start == 0 {
                // A head longer than the whole buffer.
                return Err(TransportError::Protocol);
            }
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buffer[self.end..]).await {
                Ok(read) => {
                    self.end += read;
                    return Ok(read);
                }
                Err(error) if error.kind() == IoErrorKind::Interrupted => continue,
                Err(_) => return Err(TransportError::Reset),
            }
        }
    }

    /// Reads the status line and headers of the final answer (skipping interim 1xx ones).
    async fn read_head(&mut self) -> Result<Head, TransportError> {
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buffer[self.start..self.end]) {
                    Ok(httparse::Status::Complete(head_length)) => {
                        Some((head_length, Head::of(&response)?))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(TransportError::Protocol),
                }
            };
            match parsed {
                Some((head_length, head)) => {
                    self.start += head_length;
                    if (100..200).contains(&head.status) {
                        // 101 would switch protocols, which a GET of this client never asks for.
                        if head.status == 101 {
                            return Err(TransportError::Protocol);
                        }
                        continue;
                    }
                    return Ok(head);
                }
                None => {
                    if self.fill().await? == 0 {
                        // Closed before a whole head: a keep-alive connection the server ended.
                        return Err(TransportError::Reset);
                    }
                }
            }
        }
    }

    /// Passes the next `length` body bytes to `sink`.
    async fn read_exact_body(
        &mut self,
        mut length: u64,
        sink: &mut BodySink<'_>,
    ) -> Result<(), TransportError> {
        loop {
            let available = (self.end - self.start) as u64;
            let taken = available.min(length) as usize;
            sink.take(&self.buffer[self.start..self.start + taken]);
            self.start += taken;
            length -= taken as u64;
            if length == 0 {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return Err(TransportError::Reset);
            }
        }
    }

    /// Decodes a chunked body: size lines, data, the last chunk and any trailer lines.
    async fn read_chunked_body(&mut self, sink: &mut BodySink<'_>) -> Result<(), TransportError> {
        loop {
            let size_line = httparse::parse_chunk_size(&self.buffer[self.start..self.end])
                .map_err(|_| TransportError::Protocol)?;
            let httparse::Status::Complete((line_length, size)) = size_line else {
                if self.fill().await? == 0 {
                    return Err(TransportError::Reset);
                }
                continue;
            };
            self.start += line_length;
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.read_exact_body(size, sink).await?;
            self.expect_line_end().await?;
        }
    }

    /// Skips trailer lines up to and including the empty line that ends the message.
    async fn skip_trailers(&mut self) -> Result<(), TransportError> {
        loop {
            let unread = &self.buffer[self.start..self.end];
            match unread.windows(2).position(|pair| pair == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(line) => self.start += line + 2,
                None => {
                    if self.fill().await? == 0 {
                        return Err(TransportError::Reset);
                    }
                }
            }
        }
    }

    /// Consumes the CRLF after a chunk's data.
    async fn expect_line_end(&mut self) -> Result<(), TransportError> {
        while self.end - self.start < 2 {
            if self.fill().await? == 0 {
                return Err(TransportError::Reset);
            }
        }
        if &self.buffer[self.start..self.start + 2] != b"\r\n" {
            return Err(TransportError::Protocol);
        }
        self.start += 2;
        Ok(())
    }

    /// A body without a length: everything up to the end of the connection.
    async fn read_body_until_close(
        &mut self,
        sink: &mut BodySink<'_>,
    ) -> Result<(), TransportError> {
        loop {
            sink.take(&self.buffer[self.start..self.end]);
            self.start = self.end;
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the client needs of a response head.
#[derive(Debug, Clone, Copy)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
    retry_after: bool,
}

impl Head {
    /// Framing by RFC 9112 section 6.3 (for the answer to a GET): no body for 1xx, 204 and 304;
    /// then Transfer-Encoding (chunked last, or else until close); then Content-Length (all
    /// values equal); then until close.
    fn of(response: &httparse::Response<'_, '_>) -> Result<Head, TransportError> {
        let status = response.code.ok_or(TransportError::Protocol)?;
        let http_1_1 = response.version == Some(1);
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding_seen = false;
        let mut chunked_last = false;
        let mut close = false;
        let mut keep_alive = false;
        let mut retry_after = false;
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .ok_or(TransportError::Protocol)?;
                if content_length.is_some_and(|earlier| earlier != value) {
                    return Err(TransportError::Protocol);
                }
                content_length = Some(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding_seen = true;
                // Codings are listed in the order applied; only the last one frames the body.
                chunked_last = header
                    .value
                    .split(|&byte| byte == b',')
                    .next_back()
                    .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in header.value.split(|&byte| byte == b',') {
                    let token = token.trim_ascii();
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("retry-after") {
                retry_after = true;
            }
        }
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if transfer_encoding_seen {
            if chunked_last {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else {
            match content_length {
                Some(0) => Framing::Empty,
                Some(length) => Framing::Length(length),
                None => Framing::UntilClose,
            }
        };
        Ok(Head {
            status,
            framing,
            keep_alive: !close && (http_1_1 || keep_alive),
            retry_after,
        })
    }
}

/// Receives body bytes as they arrive, in the way [`BodyUse`] asks.
struct BodySink<'a> {
    body: BodyUse<'a>,
    length: u64,
    /// With `Compare`: every byte so far equals the expected one at its offset.
    same_so_far: bool,
}

impl<'a> BodySink<'a> {
    fn new(body: BodyUse<'a>) -> BodySink<'a> {
        BodySink {
            body,
            length: 0,
            same_so_far: true,
        }
    }

    fn take(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match &mut self.body {
            BodyUse::Count => {}
            BodyUse::Compare(expected) => {
                let offset = usize::try_from(self.length).unwrap_or(usize::MAX);
                let expected_part = expected
                    .get(offset..)
                    .and_then(|rest| rest.get(..data.len()));
                self.same_so_far &= expected_part == Some(data);
            }
            BodyUse::Keep(kept) => kept.extend_from_slice(data),
        }
        self.length += data.len() as u64;
    }

    fn matches(&self) -> bool {
        match &self.body {
            BodyUse::Compare(expected) => self.same_so_far && self.length == expected.len() as u64,
            BodyUse::Count | BodyUse::Keep(_) => true,
        }
    }
}

/// One GET on a fresh connection: the status and the whole body. For readiness checks and
/// one-off requests, not for load.
pub async fn get_once(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Bytes), TransportError> {
    let request = GetRequest::new(address, path).map_err(|_| TransportError::Protocol)?;
    let exchange = async {
        Connection::open(address, timeout)
            .await?
            .get(&request)
            .await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| TransportError::Timeout)?
}
