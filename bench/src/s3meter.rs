//! `berth-bench s3-meter`: a metering TCP proxy in front of an S3 server.
//!
//! The registry is given the proxy's address as its S3 endpoint; the proxy
//! opens one connection to the real server for each connection it accepts
//! and forwards the bytes of both directions unchanged (SigV4 signs the Host
//! header, and the server checks the signature against the Host it
//! receives, which is the one the registry signed). On the side it parses
//! the request stream (HTTP/1.1 heads, bodies framed by Content-Length or
//! chunked) and counts, per S3 operation, what the registry makes the store
//! write:
//!
//! - PutObject and UploadPart: the body's bytes (the decoded length of an
//!   `aws-chunked` body);
//! - CopyObject: the size of the source object, UploadPartCopy: the length
//!   of its `x-amz-copy-source-range` (or the whole source). Sizes of the
//!   objects written through the proxy are remembered (PutObject: its body;
//!   CompleteMultipartUpload: the sum of the parts it names; a copy: its
//!   source's), so a copy of one of them is known; a copy of anything else
//!   is counted in `unknown_copy_sources`.
//!
//! A request counts when its body has been read from the registry, before
//! its last bytes are forwarded, so a registry's answer to its client comes
//! after the counts of every request it needed. The counts are written to
//! `--out` as JSON ([`Snapshot`]) after each request and every 100 ms.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args)]
pub struct Args {
    /// Address to accept the registry's S3 connections on.
    #[arg(long)]
    listen: String,
    /// The S3 server (host:port) every connection is forwarded to.
    #[arg(long)]
    upstream: String,
    /// Where the counts are written (JSON, replaced atomically).
    #[arg(long)]
    out: PathBuf,
}

/// Requests and bytes of one S3 operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpCount {
    pub count: u64,
    /// Bytes written (PutObject, UploadPart) or copied (CopyObject,
    /// UploadPartCopy); 0 for the other operations.
    pub bytes: u64,
}

/// What the proxy has seen since it started.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub requests: u64,
    pub ops: BTreeMap<String, OpCount>,
    /// Object data sent in PutObject and UploadPart bodies.
    pub body_bytes: u64,
    /// Object data the store was asked to copy (CopyObject, UploadPartCopy).
    pub copy_bytes: u64,
    /// Every byte of every request (heads included).
    pub request_bytes: u64,
    /// Every byte the store sent back (heads included).
    pub response_bytes: u64,
    /// Copies whose source size was not known (counted as 0 bytes).
    pub unknown_copy_sources: u64,
    /// Connections whose request stream could not be parsed (not counted
    /// from there on; still forwarded).
    pub unparsed_connections: u64,
}

