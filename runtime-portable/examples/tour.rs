//! A tour of the API: `cargo run -p zverse --example tour`.

use zverse::{Db, Options, Version};

fn main() -> zverse::Result<()> {
    let dir = std::env::temp_dir().join(format!("zverse-tour-{}", std::process::id()));
    let db = Db::open(&dir, Options::default())?;

    let v1 = db.put(b"user:1", b"alice")?;
    let v2 = db.put(b"user:1", b"alicia")?;
    db.put(b"user:2", b"bob")?;
    let v4 = db.delete(b"user:2")?;

    println!("latest user:1 = {:?}", db.get(b"user:1")?);
    println!("user:1 as of v1 = {:?}", db.get_at(b"user:1", v1)?);
    for item in db.history(b"user:1")? {
        let (version, value) = item?;
        println!("  user:1 @ {version}: {value:?}");
    }
    for item in db.prefix_at(b"user:", v2)? {
        let (key, value) = item?;
        println!("  as of v2: {key:?} = {value:?}");
    }
    for item in db.range("user:0".."user:9")?.rev() {
        let (key, value) = item?;
        println!("  descending: {key:?} = {value:?}");
    }
    for change in db.changes(.., v2..=v4)? {
        let change = change?;
        println!("  changed: {:?} @ {} -> {:?}", change.key, change.version, change.value);
    }

    let snapshot = db.snapshot();
    let v5: Version = db.batch().put(b"user:3", b"carol").delete(b"user:1").commit()?;
    println!(
        "batch committed at {v5}; the snapshot still sees user:1 = {:?}",
        snapshot.get(b"user:1")?
    );
    drop(snapshot);

    db.flush()?;
    db.compact()?;
    println!("{:#?}", db.stats());
    db.close()?;
    std::fs::remove_dir_all(&dir).map_err(zverse::Error::Io)?;
    Ok(())
}
