# Builds the outflow binary and ships it on a slim Debian base.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin outflow

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/outflow /usr/local/bin/outflow
ENV OUTFLOW_DATA_DIR=/data \
    OUTFLOW_REST_LISTEN=0.0.0.0:8083
VOLUME /data
EXPOSE 8083
ENTRYPOINT ["outflow"]
CMD ["serve"]