impl Snapshot {
    /// `self - before`, field by field (operations missing before count from 0).
    pub fn since(&self, before: &Snapshot) -> Snapshot {
        let mut ops = BTreeMap::new();
        for (k, v) in &self.ops {
            let b = before.ops.get(k).copied().unwrap_or_default();
            let d = OpCount {
                count: v.count - b.count.min(v.count),
                bytes: v.bytes - b.bytes.min(v.bytes),
            };
            if d.count > 0 {
                ops.insert(k.clone(), d);
            }
        }
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        Snapshot {
            requests: sub(self.requests, before.requests),
            ops,
            body_bytes: sub(self.body_bytes, before.body_bytes),
            copy_bytes: sub(self.copy_bytes, before.copy_bytes),
            request_bytes: sub(self.request_bytes, before.request_bytes),
            response_bytes: sub(self.response_bytes, before.response_bytes),
            unknown_copy_sources: sub(self.unknown_copy_sources, before.unknown_copy_sources),
            unparsed_connections: sub(self.unparsed_connections, before.unparsed_connections),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Snapshot> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

/// One parsed request head.
#[derive(Debug, Default)]
struct Head {
    method: String,
    /// Percent-decoded path without the leading `/`: `bucket/key`.
    path: String,
    query: Vec<(String, String)>,
    /// Lower-case names.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// The request is on an object (`bucket/key`), not on the bucket.
    fn has_key(&self) -> bool {
        self.path.trim_end_matches('/').contains('/')
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    // An absolute-form target (a proxy request) is reduced to its path.
    let target = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Some(Head {
        method,
        path: percent_decode(path).trim_start_matches('/').to_string(),
        query,
        headers,
    })
}

/// A copy source header (`bucket/key`, maybe with a leading `/`, encoded,
/// maybe with `?versionId=`) as a `bucket/key` path.
fn copy_source(v: &str) -> String {
    let v = v.split('?').next().unwrap_or(v);
    percent_decode(v).trim_start_matches('/').to_string()
}

/// `bytes=a-b` -> b - a + 1.
fn range_len(v: &str) -> Option<u64> {
    let (a, b) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b >= a).then(|| b - a + 1)
}

/// `<PartNumber>n</PartNumber>` of a CompleteMultipartUpload body.
fn part_numbers(body: &[u8]) -> Vec<u32> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("<PartNumber>") {
        rest = &rest[i + "<PartNumber>".len()..];
        if let Some(j) = rest.find("</PartNumber>") {
            if let Ok(n) = rest[..j].trim().parse() {
                out.push(n);
            }
            rest = &rest[j..];
        }
    }
    out
}

/// The counts and what is remembered to count copies.
#[derive(Default)]
struct State {
    snap: Snapshot,
    /// `bucket/key` -> size of the objects written through the proxy.
    sizes: HashMap<String, u64>,
    /// uploadId -> part number -> size.
    parts: HashMap<String, BTreeMap<u32, u64>>,
}

impl State {
    fn count(&mut self, op: &str, bytes: u64) {
        let e = self.snap.ops.entry(op.to_string()).or_default();
        e.count += 1;
        e.bytes += bytes;
        self.snap.requests += 1;
    }

    fn source_size(&mut self, head: &Head) -> u64 {
        let src = head.header("x-amz-copy-source").map(copy_source);
        match src.and_then(|s| self.sizes.get(&s).copied()) {
            Some(n) => n,
            None => {
                self.snap.unknown_copy_sources += 1;
                0
            }
        }
    }

    /// A whole request has been read: `body_len` decoded bytes, `body` the
    /// first bytes of it (kept for POSTs).
    fn finish(&mut self, head: &Head, body_len: u64, body: &[u8]) {
        let copy = head.header("x-amz-copy-source").is_some();
        let upload_id = head.param("uploadId").map(str::to_string);
        match head.method.as_str() {
            "PUT" if head.has_param("partNumber") && upload_id.is_some() => {
                let part: u32 = head
                    .param("partNumber")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let n = if copy {
                    let n = match head.header("x-amz-copy-source-range").and_then(range_len) {
                        Some(n) => n,
                        None => self.source_size(head),
                    };
                    self.count("UploadPartCopy", n);
                    self.snap.copy_bytes += n;
                    n
                } else {
                    self.count("UploadPart", body_len);
                    self.snap.body_bytes += body_len;
                    body_len
                };
                if let Some(id) = upload_id {
                    self.parts.entry(id).or_default().insert(part, n);
                }
            }
            "PUT" if copy => {
                let n = self.source_size(head);
                self.count("CopyObject", n);
                self.snap.copy_bytes += n;
                self.sizes.insert(head.path.clone(), n);
            }
            "PUT" if head.has_key() => {
                self.count("PutObject", body_len);
                self.snap.body_bytes += body_len;
                self.sizes.insert(head.path.clone(), body_len);
            }
            "POST" if head.has_param("uploads") => self.count("CreateMultipartUpload", 0),
            "POST" if upload_id.is_some() => {
                self.count("CompleteMultipartUpload", 0);
                let id = upload_id.unwrap_or_default();
                let parts = self.parts.remove(&id).unwrap_or_default();
                let named = part_numbers(body);
                let size = if named.is_empty() {
                    parts.values().sum()
                } else {
                    named.iter().filter_map(|n| parts.get(n)).sum()
                };
                self.sizes.insert(head.path.clone(), size);
            }
            "POST" if head.has_param("delete") => self.count("DeleteObjects", 0),
            "GET" if head.has_param("uploads") => self.count("ListMultipartUploads", 0),
            "GET" if upload_id.is_some() => self.count("ListParts", 0),
            "GET" if head.has_key() => self.count("GetObject", 0),
            "GET" => self.count("ListObjects", 0),
            "HEAD" => self.count("HeadObject", 0),
            "DELETE" if upload_id.is_some() => {
                self.count("AbortMultipartUpload", 0);
                self.parts.remove(&upload_id.unwrap_or_default());
            }
            "DELETE" => {
                self.count("DeleteObject", 0);
                self.sizes.remove(&head.path);
            }
            m => self.count(&format!("other-{m}"), 0),
        }
    }
}

/// Shared by every connection.
struct Meter {
    state: Mutex<State>,
    response_bytes: AtomicU64,
    request_bytes: AtomicU64,
    dirty: AtomicBool,
    out: PathBuf,
}

impl Meter {
    fn write(&self) {
        let snap = {
            let Ok(st) = self.state.lock() else { return };
            let mut s = st.snap.clone();
            s.response_bytes = self.response_bytes.load(Ordering::Relaxed);
            s.request_bytes = self.request_bytes.load(Ordering::Relaxed);
            s
        };
        self.dirty.store(false, Ordering::Relaxed);
        let tmp = self.out.with_extension("tmp");
        let ok = serde_json::to_vec_pretty(&snap)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|()| std::fs::rename(&tmp, &self.out).ok());
        if ok.is_none() {
            eprintln!("s3-meter: cannot write {}", self.out.display());
        }
    }
}

/// Where the request stream of one connection is.
enum Phase {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    /// A body of known length: bytes left.
    Body(u64),
    /// Chunked body: reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Chunked body: bytes of the chunk left, then its CRLF.
    ChunkData(u64),
    ChunkCrlf(usize),
    /// Chunked body: trailer lines up to the empty one (the bytes of the
    /// current line).
    Trailer(Vec<u8>),
    /// Not understood: forwarded, not counted.
    Broken,
}

/// The request parser of one connection.
struct Parser {
    phase: Phase,
    head: Head,
    /// Object bytes of the body (decoded), and the first of them for POSTs.
    body_len: u64,
    body: Vec<u8>,
    /// `x-amz-decoded-content-length` when the body is `aws-chunked`.
    decoded_len: Option<u64>,
}

const MAX_HEAD: usize = 64 * 1024;
const KEEP_BODY: usize = 1 << 20;

impl Parser {
    fn new() -> Parser {
        Parser {
            phase: Phase::Head(Vec::new()),
            head: Head::default(),
            body_len: 0,
            body: Vec::new(),
            decoded_len: None,
        }
    }

