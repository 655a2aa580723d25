#!/usr/bin/env bash
# The side-by-side benchmark in one command: ZVerse against RocksDB, LMDB, redb, fjall, SurrealKV
# and sled (--bench peers), then the transactions against RocksDB, fjall, SurrealKV and redb
# (--bench peers_txn). Writes benches/results/latest.{md,json} and transactions-peers.md
# (*-quick.* with --quick) and, for a full run, rewrites the README's two generated sections.
#
#   benches/run-peers.sh            # the full run (22 minutes at load 3-5 before the
#                                   # shared-prefix rows, which double it, and the transactions)
#   benches/run-peers.sh --quick    # a smoke run at a small scale (about a minute plus the build)
#   benches/run-peers.sh --reps 5 --engines zverse,rocksdb
#   benches/run-peers.sh --key-sets random    # without the shared-prefix rows
#
# Needs the packages benches/install-peers.sh installs (it says so if librocksdb is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
    librocksdb="$(find /usr/lib /usr/lib64 -name 'librocksdb.so' -print -quit 2>/dev/null || true)"
    if [ -z "$librocksdb" ]; then
        echo "run-peers: librocksdb.so not found; run benches/install-peers.sh first" >&2
        exit 2
    fi
    export ROCKSDB_LIB_DIR="$(dirname "$librocksdb")"
fi

readme_flag="--write-readme"
for arg in "$@"; do
    if [ "$arg" = "--quick" ]; then readme_flag=""; fi
done
# peers_txn takes --quick, --reps N and --engines LIST; the rest is for peers only.
txn_args=()
previous=""
for arg in "$@"; do
    case "$previous" in
        --reps|--engines) txn_args+=("$previous" "$arg") ;;
    esac
    if [ "$arg" = "--quick" ]; then txn_args+=("$arg"); fi
    previous="$arg"
done
export ZVERSE_PEERS_COMMAND="benches/run-peers.sh${*:+ $*}"
export ZVERSE_PEERS_TXN_COMMAND="$ZVERSE_PEERS_COMMAND"
cargo bench -p zverse-benches --features peers --bench peers -- "$@" $readme_flag
exec cargo bench -p zverse-benches --features peers --bench peers_txn -- \
    ${txn_args[@]+"${txn_args[@]}"} $readme_flag
