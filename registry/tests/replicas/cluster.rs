//! Three (or N) `berth` processes on one PostgreSQL database and one bucket
//! prefix (the servers of tests/backends/up.sh), behind HAProxy (Debian's):
//! round-robin per request, no affinity, health-checked on /readyz as a
//! Kubernetes Service is by readiness. Replicas can be killed (-9),
//! stopped (SIGTERM) and started again on their port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::postgres_s3_args;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Replica {
    pub name: String,
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts it, and waits until /readyz answers 200.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .args(["--listen", &self.addr()])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&self.args)
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berth");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(&self.addr()) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// GET /readyz answers 200.
fn ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

pub struct Cluster {
    pub replicas: Vec<Replica>,
    /// The load balancer, `host:port`.
    pub lb: String,
    /// The database URL the replicas share.
    pub database_url: String,
    haproxy: Child,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` replicas with `extra` flags, on a fresh database and prefix.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let backend = postgres_s3_args();
        let database_url =
            backend[backend.iter().position(|a| a == "--database-url").unwrap() + 1].clone();
        let mut replicas = Vec::new();
        for i in 0..n {
            let name = format!("r{i}");
            let data = dir.path().join(&name);
            let mut args = vec!["--data-dir".to_string(), data.display().to_string()];
            args.extend(backend.iter().cloned());
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut replica = Replica {
                log: dir.path().join(format!("{name}.log")),
                name,
                port: free_port(),
                args,
                child: None,
            };
            replica.start();
            replicas.push(replica);
        }
        let lb_port = free_port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(lb_port, &replicas)).unwrap();
        let haproxy = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).unwrap())
            .spawn()
            .expect("run haproxy (Debian's haproxy; tests/tools/install.sh installs it)");
        let lb = format!("127.0.0.1:{lb_port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(&lb) {
            assert!(Instant::now() < deadline, "haproxy did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Cluster {
            replicas,
            lb,
            database_url,
            haproxy,
            dir,
        }
    }

    pub fn lb_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.lb)
    }

    /// Every replica's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for r in &self.replicas {
            let log = r.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} (last lines)\n", r.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(
            &std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default(),
        );
        out
    }

    /// A query on the shared database, as psql prints it unaligned.
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("psql")
            .args([self.database_url.as_str(), "-At", "-c", query])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
    }
}

/// Round-robin per request; a replica leaves the rotation when /readyz
/// fails twice (300 ms apart) and comes back after one success. Only
/// requests that never reached a replica are retried by HAProxy; the rest
/// is the client's business, as with any load balancer.
fn haproxy_config(port: u16, replicas: &[Replica]) -> String {
    let mut cfg = format!(
        "global
  maxconn 8192
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-request 60s
  retries 3
  option redispatch
  retry-on conn-failure
frontend berth
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1
"
    );
    for r in replicas {
        cfg.push_str(&format!("  server {} {} check\n", r.name, r.addr()));
    }
    cfg
}