    fn take_body(&mut self, data: &[u8]) {
        self.body_len += data.len() as u64;
        if self.head.method == "POST" && self.body.len() < KEEP_BODY {
            let room = KEEP_BODY - self.body.len();
            self.body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn done(&mut self, meter: &Meter) {
        let len = self.decoded_len.unwrap_or(self.body_len);
        if let Ok(mut st) = meter.state.lock() {
            st.finish(&self.head, len, &self.body);
        }
        meter.write();
        self.phase = Phase::Head(Vec::new());
        self.body_len = 0;
        self.body.clear();
        self.decoded_len = None;
    }

    fn broken(&mut self, meter: &Meter) {
        if let Ok(mut st) = meter.state.lock() {
            st.snap.unparsed_connections += 1;
        }
        self.phase = Phase::Broken;
    }

    /// Parses the next bytes of the request stream.
    fn feed(&mut self, mut data: &[u8], meter: &Meter) {
        while !data.is_empty() {
            match &mut self.phase {
                Phase::Broken => return,
                Phase::Head(buf) => {
                    // The end of the head may straddle two reads.
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(data);
                    let Some(end) = buf[start..]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|p| start + p + 4)
                    else {
                        if buf.len() > MAX_HEAD {
                            self.broken(meter);
                        }
                        return;
                    };
                    let used = end - (buf.len() - data.len());
                    let raw = std::mem::take(buf);
                    data = &data[used..];
                    let Some(head) = parse_head(&raw[..end]) else {
                        self.broken(meter);
                        return;
                    };
                    self.head = head;
                    self.decoded_len = self
                        .head
                        .header("x-amz-decoded-content-length")
                        .and_then(|v| v.parse().ok());
                    let chunked = self
                        .head
                        .header("transfer-encoding")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                    if chunked {
                        self.phase = Phase::ChunkSize(Vec::new());
                    } else {
                        match self.head.header("content-length").map(str::parse::<u64>) {
                            None => self.done(meter),
                            Some(Ok(0)) => self.done(meter),
                            Some(Ok(n)) => self.phase = Phase::Body(n),
                            Some(Err(_)) => {
                                self.broken(meter);
                                return;
                            }
                        }
                    }
                }
                Phase::Body(left) => {
                    let n = (*left).min(data.len() as u64) as usize;
                    *left -= n as u64;
                    let finished = *left == 0;
                    self.take_body(&data[..n]);
                    data = &data[n..];
                    if finished {
                        self.done(meter);
                    }
                }
                Phase::ChunkSize(line) => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_HEAD {
                            self.broken(meter);
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let text = String::from_utf8_lossy(line);
                    let size = text.trim().split(';').next().unwrap_or("").trim();
                    match u64::from_str_radix(size, 16) {
                        Ok(0) => self.phase = Phase::Trailer(Vec::new()),
                        Ok(n) => self.phase = Phase::ChunkData(n),
                        Err(_) => {
                            self.broken(meter);
                            return;
                        }
                    }
                }
                Phase::ChunkData(left) => {
                    let n = (*left).min(data.len() as u64) as usize;
                    *left -= n as u64;
                    let finished = *left == 0;
                    self.take_body(&data[..n]);
                    data = &data[n..];
                    if finished {
                        self.phase = Phase::ChunkCrlf(2);
                    }
                }
                Phase::ChunkCrlf(left) => {
                    let n = (*left).min(data.len());
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.phase = Phase::ChunkSize(Vec::new());
                    }
                }
                Phase::Trailer(line) => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(data);
                        return;
                    };
                    line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    if line.trim_ascii().is_empty() {
                        self.done(meter);
                    } else {
                        line.clear();
                    }
                }
            }
        }
    }
}

