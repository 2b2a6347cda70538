//! Slow, stalled and too many clients.

use super::*;

#[tokio::test]
async fn slowloris_connections_are_cut_off() {
    let server = Server::start_with(&["--header-timeout-seconds", "2"]);
    let mut attackers: Vec<TcpStream> = (0..50).map(|_| slowloris(&server.addr)).collect();
    let head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut open = attackers.len();
    let mut sent = 0;
    while open > 0 && started.elapsed() < Duration::from_secs(10) {
        open = 0;
        for s in &mut attackers {
            let _ = s.write_all(&head[sent % head.len()..sent % head.len() + 1]);
            if !closed_by_server(s) {
                open += 1;
            }
        }
        sent += 1;
        // Served normally meanwhile.
        let reply = raw_request(
            &server.addr,
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        std::thread::sleep(Duration::from_millis(950));
    }
    assert_eq!(
        open,
        0,
        "slow request heads still open after {:?}",
        started.elapsed()
    );
    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    let reply = String::from_utf8_lossy(&all);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_stalled_upload_body_ends_and_the_session_keeps_what_was_acknowledged() {
    let server = Server::start_with(&["--body-timeout-seconds", "2"]);
    let c = Client::new(&server);
    let r = c
        .req(Method::POST, "/v2/stall/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let first = vec![1u8; 100];
    let r = c
        .req(Method::PATCH, &location)
        .header("content-range", "0-99")
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // A PATCH announcing 1 MiB that sends 64 KiB and then nothing.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1048576\r\nContent-Range: 100-1048675\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![2u8; 65536]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stalled request was not ended"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("BLOB_UPLOAD_INVALID"), "{reply}");

    let r = c.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(
        r.headers()["range"],
        "0-99",
        "the session kept only what was acknowledged"
    );
    let rest = vec![3u8; 50];
    let r = c
        .req(Method::PATCH, &location)
        .header("content-range", "100-149")
        .body(rest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let whole = [first, rest].concat();
    let r = c
        .req(
            Method::PUT,
            &format!("{location}?digest={}", sha256(&whole)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let server = Server::start_with(&["--send-timeout-seconds", "2"]);
    let c = Client::new(&server);
    let blob: Vec<u8> = (0..64 << 20).map(|i| (i % 241) as u8).collect();
    let digest = c.push_blob("slow/reader", &blob).await;
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /v2/slow/reader/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    s.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    // Read nothing for a while, then everything that is left.
    std::thread::sleep(Duration::from_secs(6));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.len() + first.len() < blob.len(),
        "the whole blob arrived: the stalled client was never cut off"
    );
    // Others are served meanwhile and after.
    let r = c
        .req(Method::GET, &format!("/v2/slow/reader/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), blob.len());
}

#[tokio::test]
async fn connections_over_the_limits_are_refused_with_the_spec_error() {
    let server = Server::start_with(&["--max-connections-per-client", "4"]);
    let held: Vec<TcpStream> = (0..4).map(|_| served_connection(&server.addr)).collect();
    let reply = raw_request(&server.addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert!(
        reply.contains("TOOMANYREQUESTS") && reply.contains("retry-after: 1"),
        "{reply}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let reply = raw_request(
        &server.addr,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let server = Server::start_with(&[
        "--max-connections",
        "3",
        "--max-connections-per-client",
        "0",
    ]);
    let held: Vec<TcpStream> = (0..3).map(|_| served_connection(&server.addr)).collect();
    let reply = raw_request(&server.addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("UNAVAILABLE"), "{reply}");
    drop(held);
}

/// A keep-alive connection that has been served one request, so the server
/// counts it. (Connections the test harness made while starting the server
/// may still be counted for a moment: a refusal is retried.)
fn served_connection(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        if head.starts_with(b"HTTP/1.1 200") {
            // The rest of the response: headers and a 2-byte body.
            let mut rest = Vec::new();
            let mut byte = [0u8; 1];
            while !rest.ends_with(b"\r\n\r\n{}") {
                s.read_exact(&mut byte).unwrap();
                rest.push(byte[0]);
            }
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&head)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An answer sent before the request's body was read (here: an upload
/// that does not exist) says `Connection: close`, so the client does not
/// send its next request down a connection with unread bytes on it; an
/// answer to a body read to its end keeps the connection.
#[tokio::test]
async fn an_answer_before_the_body_is_read_closes_the_connection() {
    let server = Server::start();
    let c = Client::new(&server);
    let body = vec![7u8; 4 << 20];
    let r = c
        .req(Method::PATCH, "/v2/early/app/blobs/uploads/no-such-upload")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["connection"], "close", "{:?}", r.headers());
    assert_error(r, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;

    let r = c
        .req(Method::POST, "/v2/early/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("connection").is_none(), "{:?}", r.headers());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .req(Method::PATCH, &location)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().get("connection").is_none(), "{:?}", r.headers());
}
