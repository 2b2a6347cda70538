//! Plain HTTP/1.1 GETs to a registry pod's address (the operator reaches
//! pod IPs as any pod of the cluster does): its `/readyz`, and the
//! operations endpoints beside its `/metrics` (`berth_config::ops`). A
//! short timeout, a bounded answer, `Connection: close`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::render::ProbeTarget;

/// How long one pod may take to answer (the kubelet's probe allows 2 s too).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an answer read (a /readyz body is a few words, the JSON
/// answers a few hundred bytes).
const MAX_ANSWER: u64 = 16 * 1024;

/// `GET path` on the pod: its status and body, within [`TIMEOUT`].
pub(crate) async fn get(target: &ProbeTarget, path: &str) -> std::io::Result<(u16, String)> {
    match tokio::time::timeout(TIMEOUT, get_once(target, path)).await {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {TIMEOUT:?}"),
        )),
    }
}

/// `GET path` answered 200 with a JSON body of type `T`; None otherwise
/// (logged at debug: a pod that does not answer says nothing).
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    target: &ProbeTarget,
    path: &str,
) -> Option<T> {
    match get(target, path).await {
        Ok((200, body)) => match serde_json::from_str(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(pod = %target.pod, %path, error = %e, "not the JSON expected");
                None
            }
        },
        Ok((status, _)) => {
            tracing::debug!(pod = %target.pod, %path, status, "answered");
            None
        }
        Err(e) => {
            tracing::debug!(pod = %target.pod, %path, error = %e, "no answer");
            None
        }
    }
}

async fn get_once(target: &ProbeTarget, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((target.ip.as_str(), target.port)).await?;
    let host = if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-operator\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // Until the body its framing announces is there, or the end (the
    // request said `Connection: close`).
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if let Some((status, body, true)) = parse_response(&answer) {
            return Ok((status, body));
        }
        if answer.len() as u64 > MAX_ANSWER {
            break;
        }
    }
    parse_response(&answer)
        .map(|(status, body, _)| (status, body))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// The status and body of an HTTP/1.x response (a chunked body decoded),
/// and whether its framing (Content-Length, chunks) says it is complete;
/// None while it is not an HTTP response, or not one complete by its framing.
fn parse_response(bytes: &[u8]) -> Option<(u16, String, bool)> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let body = &bytes[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut words = status_line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = words.next()?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let (body, framed) = if chunked {
        (dechunk(body)?, true)
    } else {
        match length {
            Some(n) => (body.get(..n)?.to_vec(), true),
            None => (body.to_vec(), false),
        }
    };
    Some((status, String::from_utf8_lossy(&body).into_owned(), framed))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_chunks_or_neither() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nready"),
            Some((200, "ready".into(), true))
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nmetadata\r\n12\r\n store unreachable\r\n0\r\n\r\n"
            ),
            Some((503, "metadata store unreachable".into(), true))
        );
        // Without framing: complete only at the end of the connection.
        assert_eq!(
            parse_response(b"HTTP/1.0 503 x\r\n\r\nshutting down"),
            Some((503, "shutting down".into(), false))
        );
        // Not (all) there yet, or not HTTP.
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nre"),
            None
        );
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort"),
            None
        );
    }

    #[tokio::test]
    async fn asks_a_pod_and_gives_up_on_silence() {
        use crate::render::{PodReadiness, readiness_of};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /readyz HTTP/1.1\r\n"));
            conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 22\r\n\r\nblob store unreachable",
            )
            .await
            .unwrap();
            // (The connection stays open: the answer's length ends it.)
            // And one that never answers.
            let (_silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let target = ProbeTarget {
            pod: "hub-1".into(),
            ip: "127.0.0.1".into(),
            port,
        };
        let (status, body) = get(&target, "/readyz").await.expect("an answer");
        assert_eq!(
            readiness_of(status, &body),
            PodReadiness::StoresDown {
                metadata: false,
                blobs: true
            }
        );
        let silent = get(&target, "/readyz").await.expect_err("silence");
        assert!(silent.to_string().contains("within"), "{silent}");
        server.abort();
    }
}
