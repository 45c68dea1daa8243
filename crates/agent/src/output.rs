//! How the endpoint commands print: connection sessions, times, and errors on one line.

use portico_endpoint::api::Connection;

/// One connection session on one line: id, device, application, end, and its listeners.
pub fn connection_line(c: &Connection) -> String {
    let ports: Vec<String> = c
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{}:{}→{}:{}",
                l.side, l.local_port, l.target_host, l.target_port
            )
        })
        .collect();
    format!(
        "{}  {}  {}  ends {}  {}",
        c.id,
        c.device,
        c.application,
        when(c.ends_ms),
        ports.join(" ")
    )
}

/// A time in milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The error and its causes on one line, leaving out a cause whose text the message before
/// it already quotes (the agent's errors name their cause in their own message).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(io)
            .context("cannot reach https://x: refused")
            .context("session c-1 is open");
        assert_eq!(
            describe(&e),
            "session c-1 is open: cannot reach https://x: refused"
        );
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
