# syntax=docker/dockerfile:1
#
# rokt-export container image: the Rust binary on distroless (glibc, CA certificates,
# uid 65532, no shell). Build and run:
#
#   docker build -t rokt-export:0.1.0 .
#   docker run --rm rokt-export:0.1.0 --help
#   docker run --rm -p 9464:9464 -v "$PWD/jobs.toml:/etc/rokt-export/jobs.toml:ro" \
#     -e ROKT_EXPORT_CONFIG=/etc/rokt-export/jobs.toml -e DATABASE_URL -e ROKT_APP_ID -e ROKT_APP_SECRET \
#     rokt-export:0.1.0 run
#
# No SQLX_OFFLINE: the code has no compile-time checked queries, so the build needs no database.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# rust:*-slim already has gcc and libc headers (ring and the bundled SQLite compile C); TLS is rustls,
# so no OpenSSL is needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin rokt-export \
    && install -D -m 0755 target/release/rokt-export /out/rokt-export

# Same Debian release as the builder, so the glibc the binary was linked against is there.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/rokt-export /usr/local/bin/rokt-export
# Logs as JSON lines on stderr; override with -e ROKT_EXPORT_LOG_FORMAT=text.
ENV ROKT_EXPORT_LOG_FORMAT=json
# Writable only for `demo` (its SQLite file); production writes to Postgres and the root
# filesystem can be read-only.
WORKDIR /home/nonroot
USER 65532:65532
# /healthz /readyz /metrics; set [server] listen = "0.0.0.0:9464" in jobs.toml inside a container.
EXPOSE 9464
ENTRYPOINT ["rokt-export"]
CMD ["run"]
