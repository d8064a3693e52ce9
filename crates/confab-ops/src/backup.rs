//! Backups of a deployment: one compressed archive per backup, its proof of restorability,
//! restores, and the per-pool inventory of users.
//!
//! **The archive** is a gzip-compressed tar file holding:
//! - `manifest.json` — the format ([`FORMAT`]), the Confab and schema versions, when and by
//!   whom it was written, the backend it was read from, every table with its columns, their
//!   types and its row count, every other entry with its size and SHA-256, and the number of
//!   users;
//! - `tables/NAME.jsonl` — each table of [`confab_store::TABLES`] as JSON Lines, one row per
//!   line as an array in column order (bytes in base64), in primary-key order: the same state
//!   gives the same bytes on either backend, so a backup of SQLite restores into PostgreSQL
//!   and the other way round;
//! - `inventory.csv` and `inventory.json` — per pool, every user homed there ([`inventory`]).
//!
//! All of it comes from one read of the store ([`confab_store::Store::dump`]): consistent to
//! one instant while front-ends keep writing. The archive is written next to its destination
//! and renamed into place, so a file named like a backup is always a whole one.
//!
//! **Verification** ([`verify`]) checks the archive's entries against the manifest (nothing
//! missing, nothing added, every checksum), decodes every table, restores them into a scratch
//! SQLite store, reads that back and compares it with the manifest entry by entry (the
//! inventory included), and checks the audit log's hash chain there. **Restore** ([`load`]
//! then [`restore`]) runs the same checks before it writes anything, and writes in one
//! transaction.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use confab_store::{Cell, ColumnType, Dump, RestoreInto, Store, StoreLocation, TableDump};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::control::{ChangeContext, Right};
use crate::OpsError;

/// The archive format this version writes and reads.
pub const FORMAT: &str = "confab-backup/1";

/// The largest entry an archive may hold once decompressed (a guard against a damaged or
/// hostile archive, not a limit on deployments: 100,000 users with contacts take some MB).
const MAX_ENTRY: u64 = 16 << 30;

/// One table in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table.
    pub name: String,
    /// Its columns: name and type (`int`, `int?`, `text`, `text?`, `bool`, `bytes`).
    pub columns: Vec<(String, String)>,
    /// How many rows.
    pub rows: usize,
}

/// One file of an archive, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its path in the archive.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What an archive holds (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The Confab version that wrote it.
    pub confab_version: String,
    /// The store's schema version.
    pub schema_version: i64,
    /// When, Unix seconds.
    pub created_at: i64,
    /// Who: an administrator, or `schedule`.
    pub created_by: String,
    /// The backend it was read from.
    pub backend: String,
    /// The tables, in restore order.
    pub tables: Vec<TableEntry>,
    /// Every other entry of the archive, with its checksum.
    pub entries: Vec<Entry>,
    /// Users in the deployment.
    pub users: usize,
}

/// A user in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryRow {
    /// The pool the user is homed on.
    pub pool: String,
    /// `user@domain`.
    pub address: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// When one of its registrations was last written (RFC 3339), if it has any.
    pub last_registration: Option<String>,
    /// Entries on its contact list.
    pub contacts: usize,
}

/// A backup read, checked, and decoded.
#[derive(Debug)]
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// The store it holds.
    pub dump: Dump,
    /// Its inventory as written (CSV).
    pub inventory_csv: Vec<u8>,
    /// The SHA-256 of the archive file, hex.
    pub sha256: String,
}

/// What [`create`] wrote.
#[derive(Debug)]
pub struct Created {
    /// Where.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Who takes a backup: an administrator, in a context authorised for [`Right::Backup`], or
/// the schedule `confab serve` was configured with by whoever runs it.
#[derive(Debug, Clone, Copy)]
pub enum TakenBy<'a> {
    /// An administrator.
    Operator(&'a ChangeContext<'a>),
    /// The server's schedule.
    Schedule,
}

