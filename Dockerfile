# callstate in a container: build in the Rust image, run in a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin callstate && cp target/release/callstate /callstate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /callstate /usr/local/bin/callstate
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["callstate"]
CMD ["serve", "--data", "/data", "--listen", "0.0.0.0:8080"]
