//! `zverse`: ZVerse from the shell, in the spirit of `mdb_stat`, `mdb_dump`, `mdb_load`, RocksDB's
//! `ldb` and the badger tool. Run `zverse --help` for the commands, the escape form of keys
//! and values, the TIME syntax and the exit codes.

mod bench;
mod bench_dir;
mod commands;
mod dump;
mod escape;
mod fail;
mod json;
mod oldest_first;
mod timefmt;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::fail::{Exit, Fail};

const AFTER_HELP: &str = "\
Keys and values (the escape form):
  printable ASCII stands for itself, a backslash is \\\\, any other byte is \\xNN
  (two hex digits). Output is always in that form, so it round-trips. To put `..` inside a
  key of a RANGE, write the dots as \\x2e.

TIME (for --at, --from, --to):
  a raw version (microseconds since the Unix epoch, as every command prints it), `now`, or
  an RFC 3339 UTC time such as 2026-11-22T03:10:00Z or 2026-11-22T03:10:00.123456Z.

RANGE:
  A..B (B excluded), A..=B, A.., ..B or .. (everything).

--json:
  one JSON object for get, put, del, stat, check, flush, compact, load and bench; one JSON object
  per line for scan, history, changes and dump.

Exit codes:
  0 ok, 1 not found (get, history), 2 bad arguments or input, 3 database error (missing,
  locked, not a database, I/O), 4 corruption found.";

/// ZVerse from the shell: read, write, inspect, verify, dump, load and benchmark a database.
#[derive(Debug, Parser)]
#[command(name = "zverse", version, after_help = AFTER_HELP)]
struct Cli {
    /// The database directory (created by the first write) [default: ./zverse-data; for
    /// bench: ./zverse-bench].
    #[arg(long, global = true, env = "ZVERSE_DB")]
    db: Option<PathBuf>,
    /// Print JSON instead of text (see below).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write VALUE (or the bytes of --value-file) under KEY; prints the write's version.
    Put {
        /// The key (escape form).
        key: String,
        /// The value (escape form).
        #[arg(required_unless_present = "value_file")]
        value: Option<String>,
        /// Read the value's bytes, as they are, from PATH (`-`: stdin) instead of VALUE.
        #[arg(long, value_name = "PATH", conflicts_with = "value")]
        value_file: Option<PathBuf>,
    },
    /// Print KEY's value, latest or as of a time; exit code 1 if it has none.
    Get {
        /// The key (escape form).
        key: String,
        /// Read as of this TIME (the newest version at or before it).
        #[arg(long)]
        at: Option<String>,
        /// Write the value's bytes as they are (no escape form, no newline).
        #[arg(long, conflicts_with = "json")]
        raw: bool,
    },
    /// Delete KEY (writes a tombstone version); prints the version.
    Del {
        /// The key (escape form).
        key: String,
    },
    /// List keys and values in key order, latest or as of a time.
    Scan {
        /// The keys to list: A..B, A..=B, A.., ..B or .. (default: all).
        range: Option<String>,
        /// List the keys starting with this prefix (escape form) instead of a RANGE.
        #[arg(long, conflicts_with = "range")]
        prefix: Option<String>,
        /// Read as of this TIME.
        #[arg(long)]
        at: Option<String>,
        /// Stop after this many keys.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Every version of KEY, newest first (deletes included); exit code 1 if it has none.
    History {
        /// The key (escape form).
        key: String,
    },
    /// Every write to keys in a range within a time window, oldest first.
    Changes {
        /// The keys: A..B, A..=B, A.., ..B or .. (default: all).
        #[arg(long)]
        keys: Option<String>,
        /// The window's start TIME, included (default: the beginning).
        #[arg(long)]
        from: Option<String>,
        /// The window's end TIME, included (default: now).
        #[arg(long)]
        to: Option<String>,
    },
    /// Tiers, segments, sizes, versions, amplification and the I/O backend.
    Stat,
    /// Verify every checksum of every file; exit code 4 and the file and offset on corruption.
    Check,
    /// Merge every segment into one now (drops versions outside retention).
    Compact,
    /// Write the memtable to a segment now.
    Flush,
    /// Write the database as JSON lines {"key", "version", "value"} to stdout.
    Dump {
        /// Every version, deletes included (value null), oldest first; default: the latest
        /// live value of each key, in key order.
        #[arg(long)]
        all_versions: bool,
    },
    /// Read JSON lines (from `dump`) from FILE or stdin, keeping their versions.
    Load {
        /// The dump file (default: stdin).
        file: Option<PathBuf>,
    },
    /// Run the built-in workload and print ops/s and p50/p99 latency per kind of query.
    Bench(BenchArgs),
}

/// The `bench` workload's size and settings.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Distinct keys written.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Versions written per key (rounds of the fill; as-of reads pick a round).
    #[arg(long, default_value_t = 4)]
    pub versions: u32,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Point reads for each of `read latest` and `read as-of` (default: as many as keys).
    #[arg(long)]
    pub reads: Option<u64>,
    /// Queries for each of range (100 keys each), history and changes (default: keys / 20).
    #[arg(long)]
    pub queries: Option<u64>,
    /// Sync every write of the fill (durability Sync); default: no syncs (durability None).
    #[arg(long)]
    pub sync: bool,
    /// Replace the database an earlier bench left in --db (only a directory bench created and
    /// marked, holding nothing but ZVerse's files; anything else is refused).
    #[arg(long)]
    pub fresh: bool,
    /// The random seed for keys and queries.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            if fail.exit != Exit::Quiet {
                eprintln!("zverse: {}", fail.message);
            }
            ExitCode::from(fail.exit as u8)
        }
    }
}

