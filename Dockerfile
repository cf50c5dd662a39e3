# fundguard: one image for every role (worker, sink, serve, replay, detect); the command picks the role.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-fund --no-audit && npm cache clean --force
COPY bin ./bin
COPY schemas ./schemas
COPY detectors ./detectors
COPY services ./services
USER node
ENTRYPOINT ["node", "bin/fundguard.js"]
CMD ["--help"]
