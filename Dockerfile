# kvserve: the CPU engine and the CUDA backend in one image. The build stage compiles with
# scripts/docker-build-steps.sh, the same steps the test suite runs; the runtime stage holds node, the built
# app and the CUDA runtime libraries, no compiler or build tool.
#
#   docker build -t kvserve .                                     # kernels for 80;86;89;90 (A100 .. H200)
#   docker build --build-arg KVSERVE_CUDA_ARCHS=90a -t kvserve .  # one arch only (faster build)
#   docker run --gpus all -p 8000:8000 kvserve                    # the bundled stories260K demo
#   docker run --gpus all -p 8000:8000 -v ~/.cache/huggingface:/root/.cache/huggingface -e HF_TOKEN \
#     kvserve serve --host 0.0.0.0 --model meta-llama/Meta-Llama-3-8B-Instruct --device cuda
# README.md ("Docker") says more.
ARG CUDA_IMAGE_VERSION=13.0.0
ARG NODE_VERSION=20.20.2

FROM nvidia/cuda:${CUDA_IMAGE_VERSION}-devel-ubuntu24.04 AS build
ARG NODE_VERSION
# Ubuntu's nodejs is 18; kvserve needs Node >= 20.
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make ca-certificates curl xz-utils \
    && rm -rf /var/lib/apt/lists/* \
    && curl -fsSL https://nodejs.org/dist/v${NODE_VERSION}/node-v${NODE_VERSION}-linux-x64.tar.xz \
       | tar -xJ -C /usr/local --strip-components=1
# cmake-js builds against these Node headers (include/node) instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/docker-build-steps.sh scripts/
RUN scripts/docker-build-steps.sh deps /src
COPY . .
# The GPU architectures of the kernels (cmake/cuda_archs.cmake): no GPU is visible while an image builds.
ARG KVSERVE_CUDA_ARCHS=80,86,89,90
RUN scripts/docker-build-steps.sh build /src /app

FROM nvidia/cuda:${CUDA_IMAGE_VERSION}-runtime-ubuntu24.04
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /app /app
WORKDIR /app
RUN scripts/docker-build-steps.sh no-build-tools && scripts/docker-build-steps.sh runtime-check /app
# Hub models download here (mount the host's cache to keep them across containers).
ENV HF_HOME=/root/.cache/huggingface
EXPOSE 8000
# Healthy once the model serves (/health answers 503 while it loads); the start period covers a first download.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 CMD ["node", "scripts/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--device", "auto"]
