# ---- Build: the binaries cargo built on this machine -----------------------------------------
#
# docker/bases.sh puts this stage in place of docker/Dockerfile's build section, in
# target/docker/Dockerfile.host, for machines without a registry (why: docker/Dockerfile). Build
# first (`cargo build --release --locked --workspace --bins`, or PROFILE=debug for the binaries
# `cargo test` built); the root .dockerignore lets exactly these files into the context.
FROM ${DEBIAN_IMAGE} AS build
ARG PROFILE=release
COPY target/${PROFILE}/axum-tokio-postgres target/${PROFILE}/actix-deadpool target/${PROFILE}/warp-diesel-async target/${PROFILE}/threaded-blocking target/${PROFILE}/bakeoff /app/target/release/

