#!/usr/bin/env python3
"""Measures `berth gc` on a registry holding N manifests (default 10,000).

    cargo build --release -p berth-registry
    python3 bench/gc-scale.py [--manifests 10000] [--berth target/release/berth]
    python3 bench/gc-scale.py --backend postgres-s3     # PostgreSQL + S3 (versitygw)

Starts a fresh `berth serve`, pushes N small images (one shared config, one
unique 1 KiB layer each) into 10 repositories under N tags, untags half of
them, then times `berth gc --dry-run` and `berth gc` (grace 0) as separate
processes while the server runs, with the server's storage flags. Then
checks that nothing tagged was lost (every remaining tag resolves to its
manifest, and its config and layer are served with the right digest) and
that what gc deleted is gone. Prints one line per step.

--backend filesystem (default): a data dir in a temp dir (SQLite + files).
--backend postgres-s3: a private PostgreSQL 15 and versitygw started by
tests/backends/up.sh under the temp dir (stopped and removed at the end);
berth gets a database and an S3 key prefix of its own.
"""
import argparse, hashlib, http.client, json, os, shlex, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Client:
    """One keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def req(self, method, path, body=b"", headers=None, ok=(200, 201, 202)):
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse(); data = r.read()
                break
            except (http.client.HTTPException, OSError):
                # A closed keep-alive connection: once more on a new one.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        if ok and r.status not in ok:
            sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
        return r.status, data


CONFIG = b'{"architecture":"amd64","os":"linux"}'
CD = sha(CONFIG)


def image(i):
    layer = f"layer {i}".encode().ljust(1024, b".")
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CD, "size": len(CONFIG)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}]}).encode()
    return f"scale/r{i % 10}", layer, m


def parallel(n, threads, port, fn):
    """fn(client, i) for i in range(n), over `threads` connections."""
    errors = []

    def worker(k):
        c = Client(port)
        try:
            for i in range(k, n, threads):
                fn(c, i)
        except BaseException as e:  # sys.exit in a thread raises SystemExit
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    if errors:
        sys.exit(f"failed: {errors[0]}")


def start_backends(tmp):
    """tests/backends/up.sh under tmp; returns (env, server flags, description)."""
    os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user
    env = dict(os.environ, BERTH_BACKENDS_DIR=os.path.join(tmp, "backends"))
    out = subprocess.run([os.path.join(ROOT, "tests/backends/up.sh")], env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = shlex.split(v)[0] if v else ""
    admin = env["BERTH_TEST_DATABASE_URL"]
    subprocess.run(["psql", admin, "-q", "-c", "CREATE DATABASE gcscale"], check=True)
    flags = ["--database-url", admin.rsplit("/", 1)[0] + "/gcscale", "--storage", "s3",
             "--s3-bucket", env["BERTH_TEST_S3_BUCKET"], "--s3-endpoint", env["BERTH_TEST_S3_ENDPOINT"],
             "--s3-prefix", "gc-scale"]
    pg = subprocess.run(["psql", admin, "-Atc", "SHOW server_version"], check=True,
                        stdout=subprocess.PIPE, text=True).stdout.strip()
    return env, flags, f"PostgreSQL {pg} + versitygw at {env['BERTH_TEST_S3_ENDPOINT']}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifests", type=int, default=10000)
    ap.add_argument("--berth", default="target/release/berth")
    ap.add_argument("--backend", choices=["filesystem", "postgres-s3"], default="filesystem")
    ap.add_argument("--concurrency", type=int, default=8, help="client connections for the pushes and checks")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-gc-scale-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    data = os.path.join(tmp, "data")
    env, flags, what = dict(os.environ), [], f"filesystem data dir {data}"
    backends = a.backend == "postgres-s3"
    srv = None
    try:
        if backends:
            env, flags, what = start_backends(tmp)
        print(f"backend: {what}")
        port, mport = free_port(), free_port()
        log = open(os.path.join(tmp, "berth.log"), "w")
        srv = subprocess.Popen([a.berth, "serve", "--listen", f"127.0.0.1:{port}",
                                "--metrics-listen", f"127.0.0.1:{mport}", "--data-dir", data, *flags],
                               stderr=log, stdout=subprocess.DEVNULL, env=dict(env, BERTH_LOG="warn"))
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/healthz")
                if c.getresponse().status == 200: break
            except OSError:
                pass
            if srv.poll() is not None or time.time() > deadline:
                sys.exit("berth did not start: " + open(os.path.join(tmp, "berth.log")).read()[-2000:])
            time.sleep(0.05)
        n = a.manifests
        c = Client(port)
        for r in range(min(n, 10)):
            c.req("POST", f"/v2/scale/r{r}/blobs/uploads/?digest={CD}", CONFIG)

        def push(c, i):
            repo, layer, m = image(i)
            c.req("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(layer)}", layer)
            c.req("PUT", f"/v2/{repo}/manifests/t{i}", m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

        t0 = time.time()
        parallel(n, a.concurrency, port, push)
        print(f"pushed {n} manifests + {n} layers in {time.time() - t0:.1f} s ({a.concurrency} connections)")

        def untag(c, i):
            if i % 2 == 0:
                c.req("DELETE", f"/v2/scale/r{i % 10}/manifests/t{i}")

        t0 = time.time()
        parallel(n, a.concurrency, port, untag)
        print(f"untagged {(n + 1) // 2} in {time.time() - t0:.1f} s")
        for args in (["--dry-run"], []):
            # Its log (a line per deletion, at the default level) to a file.
            with open(os.path.join(tmp, "gc.log"), "a") as gclog:
                t0 = time.time()
                out = subprocess.run([a.berth, "gc", "--data-dir", data, *flags, "--grace-seconds", "0", *args],
                                     stdout=subprocess.PIPE, stderr=gclog, text=True, check=True, env=env).stdout.strip()
            print(f"berth gc {' '.join(args)}: {time.time() - t0:.2f} s wall: {out}")

        # Nothing tagged lost: each remaining tag is its manifest, and its
        # config and layer are served whole.
        lost = []

        def check(c, i):
            repo, layer, m = image(i)
            if i % 2 == 1:
                st, body = c.req("GET", f"/v2/{repo}/manifests/t{i}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, ok=None)
                if st != 200 or sha(body) != sha(m):
                    lost.append(f"{repo}:t{i} manifest {st}")
                for d, want in ((sha(layer), layer), (CD, CONFIG)):
                    st, body = c.req("GET", f"/v2/{repo}/blobs/{d}", ok=None)
                    if st != 200 or body != want:
                        lost.append(f"{repo}:t{i} blob {d} {st}")
            else:
                st, _ = c.req("HEAD", f"/v2/{repo}/manifests/{sha(m)}", ok=None)
                if st != 404:
                    lost.append(f"{repo} untagged manifest {sha(m)} still answers {st}")
                st, _ = c.req("HEAD", f"/v2/{repo}/blobs/{sha(layer)}", ok=None)
                if st != 404:
                    lost.append(f"{repo} layer of an untagged manifest still answers {st}")

        t0 = time.time()
        parallel(n, a.concurrency, port, check)
        if lost:
            print(f"CHECK FAILED: {len(lost)} problems, e.g. {lost[:5]}")
            sys.exit(1)
        print(f"checked in {time.time() - t0:.1f} s: all {n // 2} tagged manifests and their blobs are served "
              f"with the right digests; the {(n + 1) // 2} untagged manifests and their layers answer 404")
    finally:
        if srv is not None:
            srv.terminate(); srv.wait()
        if backends:
            subprocess.run([os.path.join(ROOT, "tests/backends/down.sh"), "--clean"],
                           env=dict(os.environ, BERTH_BACKENDS_DIR=os.path.join(tmp, "backends")),
                           stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
