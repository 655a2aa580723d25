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

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::fail::{Exit, Fail};

const AFTER_HELP: &str = "\
Keys and values on the command line and in text output (the escape form):
  printable ASCII stands for itself, a backslash is \\\\, any other byte is \\xNN
  (two hex digits). Output is always in that form, so it round-trips. To put `..` inside a
  key of a RANGE, write the dots as \\x2e. `put --value-file PATH` (or `-` for stdin) takes
  a value's bytes as they are; `get --raw` prints them as they are.

TIME (for --at, --from, --to):
  a raw version (microseconds since the Unix epoch, as every command prints it); `now`;
  `yesterday`; an RFC 3339 time with any offset (2026-11-22T03:10:00Z, or `date -Iseconds`
  output such as 2026-11-22T04:10:00+01:00); a date and time without an offset, read as UTC
  (2026-11-22 03:10:00, 2026-11-22); or a time relative to now (`1h ago`, `2 days ago`,
  `90 minutes ago`).

RANGE:
  A..B (B excluded), A..=B, A.., ..B or .. (everything).

--json:
  one JSON object for get, put, del, stat, check, flush, compact, load and bench; one JSON object
  per line for scan, history and changes. Keys and values that are UTF-8 are JSON strings as
  they are; other bytes are {\"base64\": \"...\"} (standard alphabet, padded).

Dump format (dump writes it, load reads it; version 1):
  a header line {\"zverse_dump\":1,\"all_versions\":BOOL,\"snapshot_version\":N}, then one
  line per version of a key, oldest first: {\"key\":KEY,\"version\":N,\"value\":VALUE}, KEY
  and VALUE as in --json, VALUE null for a delete. load commits each version's lines as one
  batch at that version, so it needs a database whose versions are older (a new one); it also
  reads `changes --json` output. Both stream: memory does not grow with the database.

Backups (checkpoint, then increments):
  `zverse checkpoint DEST` writes a copy of the database as of version V into the new
  directory DEST (hard links where it can) and prints V. `zverse dump --all-versions --since V
  > inc1.jsonl` writes every version after V, its header naming V as \"since\" and its end as
  snapshot_version S; the next increment is `--since S`. To restore, copy DEST and load the
  increments into it in order (`zverse --db COPY load inc1.jsonl`, ...): load refuses an
  increment whose base is not the database's newest version (a gap or an overlap), and resumes
  one a killed load applied in part.

Exit codes:
  0 ok, 1 not found (get, history), 2 bad arguments or input, 3 database error (missing,
  locked, not a database, I/O), 4 corruption found (also: ZVerse files without a MANIFEST).";

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
        /// Write the value's bytes as they are (no escape form, no newline; not with --json).
        #[arg(long)]
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
    /// Write the database to stdout in the dump format (below): a header, then JSON lines
    /// {"key", "version", "value"}, oldest first.
    Dump {
        /// Every version, deletes included (value null); default: the latest live value of
        /// each key.
        #[arg(long)]
        all_versions: bool,
        /// Write an increment: only the versions above VERSION (with --all-versions; VERSION is
        /// a checkpoint's or the previous dump's `snapshot_version`).
        #[arg(long, value_name = "VERSION", requires = "all_versions")]
        since: Option<u64>,
    },
    /// Write a consistent copy of the database into the new directory DEST (hard links of its
    /// segments where DEST is on the same file system); prints the version it is as of.
    Checkpoint {
        /// The new directory (must not exist).
        dest: PathBuf,
    },
    /// Read a dump (or `changes --json` output) from FILE or stdin, keeping its versions.
    Load {
        /// The dump file (default: stdin).
        file: Option<PathBuf>,
    },
    /// Run the built-in workload and print ops/s and p50/p99 latency per kind of query.
    Bench(BenchArgs),
    /// Print the completion script for SHELL: bash, zsh, fish, elvish or powershell.
    ///
    /// For bash: `zverse completions bash > ~/.local/share/bash-completion/completions/zverse`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `zverse man > zverse.1; man ./zverse.1`.
    Man,
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

/// Writes the completion script for `shell`, generated from the clap definitions (into
/// memory first: `generate` panics on a write error such as a closed pipe).
fn completions(shell: clap_complete::Shell) -> Result<(), Fail> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "zverse", &mut script);
    let mut out = commands::stdout();
    std::io::Write::write_all(&mut out, &script)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// Writes the man page, generated from the clap definitions.
fn man() -> Result<(), Fail> {
    let mut out = commands::stdout();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

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
        Command::Dump { all_versions, since } => dump::dump(&context, all_versions, since),
        Command::Checkpoint { dest } => dump::checkpoint(&context, &dest),
        Command::Load { file } => dump::load(&context, file.as_deref()),
        Command::Bench(args) => bench::run(&context, &args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
    }
}
