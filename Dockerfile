# fundguard: one image for every role (worker, sink, serve, replay, detect, migrate); the command picks the role.
# Node 24, the LTS line the project supports and CI tests (package.json "engines" gives the range).
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Runtime dependencies only (tsx runs the TypeScript sources, so there is no build stage). The
# lockfile lacks the other platforms' optional binaries (biome, chdb), which `npm ci` refuses;
# `npm install --no-save` then installs the locked versions and leaves the lockfile as it is.
RUN (npm ci --omit=dev --no-fund --no-audit || npm install --omit=dev --no-save --no-fund --no-audit) \
  && npm cache clean --force
COPY bin ./bin
COPY schemas ./schemas
COPY detectors ./detectors
COPY services ./services
# The code stays root-owned, so the process cannot change it; it runs as the image's unprivileged
# `node` user, whose one writable place is the data directory (users file, embedded chdb).
RUN install -d -o node -g node -m 0700 /var/lib/fundguard
ENV FUNDGUARD_DATA_DIR=/var/lib/fundguard
USER node
# The flag is the one in bin/fundguard.js's shebang, which `node bin/fundguard.js` does not read.
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/fundguard.js"]
CMD ["--help"]
