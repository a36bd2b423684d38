//! `serve_settings!`: each setting of `updraft serve` declared once, on one line, and everything that must agree
//! about it (flag, env var, TOML key, default, help) generated from that line.
//!
//! Why a macro rather than figment or clap's own defaults: clap keeps reading flags and env vars itself, so a flag
//! beats its variable and `--help` names the variable; a clap `default_value` would make every setting look given,
//! so the file could never override it; figment would have moved only the file-over-default merge into a
//! dependency, and `--help` would still need each default spelled out. A line reads
//!
//! ```text
//! /// Help: one paragraph; clap drops a final period, and the help of a setting with a default ends in
//! /// `[default: …]`, made from the default itself.
//! #[arg(requires = "other")]                 // optional, passed to clap as is (also #[serde(…)])
//! name: Type, env "VAR";                     // no default: stays `None`
//! name: Type, env "VAR", default("value");   // parsed as the flag's value would be
//! name: Type, env "VAR", default(expr, "shown in --help");   // computed at start-up
//! name: Type, env "VAR", unset("shown in --help");           // stays `None`; later code decides, as shown
//! ```
//!
//! and becomes a field `name: Option<Type>` of `ServeArgs` (`--name` and `VAR` for clap, key `name` for the file;
//! `None` is "not given"), the field `name` of `Layered` (the first layer that has it: flag, then env, both read
//! by clap, then the file, then the default), and a row of `DEFAULTS_SHOWN`, which the README test reads.

use std::fmt::Display;
use std::str::FromStr;

use clap::ValueEnum;

macro_rules! serve_settings {
    (@shown) => { None };
    (@shown default ($value:literal)) => { Some($value) };
    (@shown default ($compute:expr, $shown:literal)) => { Some($shown) };
    (@shown unset ($shown:literal)) => { Some($shown) };

    (@layered_type $ty:ty) => { Option<$ty> };
    (@layered_type $ty:ty, default) => { $ty };
    (@layered_type $ty:ty, unset) => { Option<$ty> };

    (@layer $given:expr, $ty:ty) => { $given };
    (@layer $given:expr, $ty:ty, unset ($shown:literal)) => { $given };
    (@layer $given:expr, $ty:ty, default ($value:literal)) => {
        $given.unwrap_or_else(|| $crate::config::declare::parse_default::<$ty>($value))
    };
    (@layer $given:expr, $ty:ty, default ($compute:expr, $shown:literal)) => { $given.unwrap_or_else(|| $compute) };

    (
        $(
            $(#[doc = $doc:literal])+
            $(#[arg $arg:tt])*
            $(#[serde $serde:tt])*
            $field:ident: $ty:ty, env $env:literal $(, $kind:ident $default:tt)?;
        )+
    ) => {
        /// The settings of `updraft serve` as given: flags and env vars (clap), or the TOML file (serde).
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "snake_case")]
        pub struct ServeArgs {
            $(
                $(#[doc = $doc])+
                #[arg(
                    long,
                    env = $env,
                    help = $crate::config::declare::help_text(
                        concat!($($doc),+),
                        serve_settings!(@shown $($kind $default)?),
                    ),
                )]
                $(#[arg $arg])*
                $(#[serde $serde])*
                pub $field: Option<$ty>,
            )+
        }

        /// Each setting from the first layer that has it; settings with a default are no longer optional.
        #[derive(Debug)]
        #[allow(dead_code, reason = "`config` is read before the layers are laid")]
        struct Layered {
            $($field: serve_settings!(@layered_type $ty $(, $kind)?),)+
        }

        impl ServeArgs {
            /// Flags and env vars (`self`, from clap) over the file, over the defaults.
            fn over(self, file: ServeArgs) -> Layered {
                Layered {
                    $($field: serve_settings!(@layer self.$field.or(file.$field), $ty $(, $kind $default)?),)+
                }
            }
        }

        /// Each setting's field name and the default `--help` shows for it.
        #[cfg(test)]
        const DEFAULTS_SHOWN: &[(&str, Option<&str>)] =
            &[$((stringify!($field), serve_settings!(@shown $($kind $default)?)),)+];
    };
}

/// A setting's help as clap makes it from a one-paragraph doc comment (lines joined, a final period dropped), and
/// the default after it. The doc's lines arrive concatenated, each with the space that followed its `///`.
pub(crate) fn help_text(doc: &str, default_shown: Option<&str>) -> String {
    let text = doc.trim();
    let text = if text.ends_with('.') && !text.ends_with("..") { &text[..text.len() - 1] } else { text };
    match default_shown {
        Some(default) => format!("{text} [default: {default}]"),
        None => text.to_owned(),
    }
}

/// A default written as the flag's value would be; a bad one is caught by any test that resolves settings.
pub(crate) fn parse_default<T: FromStr>(value: &str) -> T
where
    T::Err: Display,
{
    value.parse().unwrap_or_else(|e| panic!("the default {value:?} of a setting does not parse: {e}"))
}

/// A `ValueEnum`'s value, exactly as named. clap's own enum parser would add `[possible values: …]` to `--help`
/// and word its error differently; the file's values go through here too.
pub(crate) fn parse_choice<T: ValueEnum>(text: &str) -> Result<T, String> {
    T::from_str(text, false).map_err(|_| {
        let names: Vec<String> =
            T::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|v| v.get_name().to_owned()).collect();
        match names.split_last() {
            Some((last, [])) => format!("must be {last}, not {text:?}"),
            Some((last, rest)) => format!("must be {} or {last}, not {text:?}", rest.join(", ")),
            None => format!("has no values, not even {text:?}"),
        }
    })
}
