FROM rust:1-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --bin commerce

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/commerce /usr/local/bin/commerce
COPY --from=build /src/target/plugins /app/target/plugins
COPY --from=build /src/plugins/environments /app/plugins/environments
ENTRYPOINT ["commerce"]
