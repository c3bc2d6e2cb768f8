# The wasmray operator image: the release binary with its built-in components embedded, on distroless, as user 65532.
#
#   docker build -t ghcr.io/wasmray/wasmray-operator:0.1.0 .
#
# The build runs the commands tests/run runs (rustup target add wasm32-wasip2, cargo build); host/build.rs
# builds the guests and plugins for wasm32-wasip2 and embeds them, so the binary needs nothing beside it.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
# KubeRay's chart starts the operator as /manager: a link makes the same binary answer to that path.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wasmray \
 && mkdir -p /out/bin /out/cache \
 && cp target/release/wasmray /out/bin/wasmray \
 && ln -s wasmray /out/bin/manager

# distroless/cc: glibc and libgcc for the binary, CA certificates, no shell; `nonroot` is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
# A directory copy keeps /manager a link rather than a second copy of the binary.
COPY --from=build /out/bin/ /
# The precompiled-component cache; the chart mounts a writable emptyDir here (the root filesystem is read-only).
COPY --from=build --chown=65532:65532 /out/cache /var/cache/wasmray
ENV WASMRAY_COMPILE_CACHE_DIR=/var/cache/wasmray
USER 65532:65532
ENTRYPOINT ["/wasmray", "run"]