/// Where the commands find the database unless `--db` or `ZVERSE_DB` says.
const DB_DEFAULT: &str = "./zverse-data";
/// Where `bench` works unless `--db` or `ZVERSE_DB` says: never the database of the others.
const BENCH_DB_DEFAULT: &str = "./zverse-bench";

fn run(cli: Cli) -> Result<(), Fail> {
    let default =
        if matches!(cli.command, Command::Bench(_)) { BENCH_DB_DEFAULT } else { DB_DEFAULT };
    let db = cli.db.unwrap_or_else(|| PathBuf::from(default));
    let context = commands::Context { db, json: cli.json };
    match cli.command {
        Command::Put { key, value, value_file } => {
            let value = match (&value, &value_file) {
                (_, Some(path)) => commands::ValueSource::File(path),
                (Some(text), None) => commands::ValueSource::Text(text),
                (None, None) => return Err(Fail::usage("put needs VALUE or --value-file PATH")),
            };
            commands::put(&context, &key, &value)
        }
        Command::Get { key, at, raw } => commands::get(&context, &key, at.as_deref(), raw),
        Command::Del { key } => commands::del(&context, &key),
        Command::Scan { range, prefix, at, limit } => commands::scan(
            &context,
            &commands::ScanArgs {
                range: range.as_deref(),
                prefix: prefix.as_deref(),
                at: at.as_deref(),
                limit,
            },
        ),
        Command::History { key } => commands::history(&context, &key),
        Command::Changes { keys, from, to } => {
            commands::changes(&context, keys.as_deref(), from.as_deref(), to.as_deref())
        }
        Command::Stat => commands::stat(&context),
        Command::Check => commands::check(&context),
        Command::Compact => commands::maintain(&context, commands::Maintenance::Compact),
        Command::Flush => commands::maintain(&context, commands::Maintenance::Flush),
        Command::Dump { all_versions } => dump::dump(&context, all_versions),
        Command::Load { file } => dump::load(&context, file.as_deref()),
        Command::Bench(args) => bench::run(&context, &args),
    }
}
