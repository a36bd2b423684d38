//! The schema's migrations: the files of `migrations/` are the steps, in order, and what the triggers compute
//! agrees with the code that fills the same tables.

use super::*;

#[test]
fn migrations_are_the_files_of_the_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into()).collect();
    files.sort();
    assert_eq!(files.len(), MIGRATIONS.len(), "every file of migrations/ is a step of MIGRATIONS, in order");
    for (step, (name, sql)) in files.iter().zip(MIGRATIONS).enumerate() {
        assert!(name.starts_with(&format!("{:04}_", step + 1)) && name.ends_with(".sql"), "{name}");
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), *sql, "{name} is step {}", step + 1);
    }
}

/// Migrations whose statements the code generates (`generated`: file name, statement) match their files, comments
/// aside; `UPDRAFT_WRITE_MIGRATIONS=1` rewrites a file that differs, keeping its comments.
fn check_generated(generated: Vec<(&str, String)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for (name, expected) in generated {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let statement: String =
            text.lines().filter(|line| !line.starts_with("--")).map(|line| format!("{line}\n")).collect();
        if std::env::var_os("UPDRAFT_WRITE_MIGRATIONS").is_some() && statement != expected {
            let comments: String =
                text.lines().filter(|line| line.starts_with("--")).map(|line| format!("{line}\n")).collect();
            std::fs::write(dir.join(name), format!("{comments}{expected}")).unwrap();
            continue;
        }
        assert_eq!(statement, expected, "{name} (UPDRAFT_WRITE_MIGRATIONS=1 rewrites it)");
    }
}

#[test]
fn the_search_migrations_lay_rows_out_as_the_code_does() {
    check_generated(search::rowids::migrations());
}

#[test]
fn the_tally_migrations_keep_tallies_as_the_code_reads_them() {
    check_generated(tallies::migrations());
}

#[test]
fn array_key_triggers_key_elements_as_the_backfill_does() {
    let squash = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let key = squash(element_key!());
    let filling: Vec<&&str> = MIGRATIONS.iter().filter(|step| step.contains("INSERT INTO array_keys")).collect();
    assert_eq!(filling.len(), 5, "two inserting triggers, twice, and the first backfill");
    for step in filling {
        assert!(squash(step).contains(&key), "{step}");
    }
}