impl TakenBy<'_> {
    fn name(&self) -> Result<String, OpsError> {
        match self {
            TakenBy::Operator(ctx) => {
                ctx.require(Right::Backup)?;
                Ok(ctx.operator().name().to_owned())
            }
            TakenBy::Schedule => Ok("schedule".to_owned()),
        }
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A table as JSON Lines (see the module documentation).
pub fn encode_table(table: &TableDump) -> Vec<u8> {
    let mut out = Vec::new();
    for row in &table.rows {
        let values: Vec<serde_json::Value> = row
            .iter()
            .map(|cell| match cell {
                Cell::Null => serde_json::Value::Null,
                Cell::Int(v) => serde_json::Value::from(*v),
                Cell::Text(v) => serde_json::Value::from(v.as_str()),
                Cell::Bool(v) => serde_json::Value::from(*v),
                Cell::Bytes(v) => {
                    serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(v))
                }
            })
            .collect();
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &values);
        out.push(b'\n');
    }
    out
}

fn decode_table(
    spec: &'static confab_store::TableSpec,
    bytes: &[u8],
) -> Result<TableDump, OpsError> {
    let bad = |line: usize, why: &str| OpsError::Backup {
        problem: format!("tables/{}.jsonl line {line}: {why}", spec.name),
    };
    let mut rows = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let values: Vec<serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| bad(i + 1, &e.to_string()))?;
        if values.len() != spec.columns.len() {
            return Err(bad(i + 1, "wrong number of values"));
        }
        let mut row = Vec::with_capacity(values.len());
        for ((column, ty), v) in spec.columns.iter().zip(values) {
            let wrong = || bad(i + 1, &format!("column {column} is not a {}", ty.as_str()));
            row.push(match (ty, v) {
                (ColumnType::OptInt | ColumnType::OptText, serde_json::Value::Null) => Cell::Null,
                (ColumnType::Int | ColumnType::OptInt, v) => {
                    Cell::Int(v.as_i64().ok_or_else(wrong)?)
                }
                (ColumnType::Text | ColumnType::OptText, serde_json::Value::String(s)) => {
                    Cell::Text(s)
                }
                (ColumnType::Bool, serde_json::Value::Bool(b)) => Cell::Bool(b),
                (ColumnType::Bytes, serde_json::Value::String(s)) => Cell::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|_| wrong())?,
                ),
                _ => return Err(wrong()),
            });
        }
        rows.push(row);
    }
    Ok(TableDump { spec, rows })
}

fn int(row: &[Cell], at: usize) -> Option<i64> {
    row.get(at).and_then(Cell::as_int)
}

fn text(row: &[Cell], at: usize) -> Option<&str> {
    row.get(at).and_then(Cell::as_text)
}

/// The inventory of `dump`: every user, by pool then address, with its display name,
/// enabled state, last registration and number of contacts.
pub fn inventory(dump: &Dump) -> Vec<InventoryRow> {
    let mut last: HashMap<i64, i64> = HashMap::new();
    if let Some(t) = dump.table("registrations") {
        let (user, at) = (t.spec.column("user_id"), t.spec.column("updated_at"));
        for row in &t.rows {
            if let (Some(u), Some(a)) = (int(row, user), int(row, at)) {
                let e = last.entry(u).or_insert(a);
                *e = (*e).max(a);
            }
        }
    }
    let mut contacts: HashMap<i64, usize> = HashMap::new();
    if let Some(t) = dump.table("contacts") {
        let user = t.spec.column("user_id");
        for row in &t.rows {
            if let Some(u) = int(row, user) {
                *contacts.entry(u).or_default() += 1;
            }
        }
    }
    let mut rows = Vec::new();
    if let Some(t) = dump.table("users") {
        let c = |name| t.spec.column(name);
        let (id, user, domain, name, pool, enabled) = (
            c("id"),
            c("user_part"),
            c("domain"),
            c("display_name"),
            c("pool"),
            c("enabled"),
        );
        for row in &t.rows {
            let uid = int(row, id).unwrap_or(-1);
            rows.push(InventoryRow {
                pool: text(row, pool).unwrap_or_default().to_owned(),
                address: format!(
                    "{}@{}",
                    text(row, user).unwrap_or_default(),
                    text(row, domain).unwrap_or_default()
                ),
                display_name: text(row, name).map(str::to_owned),
                enabled: matches!(row.get(enabled), Some(Cell::Bool(true))),
                last_registration: last.get(&uid).map(|t| crate::time::rfc3339(*t)),
                contacts: contacts.get(&uid).copied().unwrap_or(0),
            });
        }
    }
    rows.sort_by(|a, b| (&a.pool, &a.address).cmp(&(&b.pool, &b.address)));
    rows
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The inventory as CSV, with a header line.
pub fn inventory_csv(rows: &[InventoryRow]) -> String {
    let mut out = String::from("pool,address,display_name,enabled,last_registration,contacts\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            csv_field(&r.pool),
            csv_field(&r.address),
            csv_field(r.display_name.as_deref().unwrap_or("")),
            r.enabled,
            r.last_registration.as_deref().unwrap_or(""),
            r.contacts
        ));
    }
    out
}

