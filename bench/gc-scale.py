#!/usr/bin/env python3
"""Measures `berth gc` on a registry holding N manifests (default 10,000).

    cargo build --release -p berth-registry
    python3 bench/gc-scale.py [--manifests 10000] [--berth target/release/berth]

Starts a fresh `berth serve` in a temp dir, pushes N small images (one
shared config, one unique 1 KiB layer each) into 10 repositories, untags
half of them, then times `berth gc --dry-run` and `berth gc` (grace 0) as
separate processes while the server runs. Prints one line per step.
"""
import argparse, hashlib, http.client, json, os, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifests", type=int, default=10000)
    ap.add_argument("--berth", default="target/release/berth")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="berth-gc-scale-")
    data = os.path.join(tmp, "data")
    port, mport = free_port(), free_port()
    log = open(os.path.join(tmp, "berth.log"), "w")
    srv = subprocess.Popen([a.berth, "serve", "--listen", f"127.0.0.1:{port}",
                            "--metrics-listen", f"127.0.0.1:{mport}", "--data-dir", data],
                           stderr=log, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/healthz")
                if c.getresponse().status == 200: break
            except OSError:
                pass
            if time.time() > deadline: sys.exit("berth did not start")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        def req(method, path, body=b"", headers=None):
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse(); r.read()
            if r.status >= 300: sys.exit(f"{method} {path}: {r.status}")
        config = b'{"architecture":"amd64","os":"linux"}'
        cd = "sha256:" + hashlib.sha256(config).hexdigest()
        t0 = time.time()
        for i in range(a.manifests):
            repo = f"scale/r{i % 10}"
            if i < 10:
                req("POST", f"/v2/{repo}/blobs/uploads/?digest={cd}", config)
            layer = f"layer {i}".encode().ljust(1024, b".")
            ld = "sha256:" + hashlib.sha256(layer).hexdigest()
            req("POST", f"/v2/{repo}/blobs/uploads/?digest={ld}", layer)
            m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}).encode()
            req("PUT", f"/v2/{repo}/manifests/t{i}", m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        print(f"pushed {a.manifests} manifests in {time.time() - t0:.1f} s")
        t0 = time.time()
        for i in range(0, a.manifests, 2):
            req("DELETE", f"/v2/scale/r{i % 10}/manifests/t{i}")
        print(f"untagged {a.manifests // 2} in {time.time() - t0:.1f} s")
        for args in (["--dry-run"], []):
            t0 = time.time()
            out = subprocess.run([a.berth, "gc", "--data-dir", data, "--grace-seconds", "0", *args],
                                 stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
            print(f"berth gc {' '.join(args)}: {time.time() - t0:.2f} s wall: {out}")
    finally:
        srv.terminate(); srv.wait()

if __name__ == "__main__":
    main()
