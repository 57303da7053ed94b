# syntax=docker/dockerfile:1
#
# salespulse container image (docs/platform.md, "Docker").
#
#   docker build -t salespulse .
#   docker run --rm -p 9464:9464 -e SALESPULSE_KAFKA__BROKERS=broker:9092 salespulse
#   docker run --rm -p 9464:9464 salespulse        # no brokers: embedded demo broker, nothing persisted
#   docker run --rm -i salespulse replay - < events.ndjson
#
# The configuration baked in at /etc/salespulse/salespulse.toml is
# config/salespulse.toml (every key at its default); override single keys with
# SALESPULSE_<SECTION>__<KEY> variables or mount another file over it.

# ---------------------------------------------------------------- build
FROM rust:1-bookworm AS builder
# The rdkafka crate compiles librdkafka from source (features cmake-build,
# ssl, curl, zstd): it needs cmake, a C++ compiler and the OpenSSL, libcurl
# and zlib headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Cargo.toml names the benches explicitly, so they must be present to build.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
# Cache mounts keep the crate registry and the target dir between builds; the
# binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/salespulse /out/salespulse

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
# libssl3 and libcurl4: librdkafka links them dynamically (zlib1g is in the
# base image); ca-certificates for TLS to the brokers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 salespulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin salespulse
COPY --from=builder /out/salespulse /usr/local/bin/salespulse
COPY config/salespulse.toml /etc/salespulse/salespulse.toml
# Numeric, so Kubernetes' runAsNonRoot can verify it. The process writes no
# files: state lives in memory and in the Kafka checkpoint topic, so a
# read-only root filesystem works.
USER 10001:10001
# /metrics, /healthz, /readyz (http.listen)
EXPOSE 9464
# /healthz answers once the HTTP server is up (after topic creation at start),
# hence the start period. Plain bash: the slim image has no curl. Assumes the
# default http.listen port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM: stop fetching, write a final checkpoint, exit 0. Give it time
# (docker stop -t 60; compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["salespulse"]
CMD ["run", "--config", "/etc/salespulse/salespulse.toml"]
