#!/usr/bin/env bash
# Installs what the peer engines of the side-by-side benchmark need on Debian/Ubuntu:
# - librocksdb-dev: RocksDB as a shared library (7.8 on Debian 12), which the `rocksdb` crate
#   links through ROCKSDB_LIB_DIR instead of building RocksDB from source (too slow here);
# - libclang-dev and clang: bindgen, which librocksdb-sys runs on RocksDB's C header.
# LMDB (heed), redb, fjall, SurrealKV and sled are pure crates (heed builds the LMDB C source it
# ships with the C compiler Rust already needs). Run as root, or with sudo available.
set -euo pipefail

packages=(librocksdb-dev libclang-dev clang pkg-config)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"

lib_dir="$(dirname "$(find /usr/lib /usr/lib64 -name 'librocksdb.so' -print -quit 2>/dev/null)")"
if [ ! -e "$lib_dir/librocksdb.so" ]; then
    echo "install-peers: librocksdb.so not found after installing librocksdb-dev" >&2
    exit 1
fi
echo "install-peers: done. benches/run-peers.sh sets this itself; for a cargo command by hand:"
echo "export ROCKSDB_LIB_DIR=$lib_dir"
