//! `updraft_rank(search_words, phrases)`: bm25 as FTS5 computes it, but with each row's length taken from its
//! rowid ([`super::rowids`]) instead of FTS5's row sizes, and each phrase's document frequency remembered a while
//! ([`super::frequencies`]) under its text in `phrases` (the query's phrases, a line each, in FTS5's order).
//!
//! Why our own function: FTS5's `bm25` reads every match's size from its `_docsize` table, one B-tree lookup a
//! match; at a million objects that was 1.5 µs a match, four fifths of a ranked search (943 µs for a word in
//! 400 objects, 211 µs with this function). SQLite offers ranking functions only through its C API
//! (`fts5_api.xCreateFunction`), which neither rusqlite nor sqlx wraps, hence the `unsafe` here: plain calls of
//! the function table SQLite hands us, with the pointers it passes, within the call.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use rusqlite::{Connection, ffi};

use super::frequencies::DocFrequencies;
use super::rowids::length_of;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// What a query's rows share: each phrase's inverse document frequency and the mean row length.
struct Stats {
    idf: Vec<f64>,
    mean_length: f64,
    hits: Vec<f64>,
}

/// Makes `updraft_rank` known to `conn`, a connection searches run on, remembering frequencies in `frequencies`.
pub(crate) fn register(conn: &Connection, frequencies: &Arc<DocFrequencies>) -> rusqlite::Result<()> {
    let api = fts5_api(conn)?;
    let user = Arc::into_raw(Arc::clone(frequencies)).cast_mut().cast::<c_void>();
    // SAFETY: `api` is the live FTS5 API of this connection (checked non-null), the name a NUL-terminated
    // static string, and `rank` has the signature `fts5_extension_function` requires. `user` is an `Arc` given to
    // SQLite, which hands it to `drop_frequencies` when the connection closes; when the call fails SQLite keeps
    // nothing, and it is taken back here.
    unsafe {
        let rc = match (*api).xCreateFunction {
            Some(create) => create(api, c"updraft_rank".as_ptr(), user, Some(rank), Some(drop_frequencies)),
            None => ffi::SQLITE_ERROR,
        };
        if rc != ffi::SQLITE_OK {
            drop_frequencies(user);
        }
        check(rc)
    }
}

unsafe extern "C" fn drop_frequencies(user: *mut c_void) {
    // SAFETY: SQLite calls this once, with the pointer `register` made by `Arc::into_raw`.
    drop(unsafe { Arc::from_raw(user.cast_const().cast::<DocFrequencies>()) });
}

/// The connection's `fts5_api`, as SQLite's documentation says to get it: `SELECT fts5(?1)` with a pointer bound.
fn fts5_api(conn: &Connection) -> rusqlite::Result<*mut ffi::fts5_api> {
    let mut api: *mut ffi::fts5_api = std::ptr::null_mut();
    // SAFETY: the statement is prepared, bound, stepped and finalized on this connection's own handle within this
    // call; SQLite writes the API pointer into `api`, which outlives the statement.
    let rc = unsafe {
        let db = conn.handle();
        let mut statement = std::ptr::null_mut();
        let mut rc = ffi::sqlite3_prepare_v2(db, c"SELECT fts5(?1)".as_ptr(), -1, &mut statement, std::ptr::null_mut());
        if rc == ffi::SQLITE_OK {
            let target = (&raw mut api).cast::<c_void>();
            rc = ffi::sqlite3_bind_pointer(statement, 1, target, c"fts5_api_ptr".as_ptr(), None);
            if rc == ffi::SQLITE_OK && ffi::sqlite3_step(statement) != ffi::SQLITE_ROW {
                rc = ffi::SQLITE_ERROR;
            }
        }
        ffi::sqlite3_finalize(statement);
        rc
    };
    check(rc)?;
    if api.is_null() {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_ERROR), Some("no FTS5".into())));
    }
    Ok(api)
}

fn check(rc: c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK { Ok(()) } else { Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)) }
}

/// Counts the rows `xQueryPhrase` visits into the `i64` `user`.
unsafe extern "C" fn count_row(
    _api: *const ffi::Fts5ExtensionApi,
    _fts: *mut ffi::Fts5Context,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the `i64` `stats` passes for this call of `xQueryPhrase`.
    unsafe { *user.cast::<i64>() += 1 };
    ffi::SQLITE_OK
}

unsafe extern "C" fn drop_stats(stats: *mut c_void) {
    // SAFETY: SQLite calls this once, with the pointer `stats` made by `Box::into_raw`.
    drop(unsafe { Box::from_raw(stats.cast::<Stats>()) });
}

