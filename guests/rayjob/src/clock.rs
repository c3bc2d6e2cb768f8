//! RFC 3339 timestamps from the snapshot's Unix milliseconds, and back; the reconciler never reads a clock.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `2024-05-01T12:00:00Z` for a Unix time in milliseconds (seconds precision, like `metav1.Time`).
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A `metav1.Time` in Unix milliseconds.
pub fn millis(time: &Time) -> i64 {
    time.0.as_millisecond()
}

/// An RFC 3339 string in Unix milliseconds (the submitter Job's condition times arrive as text).
pub fn parse_millis(text: &str) -> Option<i64> {
    serde_json::from_value::<Time>(serde_json::Value::String(text.to_owned())).ok().map(|t| millis(&t))
}

// Howard Hinnant's days-to-civil-date algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00Z");
        assert_eq!(parse_millis("2024-05-01T12:00:00Z"), Some(1_714_564_800_000));
    }
}
