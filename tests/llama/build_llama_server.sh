#!/usr/bin/env bash
# Builds llama.cpp's own llama-server (CPU only) from the llama.cpp tree that the llama-cpp-python
# sdist vendors, into a cache outside the clone keyed by version, so only a machine's first build
# pays (about 12 minutes with -j2). Idempotent: a finished build is reused at once. The sdist tree
# stays in the cache too: the tests use its gguf-py writer, vocab-only models and chat templates.
# Usage: build_llama_server.sh VERSION CACHE_ROOT PYTHON
set -euo pipefail
version="$1"; root="$2"; py="$3"
dest="$root/llama-cpp-python-$version"
if [ -x "$dest/bin/llama-server" ] && [ -f "$dest/.complete" ]; then
  echo "llama-server $version: cached at $dest/bin/llama-server"; exit 0
fi
mkdir -p "$root"
exec 9>"$root/llama-cpp-python-$version.lock"
# A concurrent build (another checkout on the same machine) finishes first; then this one reuses it.
flock 9
if [ -x "$dest/bin/llama-server" ] && [ -f "$dest/.complete" ]; then
  echo "llama-server $version: cached at $dest/bin/llama-server"; exit 0
fi
echo "llama-server $version: building into $dest (first build on this machine, ~12 min)"
mkdir -p "$dest/dl"
if [ ! -d "$dest/src/vendor/llama.cpp" ]; then
  "$py" -m pip download -q --no-deps --no-binary llama-cpp-python --dest "$dest/dl" "llama-cpp-python==$version"
  rm -rf "$dest/src.tmp" && mkdir -p "$dest/src.tmp"
  tar -xzf "$dest"/dl/llama_cpp_python-"$version".tar.gz -C "$dest/src.tmp" --strip-components=1
  mv "$dest/src.tmp" "$dest/src"
fi
cd "$dest/src/vendor/llama.cpp"
# The UI flags must be off, or the build tries to download the web UI.
nice -n 19 cmake -S . -B BUILD -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF >/dev/null
nice -n 19 cmake --build BUILD --target llama-server -j2
mkdir -p "$dest/bin"
cp BUILD/bin/llama-server "$dest/bin/llama-server.tmp"
mv "$dest/bin/llama-server.tmp" "$dest/bin/llama-server"
"$dest/bin/llama-server" --version
rm -rf BUILD "$dest/dl"
touch "$dest/.complete"
echo "llama-server $version: built at $dest/bin/llama-server"