/// The query's [`Stats`], made at its first row and kept as FTS5 auxiliary data until the query ends. `keys`
/// names the query's phrases, or is empty.
///
/// # Safety
/// `api` and `fts` are the arguments of a call of [`rank`].
unsafe fn stats<'a>(
    api: &ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    keys: &[u8],
) -> Result<&'a mut Stats, c_int> {
    let (Some(get), Some(set), Some(rows), Some(sizes), Some(phrases), Some(query), Some(user)) = (
        api.xGetAuxdata,
        api.xSetAuxdata,
        api.xRowCount,
        api.xColumnTotalSize,
        api.xPhraseCount,
        api.xQueryPhrase,
        api.xUserData,
    ) else {
        return Err(ffi::SQLITE_ERROR);
    };
    // SAFETY: the calls are FTS5's own functions with the context of this call; auxiliary data set here is a
    // `Stats` that lives until FTS5 calls `drop_stats`, after the query's last row.
    unsafe {
        let existing = get(fts, 0).cast::<Stats>();
        if !existing.is_null() {
            return Ok(&mut *existing);
        }
        let (mut total_rows, mut total_tokens) = (0i64, 0i64);
        let rc = rows(fts, &mut total_rows);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let rc = sizes(fts, -1, &mut total_tokens);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let phrases = phrases(fts).max(0);
        // SAFETY of the cast: the user data `register` gave with the function, alive while the connection is.
        let frequencies = &*user(fts).cast_const().cast::<DocFrequencies>();
        let keys: Vec<&str> = std::str::from_utf8(keys).map_or_else(|_| Vec::new(), |keys| keys.split('\n').collect());
        let keys = if keys.len() == phrases as usize { keys } else { Vec::new() };
        let mut idf = Vec::with_capacity(phrases as usize);
        // One phrase's weight scales every score alike, so it cannot change the order: it is not worth a walk of
        // the phrase's whole doclist.
        for phrase in (0..phrases).filter(|_| phrases > 1) {
            let key = keys.get(phrase as usize);
            let known = key.and_then(|key| frequencies.get(key, total_rows));
            let hits = match known {
                Some(hits) => hits,
                None => {
                    let mut hits = 0i64;
                    let rc = query(fts, phrase, (&raw mut hits).cast::<c_void>(), Some(count_row));
                    if rc != ffi::SQLITE_OK {
                        return Err(rc);
                    }
                    if let Some(key) = key {
                        frequencies.put(key, total_rows, hits);
                    }
                    hits
                }
            };
            // As FTS5's bm25: a phrase in more than half the rows weighs almost nothing, never less.
            let x = (((total_rows - hits) as f64 + 0.5) / (hits as f64 + 0.5)).ln();
            idf.push(if x <= 0.0 { 1e-6 } else { x });
        }
        if phrases == 1 {
            idf.push(1.0);
        }
        let mean_length = (total_tokens as f64 / total_rows.max(1) as f64).max(1.0);
        let made = Box::into_raw(Box::new(Stats { idf, mean_length, hits: vec![0.0; phrases as usize] }));
        let rc = set(fts, made.cast::<c_void>(), Some(drop_stats));
        if rc != ffi::SQLITE_OK {
            // FTS5 has called `drop_stats` already.
            return Err(rc);
        }
        Ok(&mut *made)
    }
}

/// The FTS5 function: minus the row's bm25 score, so that better rows sort first, as with `bm25()`.
unsafe extern "C" fn rank(
    api: *const ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    ctx: *mut ffi::sqlite3_context,
    arguments: c_int,
    values: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: FTS5 calls this with its API, the query's context, the SQL function context and its `arguments`
    // SQL values after the table's, all valid for the call.
    unsafe {
        let api = &*api;
        let (Some(instances), Some(instance), Some(rowid)) = (api.xInstCount, api.xInst, api.xRowid) else {
            ffi::sqlite3_result_error_code(ctx, ffi::SQLITE_ERROR);
            return;
        };
        let keys = match arguments {
            0 => &[][..],
            _ => {
                let value = *values;
                let text = ffi::sqlite3_value_text(value);
                let length = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
                if text.is_null() { &[][..] } else { std::slice::from_raw_parts(text, length) }
            }
        };
        let stats = match stats(api, fts, keys) {
            Ok(stats) => stats,
            Err(rc) => {
                ffi::sqlite3_result_error_code(ctx, rc);
                return;
            }
        };
        stats.hits.iter_mut().for_each(|hits| *hits = 0.0);
        let mut count: c_int = 0;
        let rc = instances(fts, &mut count);
        if rc != ffi::SQLITE_OK {
            ffi::sqlite3_result_error_code(ctx, rc);
            return;
        }
        for i in 0..count {
            let (mut phrase, mut column, mut offset) = (0, 0, 0);
            if instance(fts, i, &mut phrase, &mut column, &mut offset) == ffi::SQLITE_OK
                && let Some(hits) = stats.hits.get_mut(phrase as usize)
            {
                *hits += 1.0;
            }
        }
        let length = f64::from(length_of(rowid(fts)).max(1));
        let norm = K1 * (1.0 - B + B * length / stats.mean_length);
        let score: f64 = stats.idf.iter().zip(&stats.hits).map(|(idf, f)| idf * f * (K1 + 1.0) / (f + norm)).sum();
        ffi::sqlite3_result_double(ctx, -score);
    }
}
