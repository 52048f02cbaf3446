#!/usr/bin/env bash
# Runs a command on the lent GPU machine (see README "Running on a GPU machine"): unpacks the
# Vulkan loader (.device/gl/*.deb) and the Deno binary (.device/deno.xz) carried in .device/, points Vulkan at NVIDIA's driver and
# Deno at the pre-filled module cache, then runs "$@" with /tmp/deno as `deno`.
set -euo pipefail
# The Vulkan loader and the GLVND libraries NVIDIA's Vulkan driver needs (Debian packages).
for deb in .device/gl/*.deb; do dpkg -x "$deb" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
xz -dc .device/deno.xz > /tmp/deno
chmod +x /tmp/deno
mkdir -p /tmp/bin && ln -sf /tmp/deno /tmp/bin/deno
export PATH="/tmp/bin:$PATH" DENO_DIR="$PWD/.device/deno_dir" XDG_RUNTIME_DIR=/tmp
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
deno --version | head -1
"$@"