/// The inventory as JSON: an array of users.
pub fn inventory_json(rows: &[InventoryRow]) -> String {
    let mut out = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_owned());
    out.push('\n');
    out
}

/// The entries of an archive for `dump`, with its manifest (not yet an entry).
fn entries(dump: &Dump, created_by: &str, created_at: i64) -> (Manifest, Vec<(String, Vec<u8>)>) {
    let mut files = Vec::new();
    let mut tables = Vec::new();
    for t in &dump.tables {
        tables.push(TableEntry {
            name: t.spec.name.to_owned(),
            columns: t
                .spec
                .columns
                .iter()
                .map(|(c, ty)| ((*c).to_owned(), ty.as_str().to_owned()))
                .collect(),
            rows: t.rows.len(),
        });
        files.push((format!("tables/{}.jsonl", t.spec.name), encode_table(t)));
    }
    let inv = inventory(dump);
    files.push(("inventory.csv".to_owned(), inventory_csv(&inv).into_bytes()));
    files.push((
        "inventory.json".to_owned(),
        inventory_json(&inv).into_bytes(),
    ));
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        confab_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version: dump.schema_version,
        created_at,
        created_by: created_by.to_owned(),
        backend: dump.backend.to_owned(),
        tables,
        entries: files
            .iter()
            .map(|(path, bytes)| Entry {
                path: path.clone(),
                bytes: bytes.len() as u64,
                sha256: sha256(bytes),
            })
            .collect(),
        users: inv.len(),
    };
    (manifest, files)
}

fn io_error(path: &Path, e: std::io::Error) -> OpsError {
    OpsError::BackupFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Writes the archive of `dump` to `out` (beside it first, then renamed into place), hashed
/// as it is written; returns its manifest, size and SHA-256.
fn write_archive(
    dump: &Dump,
    who: &str,
    created_at: i64,
    out: &Path,
) -> Result<(Manifest, u64, String), OpsError> {
    let (manifest, files) = entries(dump, who, created_at);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error(dir, e))?;
    // Hashed as it is written: the archive is not read back.
    let (bytes, digest) = {
        let gz = flate2::write::GzEncoder::new(
            Hashing::new(tmp.as_file_mut()),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| OpsError::Backup {
                problem: e.to_string(),
            })?;
        let all = std::iter::once(("manifest.json".to_owned(), manifest_bytes)).chain(files);
        for (path, bytes) in all {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(u64::try_from(created_at).unwrap_or(0));
            header.set_cksum();
            tar.append_data(&mut header, &path, bytes.as_slice())
                .map_err(|e| io_error(out, e))?;
        }
        let gz = tar.into_inner().map_err(|e| io_error(out, e))?;
        gz.finish().map_err(|e| io_error(out, e))?.finish()
    };
    tmp.as_file().sync_all().map_err(|e| io_error(out, e))?;
    tmp.persist(out).map_err(|e| io_error(out, e.error))?;
    Ok((manifest, bytes, digest))
}

