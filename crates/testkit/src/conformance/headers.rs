//! The contract's headers: `Content-Type` on every answer, those a status carries (`Allow` on a
//! 405, `Retry-After` on a 503), and HEAD answered as GET is, without the body.

use anyhow::Result;

use super::Checker;
use super::exchange::Answer;

/// The `Content-Type` of every answer of the contract, success or error.
pub const CONTENT_TYPE: &str = "application/json";

/// The headers the contract adds to an answer by its status: (status, header name, value).
pub const HEADERS_BY_STATUS: [(u16, &str, &str); 2] = [
    // Every path answers GET and HEAD, in this spelling on every variant.
    (405, "allow", "GET, HEAD"),
    // While the database is unavailable (or a handler ran out of time): retry in a second.
    (503, "retry-after", "1"),
];

/// Paths whose HEAD must answer as their GET does, with its status: the same headers, the GET
/// body's length as `Content-Length`, and no body. Their bodies do not change between two
/// requests, so the lengths can be compared. A contact that exists and one that does not are
/// added from the database.
const HEAD_PATHS: &[(&str, u16)] = &[
    ("/version", 200),
    ("/types/", 200),
    ("/contacts?limit=3&offset=1", 200),
    // Over 32 KiB, where some servers switch to chunked coding.
    ("/contacts?limit=200", 200),
    ("/fibonacci/20", 200),
    ("/openapi.json", 200),
    ("/contacts/0", 400),
    ("/contacts?limit=0&offset=-1", 400),
    ("/fibonacci/41/", 400),
    ("/test/sync-cpubound/0", 400),
    ("/nope", 404),
    ("/contacts/1/extra", 404),
];

/// Whether a header value means what the contract's does, for servers that need not spell it
/// the same: a media type with parameters, methods in another order or spacing, another delay.
fn equivalent_header(name: &str, got: &str, expected: &str) -> bool {
    match name {
        "content-type" => got
            .split(';')
            .next()
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected)),
        "allow" => {
            let methods = |list: &str| {
                let mut methods: Vec<String> = list
                    .split(',')
                    .map(|method| method.trim().to_string())
                    .filter(|method| !method.is_empty())
                    .collect();
                methods.sort();
                methods
            };
            methods(got) == methods(expected)
        }
        "retry-after" => got.trim().parse::<u64>().is_ok(),
        _ => got == expected,
    }
}

impl Checker<'_> {
    /// Checks the contract's headers of one answer: `Content-Type`, and those its status
    /// carries ([`HEADERS_BY_STATUS`]), each exactly once.
    pub(super) fn check_headers(&mut self, what: &str, answer: &Answer) {
        let expected = std::iter::once(("content-type", CONTENT_TYPE)).chain(
            HEADERS_BY_STATUS
                .iter()
                .filter(|(status, _, _)| *status == answer.status)
                .map(|&(_, name, value)| (name, value)),
        );
        for (name, value) in expected {
            let got = answer.header_values(name);
            let matches = match got.as_slice() {
                [one] if self.target.exact_bytes => *one == value,
                [one] => equivalent_header(name, one, value),
                _ => false,
            };
            if matches {
                continue;
            }
            let got = match got.as_slice() {
                [] => "missing".to_string(),
                [one] => format!("{one:?}"),
                many => format!("sent {} times: {many:?}", many.len()),
            };
            self.fail(format!(
                "{what}: answered {} with header {name} {got} (expected {value:?})",
                answer.status
            ));
        }
    }

    /// HEAD answers as GET does, without the body: for each path, the GET's status, the
    /// contract's headers, `Content-Length` equal to the GET body's length, and nothing after
    /// the headers.
    pub(super) async fn check_head(&mut self) -> Result<()> {
        let mut paths: Vec<(String, u16)> = HEAD_PATHS
            .iter()
            .map(|&(path, status)| (path.to_string(), status))
            .collect();
        let ids = self
            .database
            .query_one(
                "SELECT min(contact_id), coalesce(max(contact_id), 0) FROM contacts",
                &[],
            )
            .await?;
        if let Some(first) = ids.get::<_, Option<i32>>(0) {
            paths.push((format!("/contacts/{first}"), 200));
        }
        let last: i32 = ids.get(1);
        if last < i32::MAX {
            paths.push((format!("/contacts/{}/", last + 1), 404));
        }

        for (path, status) in paths {
            self.report.checks += 1;
            let Some(get) = self.send(reqwest::Method::GET, &path).await else {
                continue;
            };
            if get.status != status {
                self.fail(format!(
                    "GET {path}: status {} (expected {status}), so its HEAD cannot be compared",
                    get.status
                ));
                continue;
            }
            let Some(head) = self.send_head(&path).await else {
                continue;
            };
            let what = format!("HEAD {path}");
            if head.status != status {
                self.fail(format!(
                    "{what}: status {} (the GET's is {status})",
                    head.status
                ));
                continue;
            }
            self.check_headers(&what, &head);
            let length = head.header("content-length");
            if length.and_then(|length| length.parse::<usize>().ok()) != Some(get.body.len()) {
                self.fail(format!(
                    "{what}: Content-Length {length:?} (the GET's body is {} bytes)",
                    get.body.len()
                ));
            }
            if !head.body.is_empty() {
                self.fail(format!(
                    "{what}: {} bytes after the headers (a HEAD answer has no body): {}",
                    head.body.len(),
                    String::from_utf8_lossy(&head.body[..head.body.len().min(200)])
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_headers_may_be_spelled_otherwise_but_must_mean_the_same() {
        assert!(equivalent_header("allow", "HEAD,GET", "GET, HEAD"));
        assert!(!equivalent_header("allow", "GET", "GET, HEAD"));
        assert!(!equivalent_header("allow", "GET, HEAD, POST", "GET, HEAD"));
        assert!(equivalent_header(
            "content-type",
            "Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(!equivalent_header(
            "content-type",
            "text/plain",
            "application/json"
        ));
        assert!(equivalent_header("retry-after", "5", "1"));
        assert!(!equivalent_header("retry-after", "soon", "1"));
    }
}
