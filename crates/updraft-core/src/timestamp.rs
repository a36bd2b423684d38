//! Timestamps on the wire: fixed-width ISO 8601 UTC with milliseconds (`2013-06-28T16:38:32.369Z`).

use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// Now, in Unix milliseconds: the times the store keeps and compares.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `at` in Unix milliseconds (0 before the epoch).
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

pub fn format(at: SystemTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(at).format(&format).expect("a UTC time always formats")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn fixed_width_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_372_437_512_369);
        assert_eq!(super::format(at), "2013-06-28T16:38:32.369Z");
        assert_eq!(super::format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn unix_milliseconds_and_nothing_before_the_epoch() {
        assert_eq!(super::unix_ms(UNIX_EPOCH + Duration::from_micros(1_372_437_512_369_999)), 1_372_437_512_369);
        assert_eq!(super::unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
