//! `updraft_rank(search_words)`: bm25 as FTS5 computes it, but with each row's length taken from its rowid
//! ([`super::rowids`]) instead of FTS5's row sizes.
//!
//! Why our own function: FTS5's `bm25` reads every match's size from its `_docsize` table, one B-tree lookup a
//! match; at a million objects that was 1.5 µs a match, four fifths of a ranked search (943 µs for a word in
//! 400 objects, 211 µs with this function). SQLite offers ranking functions only through its C API
//! (`fts5_api.xCreateFunction`), which neither rusqlite nor sqlx wraps, hence the `unsafe` here: plain calls of
//! the function table SQLite hands us, with the pointers it passes, within the call.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use rusqlite::{Connection, ffi};

use super::rowids::length_of;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// What a query's rows share: each phrase's inverse document frequency and the mean row length.
struct Stats {
    idf: Vec<f64>,
    mean_length: f64,
    hits: Vec<f64>,
}

/// Makes `updraft_rank` known to `conn`, a connection searches run on.
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let api = fts5_api(conn)?;
    // SAFETY: `api` is the live FTS5 API of this connection (checked non-null), the name a NUL-terminated
    // static string, and `rank` has the signature `fts5_extension_function` requires.
    let rc = unsafe {
        match (*api).xCreateFunction {
            Some(create) => create(api, c"updraft_rank".as_ptr(), std::ptr::null_mut(), Some(rank), None),
            None => ffi::SQLITE_ERROR,
        }
    };
    check(rc)
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

/// The query's [`Stats`], made at its first row and kept as FTS5 auxiliary data until the query ends.
///
/// # Safety
/// `api` and `fts` are the arguments of a call of [`rank`].
unsafe fn stats<'a>(api: &ffi::Fts5ExtensionApi, fts: *mut ffi::Fts5Context) -> Result<&'a mut Stats, c_int> {
    let (Some(get), Some(set), Some(rows), Some(sizes), Some(phrases), Some(query)) =
        (api.xGetAuxdata, api.xSetAuxdata, api.xRowCount, api.xColumnTotalSize, api.xPhraseCount, api.xQueryPhrase)
    else {
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
        let mut idf = Vec::with_capacity(phrases as usize);
        // One phrase's weight scales every score alike, so it cannot change the order: it is not worth a walk of
        // the phrase's whole doclist.
        for phrase in (0..phrases).filter(|_| phrases > 1) {
            let mut hits = 0i64;
            let rc = query(fts, phrase, (&raw mut hits).cast::<c_void>(), Some(count_row));
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
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
    _arguments: c_int,
    _values: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: FTS5 calls this with its API, the query's context and the SQL function context, valid for the call.
    unsafe {
        let api = &*api;
        let (Some(instances), Some(instance), Some(rowid)) = (api.xInstCount, api.xInst, api.xRowid) else {
            ffi::sqlite3_result_error_code(ctx, ffi::SQLITE_ERROR);
            return;
        };
        let stats = match stats(api, fts) {
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
