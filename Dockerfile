# The Berth image for machines with Docker (or BuildKit, podman, buildah):
#   docker build -t berth:dev .
# Without a Docker engine, images/build.sh assembles the same image layout
# (same binaries, paths, user and config) with umoci; that is what CI builds
# and tests (tests/image/run.sh).
#
# Both binaries are in the image: the entrypoint is the registry (`berth
# serve`); the operator runs with `command: ["berth-operator", "run"]`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p berth-registry -p berth-operator \
    && install -D -m 0755 target/release/berth /out/berth \
    && install -D -m 0755 target/release/berth-operator /out/berth-operator \
    && install -d -m 0755 /out/data

# glibc, libgcc_s, CA certificates, /etc/passwd with nonroot (65532); nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/berth /out/berth-operator /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /data
EXPOSE 5000 5001
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="Berth: an OCI distribution registry and its Kubernetes operator (berth, berth-operator)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/berth-dev/berth"
ENTRYPOINT ["/usr/local/bin/berth"]
# Flags, not environment variables: BERTH_* variables would override the config
# file the operator mounts (`serve --config ...` replaces this CMD).
CMD ["serve", "--listen", "0.0.0.0:5000", "--metrics-listen", "0.0.0.0:5001", "--data-dir", "/data"]
