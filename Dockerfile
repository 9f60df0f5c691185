# StreamCity: one image, every stage (`streamcity`, `streamcity produce|process|serve|tail`).
#
#   docker build -t streamcity .
#   docker run --rm -p 8080:8080 streamcity --host 0.0.0.0      # the whole twin, no Kafka

# Build: the Rust toolchain, npm (the map page's Leaflet comes from the npm registry),
# and what librdkafka builds with.
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm libssl-dev pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin streamcity \
    && cp target/release/streamcity /usr/local/bin/streamcity

# Run: a slim base with the libraries the binary links (OpenSSL for SASL_SSL).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /state && chown nobody /state
COPY --from=build /usr/local/bin/streamcity /usr/local/bin/streamcity
USER nobody
EXPOSE 8080
ENTRYPOINT ["streamcity"]