/// Writes a backup of `store` to `out` (a file; its directory is created): one consistent
/// read, the archive written beside it and renamed into place, its SHA-256 and size
/// recorded with the deployment's backups (unverified) and its taking in the audit log.
/// `progress` is told each stage.
pub async fn create(
    store: &Store,
    by: TakenBy<'_>,
    out: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Created, OpsError> {
    let who = by.name()?;
    progress("reading the store");
    let dump = store.dump().await?;
    let created_at = crate::time::now();
    progress("writing the archive");
    // Encoding and compressing is CPU work of seconds for a large deployment: off the async
    // workers, which serve SIP in `confab serve`.
    let (creator, target) = (who.clone(), out.to_path_buf());
    let (manifest, bytes, digest) =
        tokio::task::spawn_blocking(move || write_archive(&dump, &creator, created_at, &target))
            .await
            .map_err(|e| OpsError::Backup {
                problem: format!("the archive writer stopped: {e}"),
            })??;
    let path = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    store
        .record_backup(&confab_store::BackupRecord {
            path: path.display().to_string(),
            created_at,
            created_by: who.clone(),
            sha256: digest.clone(),
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            users: i64::try_from(manifest.users).unwrap_or(i64::MAX),
            verified_at: None,
            verified_ok: None,
            verify_note: None,
        })
        .await?;
    store
        .audit(
            &who,
            "backup.create",
            &path.display().to_string(),
            &crate::control::json(&serde_json::json!({
                "sha256": digest,
                "users": manifest.users,
            })),
        )
        .await?;
    Ok(Created {
        path,
        manifest,
        bytes,
        sha256: digest,
    })
}

/// The SHA-256 (hex) of the file at `path`, read in a stream: whether an archive is still
/// the one that was verified, without loading it.
pub fn file_sha256(path: &Path) -> Result<String, OpsError> {
    let fail = |e: std::io::Error| OpsError::BackupFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut reader = Hashing::new(std::fs::File::open(path).map_err(fail)?);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(fail)?;
    Ok(reader.finish().1)
}

/// A reader or writer that hashes (SHA-256) and counts what passes through it.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes seen, and their SHA-256 in hex.
    fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the archive at `path` and checks it: a gzip tar with a manifest of this format and
/// a schema this version knows, every entry the manifest lists present with its checksum and
/// nothing else, every table decoded with the row count the manifest gives. Nothing is
/// written anywhere.
pub fn load(path: &Path) -> Result<Loaded, OpsError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    // Hashed as it is read: the archive is read once.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(Hashing::new(file)));
    let damaged = |e: std::io::Error| OpsError::Backup {
        problem: format!(
            "the archive cannot be read ({e}): it is truncated, damaged, or not a Confab backup"
        ),
    };
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        let size = entry.header().size().map_err(damaged)?;
        if size > MAX_ENTRY {
            return Err(OpsError::Backup {
                problem: format!("entry {name} claims {size} bytes, more than a backup holds"),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(damaged)?;
        if files.insert(name.clone(), bytes).is_some() {
            return Err(OpsError::Backup {
                problem: format!("entry {name} is in the archive twice"),
            });
        }
    }
    // The rest of the file (the end of the gzip stream, padding) completes its hash.
    let mut rest = archive.into_inner().into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(damaged)?;
    let (_, digest) = rest.finish();
    let manifest_bytes = files
        .remove("manifest.json")
        .ok_or_else(|| OpsError::Backup {
            problem: "the archive has no manifest.json: it is not a Confab backup".to_owned(),
        })?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| OpsError::Backup {
            problem: format!("manifest.json cannot be read: {e}"),
        })?;
    if manifest.format != FORMAT {
        return Err(OpsError::Backup {
            problem: format!(
                "the archive is in format {}, this confab reads {FORMAT}",
                manifest.format
            ),
        });
    }
    if manifest.schema_version > confab_store::SCHEMA_VERSION {
        return Err(OpsError::Backup {
            problem: format!(
                "the backup was taken by a newer Confab ({}, schema version {}; this one knows \
                 up to {}): restore it with that version or a later one",
                manifest.confab_version,
                manifest.schema_version,
                confab_store::SCHEMA_VERSION
            ),
        });
    }
    for e in &manifest.entries {
        let Some(bytes) = files.get(&e.path) else {
            return Err(OpsError::Backup {
                problem: format!("entry {} is missing from the archive", e.path),
            });
        };
        if bytes.len() as u64 != e.bytes || sha256(bytes) != e.sha256 {
            return Err(OpsError::Backup {
                problem: format!(
                    "entry {} does not match its checksum in the manifest: the archive was \
                     changed or damaged",
                    e.path
                ),
            });
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|k| !manifest.entries.iter().any(|e| &e.path == *k))
    {
        return Err(OpsError::Backup {
            problem: format!("entry {extra} is not in the manifest: the archive was changed"),
        });
    }
    let mut tables = Vec::with_capacity(manifest.tables.len());
    for t in &manifest.tables {
        let spec = confab_store::table_spec(&t.name).ok_or_else(|| OpsError::Backup {
            problem: format!("table {} is not one this confab knows", t.name),
        })?;
        let expected: Vec<(String, String)> = spec
            .columns
            .iter()
            .map(|(c, ty)| ((*c).to_owned(), ty.as_str().to_owned()))
            .collect();
        if t.columns != expected {
            return Err(OpsError::Backup {
                problem: format!(
                    "table {} has other columns than this confab's schema version {}: restore \
                     with the version that wrote it ({})",
                    t.name,
                    confab_store::SCHEMA_VERSION,
                    manifest.confab_version
                ),
            });
        }
        let path = format!("tables/{}.jsonl", t.name);
        // Decoded, the text is not needed any more.
        let bytes = files.remove(&path).ok_or_else(|| OpsError::Backup {
            problem: format!("table {} has no entry {path}", t.name),
        })?;
        let table = decode_table(spec, &bytes)?;
        drop(bytes);
        if table.rows.len() != t.rows {
            return Err(OpsError::Backup {
                problem: format!(
                    "table {} holds {} rows, the manifest says {}",
                    t.name,
                    table.rows.len(),
                    t.rows
                ),
            });
        }
        tables.push(table);
    }
    if tables.len() != confab_store::TABLES.len() {
        return Err(OpsError::Backup {
            problem: format!(
                "the backup holds {} tables, this confab's schema {}",
                tables.len(),
                confab_store::TABLES.len()
            ),
        });
    }
    let inventory_csv = files.remove("inventory.csv").unwrap_or_default();
    let backend = match manifest.backend.as_str() {
        "postgres" => "postgres",
        _ => "sqlite",
    };
    Ok(Loaded {
        dump: Dump {
            schema_version: manifest.schema_version,
            backend,
            tables,
        },
        manifest,
        inventory_csv,
        sha256: digest,
    })
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Rows restored into the scratch store, by table.
    pub rows: Vec<(&'static str, usize)>,
}

/// Proves the archive at `path` restorable: [`load`], then a restore into a scratch SQLite
/// store, read back and compared with the manifest entry by entry (tables and inventory),
/// and the audit log's hash chain verified there. When the deployment `known` knows the
/// backup, the outcome is recorded with it.
pub async fn verify(path: &Path, known: Option<&Store>) -> Result<Verified, OpsError> {
    let outcome = verify_only(path).await;
    if let Some(store) = known {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let note = match &outcome {
            Ok(v) => format!("restored {} users and compared", v.manifest.users),
            Err(e) => e.to_string(),
        };
        store
            .record_verification(&key.display().to_string(), outcome.is_ok(), &note)
            .await?;
    }
    outcome
}

/// [`load`] on a blocking thread: decompressing and decoding an archive is CPU work of seconds
/// for a large deployment, which the async workers (serving SIP in `confab serve`) must not do.
async fn load_off_the_workers(path: &Path) -> Result<Loaded, OpsError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || load(&path))
        .await
        .map_err(|e| OpsError::Backup {
            problem: format!("the archive reader stopped: {e}"),
        })?
}

async fn verify_only(path: &Path) -> Result<Verified, OpsError> {
    let Loaded { manifest, dump, .. } = load_off_the_workers(path).await?;
    let scratch = tempfile::TempDir::new().map_err(|e| io_error(Path::new("scratch"), e))?;
    let location = StoreLocation::in_data_dir(&scratch.path().join("data"));
    let store = Store::open(&location).await?;
    let result = async {
        let restored = store.restore(&dump, RestoreInto::Empty, None).await?;
        // What was read is no longer needed: the comparison is with the manifest's hashes.
        drop(dump);
        let back = store.dump().await?;
        // Table by table, so that one encoded table at a time is in memory.
        for t in &back.tables {
            let path = format!("tables/{}.jsonl", t.spec.name);
            let hash = sha256(&encode_table(t));
            let written = manifest.entries.iter().find(|w| w.path == path);
            if written.map(|w| &w.sha256) != Some(&hash) {
                return Err(OpsError::Backup {
                    problem: format!("{path} restored does not read back as the backup holds it"),
                });
            }
        }
        let inv = inventory(&back);
        for (path, bytes) in [
            ("inventory.csv", inventory_csv(&inv)),
            ("inventory.json", inventory_json(&inv)),
        ] {
            let written = manifest.entries.iter().find(|w| w.path == path);
            if written.map(|w| &w.sha256) != Some(&sha256(bytes.as_bytes())) {
                return Err(OpsError::Backup {
                    problem: format!(
                        "{path} does not match the inventory of the restored deployment"
                    ),
                });
            }
        }
        drop(back);
        let audit = store.verify_audit().await?;
        if let Some(bad) = audit.first_bad {
            return Err(OpsError::Backup {
                problem: format!(
                    "the audit log in the backup is broken at entry {} ({})",
                    bad.seq, bad.problem
                ),
            });
        }
        Ok(restored.rows)
    }
    .await;
    store.close().await;
    Ok(Verified {
        manifest,
        rows: result?,
    })
}

/// Restores the checked backup `loaded` into `store`: into an empty store, or replacing the
/// deployment (`into`; the caller makes that a change). Recorded in the audit log by `by`.
pub async fn restore(
    store: &Store,
    loaded: &Loaded,
    into: RestoreInto,
    by: &str,
    source: &Path,
) -> Result<confab_store::Restored, OpsError> {
    let detail = crate::control::json(&serde_json::json!({
        "archive": source.display().to_string(),
        "sha256": loaded.sha256,
        "taken_at": loaded.manifest.created_at,
        "users": loaded.manifest.users,
    }));
    Ok(store
        .restore(&loaded.dump, into, Some((by, &detail)))
        .await?)
}

/// The backups the deployment knows about.
pub async fn list(store: &Store) -> Result<Vec<confab_store::BackupRecord>, OpsError> {
    Ok(store.backups().await?)
}

/// Keeps the `keep` newest backups the schedule wrote in `dir` and deletes the others (file
/// and record); returns the paths deleted.
pub async fn prune(store: &Store, dir: &Path, keep: usize) -> Result<Vec<String>, OpsError> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let scheduled: Vec<confab_store::BackupRecord> = store
        .backups()
        .await?
        .into_iter()
        .filter(|b| b.created_by == "schedule" && Path::new(&b.path).parent() == Some(&dir))
        .collect();
    let mut gone = Vec::new();
    for b in scheduled.into_iter().skip(keep) {
        match std::fs::remove_file(&b.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(Path::new(&b.path), e)),
        }
        store.forget_backup(&b.path).await?;
        gone.push(b.path);
    }
    Ok(gone)
}

/// Writes `bytes` to `out` (for an inventory printed to a file).
pub fn write_file(out: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    let mut f = std::fs::File::create(out).map_err(|e| io_error(out, e))?;
    f.write_all(bytes).map_err(|e| io_error(out, e))
}
