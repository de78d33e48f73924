# The gateway/worker image: runs `sandbot up` (or `gateway` / `worker`) in a container.
#
# It drives a container engine to create the sandboxes, so it needs that engine's socket, e.g.
#   docker run -d --name sandbot \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e SANDBOT_REDIS_URL=redis://redis:6379 -e OLLAMA_HOST=http://ollama:11434 \
#     -e SANDBOT_API_TOKEN="$(openssl rand -hex 32)" \
#     -p 127.0.0.1:8787:8787 sandbot
# The process runs as uid 1000, not root; --group-add gives it the socket's group. Whoever can use that
# socket controls the host, so this container is trusted code: never mount the socket into a sandbox.
# The sandbox image it starts is a separate image (sandbox/Dockerfile): build it on the engine with
# `sandbot image build` (this image carries what that needs).
# The web API listens on every interface of the container, so it needs a real API token: the placeholder
# below makes the gateway refuse to start until SANDBOT_API_TOKEN is replaced (32+ random characters).
#
# Without a registry: docker build --build-arg BASE_IMAGE=sandbot-base:bookworm . (sandbox/base/build-base.sh)
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Behind a TLS-intercepting proxy: --build-arg EXTRA_CA_CERT="$(cat proxy-ca.pem)". Trusted by npm in this
# build stage only; the final image does not carry it.
ARG EXTRA_CA_CERT=""
RUN printf '%s' "$EXTRA_CA_CERT" > /tmp/npm-ca.pem
RUN if [ -s /tmp/npm-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/tmp/npm-ca.pem; fi; \
    npm install --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY adapters ./adapters
COPY sandbox ./sandbox
RUN if [ -s /tmp/npm-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/tmp/npm-ca.pem; fi; \
    npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE}
LABEL sandbot.image=service
ENV NODE_ENV=production \
    SANDBOT_HTTP_HOST=0.0.0.0 \
    SANDBOT_API_TOKEN=change-me-to-32-or-more-random-characters
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/sandbox/Dockerfile ./sandbox/Dockerfile
USER 1000:1000
EXPOSE 8787
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["up"]
