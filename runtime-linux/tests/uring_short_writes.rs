//! Genuine short and failed write completions on io_uring. A file size limit (`RLIMIT_FSIZE`)
//! makes the kernel cut a write that crosses it short and fail the next one with `EFBIG`: the
//! backend must carry on past the short completion, submit the rest, and return the `EFBIG`
//! of the rest, leaving the bytes before the limit written, whether the write was one linked
//! to its `fdatasync` (a log commit), chunks in flight with a draining `fdatasync` (a
//! segment), or unsynced chunks.
//!
//! The limit is process-wide, so this file holds a single test (cargo runs test binaries one
//! after another): nothing else in this process writes files.
#![cfg(target_os = "linux")]

use zverse::io::Io;
use zverse_linux::UringIo;

/// The file size limit: not page-aligned, inside the third 1 MiB chunk of a 5 MiB write.
const LIMIT_BYTES: u64 = (5 << 19) + 123;

#[test]
fn a_write_cut_short_by_the_file_size_limit_returns_efbig_after_writing_up_to_it() {
    let io = match UringIo::new() {
        Ok(io) => io,
        Err(error) => {
            eprintln!("io_uring refused by this kernel ({error}): nothing to check");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    set_file_size_limit(LIMIT_BYTES);
    let big: Vec<u8> = (0..5u32 << 20).map(|i| (i % 253) as u8).collect();
    let small = vec![0x5A; 4_000];
    let cases: [(&str, &[u8], u64, bool); 3] = [
        ("a log commit crossing the limit", &small, LIMIT_BYTES - 1_000, true),
        ("a segment, chunks and a draining sync", &big, 0, true),
        ("unsynced chunks", &big, 0, false),
    ];
    for (index, (what, bytes, offset, sync)) in cases.into_iter().enumerate() {
        let file = io.create_new(&dir.path().join(format!("{index}"))).unwrap();
        let result = if sync {
            file.write_all_at_and_sync(&[bytes], offset)
        } else {
            file.write_all_at(bytes, offset)
        };
        let error = result.expect_err(what);
        assert_eq!(error.raw_os_error(), Some(libc::EFBIG), "{what}: {error}");
        assert_eq!(file.len_bytes().unwrap(), LIMIT_BYTES, "{what}: written up to the limit");
        let kept = usize::try_from(LIMIT_BYTES - offset).unwrap();
        let mut read = vec![0; kept];
        file.read_exact_at(&mut read, offset).unwrap();
        assert!(read == bytes[..kept], "{what}: the bytes before the limit are the ones written");
    }
    // The ring is still usable: a write below the limit goes through.
    let file = io.open_read_write(&dir.path().join("1")).unwrap();
    file.write_all_at_and_sync(&[b"still", b" works"], 0).unwrap();
}

/// Sets this process's file size limit and ignores `SIGXFSZ`, so that a write past the limit
/// fails with `EFBIG` instead of killing the process.
fn set_file_size_limit(bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct it is given, which lives across the call.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit) };
    assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
    // SAFETY: SIG_IGN installs no handler code; ignoring SIGXFSZ is what the test needs.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR, "signal: {}", std::io::Error::last_os_error());
}
