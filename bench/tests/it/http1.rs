//! The engine's HTTP/1.1 client against a scripted TCP server that answers every request with
//! given bytes: each way a body can be framed, interim answers, heads split across reads, bodies
//! larger than the client's buffer, and the malformed or cut-short answers that must come out as
//! the right error kind.

use std::net::SocketAddr;
use std::time::Duration;

use bakeoff::http1::{BodyUse, Connection, GetRequest, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(5);

/// How the scripted server sends its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// In one write, keeping the connection open for the next request.
    Whole,
    /// One byte per write, with pauses, so the client sees every partial state.
    Dribbled,
    /// In one write, then the connection is closed.
    ThenClose,
}

/// Starts a server that answers each request on each connection with `answer`.
async fn scripted_server(answer: Vec<u8>, delivery: Delivery) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    // Read one request head.
                    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => received.extend_from_slice(&chunk[..read]),
                        }
                    }
                    received.clear();
                    match delivery {
                        Delivery::Whole | Delivery::ThenClose => {
                            if socket.write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                        Delivery::Dribbled => {
                            for byte in &answer {
                                if socket.write_all(&[*byte]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_micros(200)).await;
                            }
                        }
                    }
                    if delivery == Delivery::ThenClose {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// Sends `GET /` on one connection and keeps the body.
async fn get(address: SocketAddr) -> (Connection, Result<(u16, Vec<u8>), TransportError>) {
    let mut connection = Connection::open(address, TIMEOUT).await.unwrap();
    let request = GetRequest::new(address, "/").unwrap();
    let mut body = Vec::new();
    let result = tokio::time::timeout(
        TIMEOUT,
        connection.exchange(&request, BodyUse::Keep(&mut body)),
    )
    .await
    .expect("the client finished within the timeout");
    let result = result.map(|answer| {
        assert_eq!(answer.body_length, body.len() as u64);
        (answer.status, body)
    });
    (connection, result)
}

#[tokio::test]
async fn frames_every_kind_of_answer() {
    let large_body = "x".repeat(100_000);
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                   5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n";
    // (case, answer, delivery, expected status, expected body, connection still usable)
    let cases: Vec<(&str, String, Delivery, u16, String, bool)> = vec![
        (
            "content-length",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".into(),
            Delivery::Whole,
            200,
            "hello".into(),
            true,
        ),
        (
            "content-length, dribbled",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".into(),
            Delivery::Dribbled,
            200,
            "hello".into(),
            true,
        ),
        (
            "chunked with an extension and a trailer",
            chunked.into(),
            Delivery::Whole,
            200,
            "hello world".into(),
            true,
        ),
        (
            "chunked, dribbled",
            chunked.into(),
            Delivery::Dribbled,
            200,
            "hello world".into(),
            true,
        ),
        (
            "body larger than the client's buffer",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{large_body}",
                large_body.len()
            ),
            Delivery::Whole,
            200,
            large_body.clone(),
            true,
        ),
        (
            "no length: the body ends with the connection",
            "HTTP/1.1 200 OK\r\n\r\nuntil the end".into(),
            Delivery::ThenClose,
            200,
            "until the end".into(),
            false,
        ),
        (
            "Connection: close",
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"
                .into(),
            Delivery::ThenClose,
            503,
            "no".into(),
            false,
        ),
        (
            "HTTP/1.0 closes unless asked otherwise",
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".into(),
            Delivery::Whole,
            200,
            "ok".into(),
            false,
        ),
        (
            "HTTP/1.0 with keep-alive",
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok".into(),
            Delivery::Whole,
            200,
            "ok".into(),
            true,
        ),
        (
            "an interim 100 before the answer",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnot"
                .into(),
            Delivery::Whole,
            404,
            "not".into(),
            true,
        ),
        (
            "204 has no body whatever it says",
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n".into(),
            Delivery::Whole,
            204,
            String::new(),
            true,
        ),
    ];
    for (case, answer, delivery, status, body, reusable) in cases {
        let address = scripted_server(answer.into_bytes(), delivery).await;
        let (mut connection, result) = get(address).await;
        assert_eq!(
            result,
            Ok((status, body.clone().into_bytes())),
            "case: {case}"
        );
        assert_eq!(connection.is_reusable(), reusable, "case: {case}");
        if reusable {
            // The same connection carries the next exchange, with the same answer.
            let request = GetRequest::new(address, "/again").unwrap();
            let again = connection.get(&request).await;
            assert_eq!(
                again,
                Ok((status, body.into_bytes().into())),
                "case: {case}"
            );
        }
    }
}

#[tokio::test]
async fn reports_bad_and_cut_short_answers_by_kind() {
    let cases: Vec<(&str, Vec<u8>, Delivery, TransportError)> = vec![
        (
            "not HTTP",
            b"HTPX/1.1 200 OK\r\n\r\n".to_vec(),
            Delivery::Whole,
            TransportError::Protocol,
        ),
        (
            "conflicting lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            Delivery::Whole,
            TransportError::Protocol,
        ),
        (
            "a length that is not a number",
            b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nabc".to_vec(),
            Delivery::Whole,
            TransportError::Protocol,
        ),
        (
            "a bad chunk size",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            Delivery::Whole,
            TransportError::Protocol,
        ),
        (
            "a head larger than the client's buffer",
            format!(
                "HTTP/1.1 200 OK\r\nX-Padding: {}\r\n\r\n",
                "p".repeat(20_000)
            )
            .into_bytes(),
            Delivery::Whole,
            TransportError::Protocol,
        ),
        (
            "closed in the middle of the body",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
            Delivery::ThenClose,
            TransportError::Reset,
        ),
        (
            "closed in the middle of a chunked body",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".to_vec(),
            Delivery::ThenClose,
            TransportError::Reset,
        ),
        (
            "closed without an answer",
            Vec::new(),
            Delivery::ThenClose,
            TransportError::Reset,
        ),
    ];
    for (case, answer, delivery, kind) in cases {
        let address = scripted_server(answer, delivery).await;
        let (connection, result) = get(address).await;
        assert_eq!(result, Err(kind), "case: {case}");
        assert!(!connection.is_reusable(), "case: {case}");
    }
}

#[tokio::test]
async fn compares_bodies_without_keeping_them() {
    let address = scripted_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world".to_vec(),
        Delivery::Dribbled,
    )
    .await;
    let request = GetRequest::new(address, "/").unwrap();
    let mut connection = Connection::open(address, TIMEOUT).await.unwrap();
    // (expected body, whether it matches): equal, different, a prefix, a longer one.
    for (expected, matches) in [
        (&b"hello world"[..], true),
        (b"hello World", false),
        (b"hello", false),
        (b"hello world!", false),
    ] {
        let answer = connection
            .exchange(&request, BodyUse::Compare(expected))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_length, 11);
        assert_eq!(
            answer.body_matches,
            matches,
            "expected {:?}",
            String::from_utf8_lossy(expected)
        );
    }
}

#[test]
fn refuses_paths_that_cannot_go_on_a_request_line() {
    let address: SocketAddr = "127.0.0.1:80".parse().unwrap();
    for path in ["", "version", "/a b", "/a\r\nX: y", "/é", "/a#b"] {
        assert!(GetRequest::new(address, path).is_err(), "{path:?}");
    }
    let request = GetRequest::new("[::1]:8080".parse().unwrap(), "/contacts?starts=Ab").unwrap();
    assert_eq!(
        request.as_bytes(),
        b"GET /contacts?starts=Ab HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
    );
}
