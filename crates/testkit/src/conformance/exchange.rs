//! Sending a request and reading its answer: over reqwest, or for HEAD over a raw connection;
//! every answer's status, headers, JSON and OpenAPI schema checked before its body is compared.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Checker;

/// A response as the checks see it.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub status: u16,
    /// Every header as received, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// Every value of the header `name` (lower case).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The value of the header `name` (lower case), if it came exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.header_values(name).as_slice() {
            [value] => Some(value),
            _ => None,
        }
    }
}

impl Checker<'_> {
    /// Sends a request; a transport failure is recorded as a failed check.
    pub(super) async fn send(&mut self, method: reqwest::Method, path: &str) -> Option<Answer> {
        let url = format!("{}{}", self.target.base_url, path);
        let result = async {
            let response = self.http.request(method.clone(), &url).send().await?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Answer {
                status,
                headers,
                body,
            })
        }
        .await;
        match result {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.fail(format!("{method} {path}: request failed: {error}"));
                None
            }
        }
    }

    /// Checks status, headers, the OpenAPI schema, and returns the parsed body.
    pub(super) async fn fetch(&mut self, path: &str, status: u16) -> Option<(Answer, Value)> {
        self.report.checks += 1;
        let answer = self.send(reqwest::Method::GET, path).await?;
        self.check_envelope(answer, "GET", path, status)
    }

    pub(super) fn check_envelope(
        &mut self,
        answer: Answer,
        method: &str,
        path: &str,
        status: u16,
    ) -> Option<(Answer, Value)> {
        let preview =
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
        // The headers go with the status the server chose, so a wrong status (a 503 in the middle
        // of a run, say) is checked for its own headers too.
        self.check_headers(&format!("{method} {path}"), &answer);
        if answer.status != status {
            self.fail(format!(
                "{method} {path}: status {} (expected {status}); body {preview}",
                answer.status
            ));
            return None;
        }
        let value: Value = match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(error) => {
                self.fail(format!(
                    "{method} {path}: body is not JSON ({error}): {preview}"
                ));
                return None;
            }
        };
        if method == "GET"
            && let Err(error) = self.openapi.validate(path, status, &value)
        {
            self.fail(format!("{error:#}"));
        }
        Some((answer, value))
    }

    /// Sends `HEAD path` on a connection of its own with `Connection: close` and reads until the
    /// server closes it, so that bytes sent after the headers are seen: an HTTP client would
    /// drop them, knowing that an answer to HEAD has no body.
    pub(super) async fn send_head(&mut self, path: &str) -> Option<Answer> {
        match self.head_over_tcp(path).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                self.fail(format!("HEAD {path}: {error:#}"));
                None
            }
        }
    }

    pub(super) async fn head_over_tcp(&self, path: &str) -> Result<Answer> {
        const LIMIT: Duration = Duration::from_secs(30);
        let url = url::Url::parse(&self.target.base_url)
            .with_context(|| format!("{} is not a URL", self.target.base_url))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "HEAD is checked over plain TCP, which needs an http:// URL (got {})",
            self.target.base_url
        );
        let host = url.host_str().context("the base URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&authority)
                .await
                .with_context(|| format!("connecting to {authority}"))?;
            let request =
                format!("HEAD {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .context("sending the request")?;
            let mut received = Vec::new();
            stream
                .read_to_end(&mut received)
                .await
                .context("reading the answer")?;
            Ok::<_, anyhow::Error>(received)
        };
        let received = tokio::time::timeout(LIMIT, exchange).await.with_context(|| {
            format!("no complete answer within {LIMIT:?} (the connection stayed open after `Connection: close`?)")
        })??;

        let mut header_slots = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut header_slots);
        let head_length = match response.parse(&received) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => anyhow::bail!(
                "the connection closed within the headers: {:?}",
                String::from_utf8_lossy(&received)
            ),
            Err(error) => anyhow::bail!(
                "not an HTTP answer ({error}): {:?}",
                String::from_utf8_lossy(&received[..received.len().min(300)])
            ),
        };
        Ok(Answer {
            status: response.code.unwrap_or(0),
            headers: response
                .headers
                .iter()
                .map(|header| {
                    (
                        header.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(header.value).into_owned(),
                    )
                })
                .collect(),
            body: received[head_length..].to_vec(),
        })
    }
}
