# fundguard: one image for every role (worker, sink, serve, replay, detect, migrate); the command picks the role.
# Node 24, the LTS line the project supports and CI tests (package.json "engines" gives the range).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts wait for the sources (the project's own `prepare` compiles them). The lockfile lacks the
# other platforms' optional binaries (chdb), which `npm ci` refuses; `npm install --no-save` then
# installs the locked versions and leaves the lockfile as it is.
RUN npm ci --ignore-scripts --no-fund --no-audit || npm install --ignore-scripts --no-save --no-fund --no-audit
COPY bin ./bin
COPY tsconfig.json tsconfig.build.json ./
COPY schemas ./schemas
COPY detectors ./detectors
COPY services ./services
# Compile into dist/ (the executable runs it while it matches the sources), then drop the dev dependencies.
RUN node bin/build.js && npm prune --omit=dev --no-fund --no-audit && npm cache clean --force

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# One copy keeps the sources' and dist's modification times together, so the build stamp still matches.
# The code stays root-owned, so the process cannot change it; it runs as the image's unprivileged
# `node` user, whose one writable place is the data directory (users file, embedded chdb).
COPY --from=build /app /app
RUN install -d -o node -g node -m 0700 /var/lib/fundguard
ENV FUNDGUARD_DATA_DIR=/var/lib/fundguard
USER node
# The flag is the one in bin/fundguard.js's shebang, which `node bin/fundguard.js` does not read.
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/fundguard.js"]
CMD ["--help"]