const BUF: usize = 256 * 1024;

async fn relay(client: TcpStream, upstream: String, meter: Arc<Meter>) -> std::io::Result<()> {
    let server = TcpStream::connect(&upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up_meter = meter.clone();
    let up = async move {
        let mut parser = Parser::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                sw.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            up_meter
                .request_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            parser.feed(&buf[..n], &up_meter);
            sw.write_all(&buf[..n]).await?;
        }
    };
    let down = async move {
        let mut buf = vec![0u8; BUF];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                cw.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            meter.response_bytes.fetch_add(n as u64, Ordering::Relaxed);
            meter.dirty.store(true, Ordering::Relaxed);
            cw.write_all(&buf[..n]).await?;
        }
    };
    tokio::pin!(up, down);
    // A side that ends cleanly (EOF) lets the other finish; an error ends both.
    tokio::select! {
        r = &mut up => if r.is_ok() { down.await?; },
        r = &mut down => if r.is_ok() { up.await?; },
    }
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let meter = Arc::new(Meter {
        state: Mutex::new(State::default()),
        response_bytes: AtomicU64::new(0),
        request_bytes: AtomicU64::new(0),
        dirty: AtomicBool::new(false),
        out: args.out.clone(),
    });
    meter.write();
    let flusher = meter.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if flusher.dirty.load(Ordering::Relaxed) {
                flusher.write();
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (sock, _) = accepted?;
                let (upstream, meter) = (args.upstream.clone(), meter.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(sock, upstream, meter).await
                        && e.kind() != std::io::ErrorKind::ConnectionReset
                    {
                        eprintln!("s3-meter: connection: {e}");
                    }
                });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    meter.write();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter() -> Meter {
        let dir = std::env::temp_dir().join(format!("s3meter-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Meter {
            state: Mutex::new(State::default()),
            response_bytes: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            out: dir.join(format!("{:?}.json", std::thread::current().id())),
        }
    }

    fn feed_in_pieces(p: &mut Parser, m: &Meter, data: &[u8], piece: usize) {
        for c in data.chunks(piece) {
            p.feed(c, m);
        }
    }

    fn snap(m: &Meter) -> Snapshot {
        m.state.lock().unwrap().snap.clone()
    }

    #[test]
    fn counts_puts_parts_and_copies() {
        let mut stream = Vec::new();
        // A small object, then a multipart upload of two parts (one sent
        // chunked), completed, then copied whole and by range.
        stream.extend_from_slice(
            b"PUT /b/p/tail-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        );
        stream.extend_from_slice(b"POST /b/p/data?uploads HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.extend_from_slice(
            b"PUT /b/p/data?partNumber=1&uploadId=U1 HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
        );
        stream.extend_from_slice(
            b"PUT /b/p/data?partNumber=2&uploadId=U1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
        );
        let complete = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>";
        stream.extend_from_slice(
            format!(
                "POST /b/p/data?uploadId=U1 HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                complete.len()
            )
            .as_bytes(),
        );
        stream.extend_from_slice(complete);
        stream.extend_from_slice(
            b"PUT /b/blobs/x HTTP/1.1\r\nx-amz-copy-source: b/p/%64ata\r\nContent-Length: 0\r\n\r\n",
        );
        stream.extend_from_slice(
            b"PUT /b/blobs/y?partNumber=1&uploadId=U2 HTTP/1.1\r\nX-Amz-Copy-Source: /b/p/data\r\nx-amz-copy-source-range: bytes=0-9\r\n\r\n",
        );
        stream.extend_from_slice(
            b"PUT /b/blobs/z?uploadId=U3&partNumber=1 HTTP/1.1\r\nx-amz-copy-source: b/blobs/x\r\n\r\n",
        );
        stream.extend_from_slice(b"PUT /b/c HTTP/1.1\r\nx-amz-copy-source: b/nowhere\r\n\r\n");
        stream.extend_from_slice(b"GET /b/p/tail-1 HTTP/1.1\r\n\r\nHEAD /b/q HTTP/1.1\r\n\r\n");
        stream.extend_from_slice(b"GET /b?list-type=2&prefix=p HTTP/1.1\r\n\r\n");
        stream.extend_from_slice(b"DELETE /b/p/data?uploadId=U9 HTTP/1.1\r\n\r\n");
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            let m = meter();
            let mut p = Parser::new();
            feed_in_pieces(&mut p, &m, &stream, piece);
            let s = snap(&m);
            assert_eq!(s.unparsed_connections, 0, "piece {piece}");
            assert_eq!(s.requests, 13, "piece {piece}: {s:?}");
            assert_eq!(s.body_bytes, 5 + 10 + 7, "piece {piece}");
            // CopyObject 17 + UploadPartCopy range 10 + whole x (17).
            assert_eq!(s.copy_bytes, 17 + 10 + 17, "piece {piece}");
            assert_eq!(s.unknown_copy_sources, 1);
            assert_eq!(s.ops["PutObject"], OpCount { count: 1, bytes: 5 });
            assert_eq!(
                s.ops["UploadPart"],
                OpCount {
                    count: 2,
                    bytes: 17
                }
            );
            assert_eq!(
                s.ops["CopyObject"],
                OpCount {
                    count: 2,
                    bytes: 17
                }
            );
            assert_eq!(
                s.ops["UploadPartCopy"],
                OpCount {
                    count: 2,
                    bytes: 27
                }
            );
            assert_eq!(s.ops["CompleteMultipartUpload"].count, 1);
            assert_eq!(s.ops["CreateMultipartUpload"].count, 1);
            assert_eq!(s.ops["GetObject"].count, 1);
            assert_eq!(s.ops["HeadObject"].count, 1);
            assert_eq!(s.ops["ListObjects"].count, 1);
            assert_eq!(s.ops["AbortMultipartUpload"].count, 1);
            let _ = std::fs::remove_file(&m.out);
        }
    }

    #[test]
    fn aws_chunked_counts_the_decoded_length() {
        let m = meter();
        let mut p = Parser::new();
        p.feed(
            b"PUT /b/k HTTP/1.1\r\nContent-Encoding: aws-chunked\r\nx-amz-decoded-content-length: 3\r\nContent-Length: 13\r\n\r\n3;sig=ab\r\nabc",
            &m,
        );
        let s = snap(&m);
        assert_eq!(s.body_bytes, 3);
        let _ = std::fs::remove_file(&m.out);
    }

    #[test]
    fn snapshot_difference() {
        let mut a = Snapshot::default();
        a.ops
            .insert("PutObject".into(), OpCount { count: 2, bytes: 9 });
        a.body_bytes = 9;
        let mut b = a.clone();
        b.ops.insert(
            "PutObject".into(),
            OpCount {
                count: 5,
                bytes: 20,
            },
        );
        b.ops
            .insert("CopyObject".into(), OpCount { count: 1, bytes: 4 });
        b.body_bytes = 20;
        b.copy_bytes = 4;
        let d = b.since(&a);
        assert_eq!(
            d.ops["PutObject"],
            OpCount {
                count: 3,
                bytes: 11
            }
        );
        assert_eq!(d.ops["CopyObject"], OpCount { count: 1, bytes: 4 });
        assert_eq!((d.body_bytes, d.copy_bytes), (11, 4));
    }

    #[test]
    fn ranges_and_sources() {
        assert_eq!(range_len("bytes=0-9"), Some(10));
        assert_eq!(range_len("bytes=33554432-67108863"), Some(32 << 20));
        assert_eq!(range_len("bytes=5-4"), None);
        assert_eq!(copy_source("/b/a%2Fb?versionId=1"), "b/a/b");
    }
}
