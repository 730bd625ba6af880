# The nova-upgrade worker image: compiled TypeScript plus production dependencies only.
FROM node:20.20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY client ./client
COPY inventory ./inventory
COPY lab ./lab
COPY bench ./bench
RUN npm run build

FROM node:20.20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# ssh2's native crypto is optional; without compilers in the slim image it falls back to JS.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# The SSH key arrives as a read-only mount; nothing here needs root.
USER node
CMD ["node", "dist/worker/main.js"]
