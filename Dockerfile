# kvserve with the CUDA backend. Build: docker build -t kvserve .
# Run:   docker run --gpus all -p 8000:8000 -v /path/to/model:/model kvserve serve --model /model --host 0.0.0.0
ARG NODE_VERSION=20.20.2
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04 AS build
ARG NODE_VERSION
# Ubuntu's nodejs is 18; kvserve needs Node >= 20.
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make python3 ca-certificates curl xz-utils \
    && rm -rf /var/lib/apt/lists/* \
    && curl -fsSL https://nodejs.org/dist/v${NODE_VERSION}/node-v${NODE_VERSION}-linux-x64.tar.xz | tar -xJ -C /usr/local --strip-components=1
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json CMakeLists.txt ./
COPY cmake ./cmake
COPY native ./native
COPY engines ./engines
COPY kernels ./kernels
COPY src ./src
COPY configs ./configs
# Portable: the image may run on another CPU than the one that built it.
RUN npx cmake-js compile --out build --CDKVSERVE_PORTABLE=ON && npm run build:ts && npm prune --omit=dev

FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/Release/kvserve.node ./build/Release/kvserve.node
COPY --from=build /app/configs ./configs
EXPOSE 8000
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--host", "0.0.0.0", "--device", "auto"]
