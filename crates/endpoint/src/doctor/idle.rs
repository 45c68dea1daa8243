//! How long an idle connection survives (the firewall's idle timeout). One TLS connection
//! per idle period (an eighth, a quarter, half and all of the longest), all opened at
//! once, so the whole probe takes the longest period plus one answer's wait. Each is
//! watched while idle (a close arriving then is timed), and after its period asked for an
//! HTTP answer: one in time means it survived; none means a box on the way silently dropped
//! it, which is what stalls a tunnel until the agent's dead-after notices.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::report::{Check, Collected, Sink};
use super::{handshake, route};
use crate::config::{BackendUrl, EndpointConfig};
use crate::tls::TrustRoots;

/// The longest wait for the answer after an idle period.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What happened to one idle connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Answered after being idle for the whole period.
    Survived,
    /// Closed (FIN, reset or TLS close) after this long: the backend's own idle limit, or a
    /// box that says so.
    Closed(Duration),
    /// No answer after the period: silently dropped.
    Silent,
}

/// The idle periods tried for a longest period of `longest`.
pub fn periods(longest: Duration) -> Vec<Duration> {
    let mut periods: Vec<Duration> = [8, 4, 2, 1].iter().map(|d| longest / *d).collect();
    periods.retain(|p| !p.is_zero());
    periods.dedup();
    periods
}

/// Runs the probe against the tunnel host and reports it; true unless it blocks the tunnel
/// (idle connections dying sooner than the agent's keep-alive).
pub async fn probe(
    config: &EndpointConfig,
    roots: &TrustRoots,
    longest: Duration,
    sink: &mut dyn Sink,
) -> bool {
    let url = &config.backend;
    let periods = periods(longest);
    let mut connections = Vec::new();
    for _ in &periods {
        // The way there was checked above; here only the outcome matters.
        let mut quiet = Collected::default();
        let tcp = route::reach(url, config.proxy.as_ref(), &mut quiet).await;
        let tls = match tcp {
            Some(tcp) => handshake::handshake(url, tcp, roots, &mut quiet).await,
            None => None,
        };
        let Some(tls) = tls else {
            let why = quiet.checks.iter().find(|c| c.failed());
            sink.check(Check::fail(
                "idle probe",
                format!(
                    "could not open its connections: {}",
                    why.map(|c| c.found.as_str()).unwrap_or("unknown")
                ),
                "fix the failures above first",
            ));
            return false;
        };
        connections.push(tls);
    }
    let shown: Vec<String> = periods.iter().map(|p| human(*p)).collect();
    sink.line(format!(
        "idle probe: {} connections to {} open, idle for {} (about {} in all)",
        periods.len(),
        url.host(),
        shown.join(", "),
        human(longest)
    ));
    let answer_wait = ANSWER_WAIT.min(longest.max(Duration::from_secs(2)));
    let fates = join_all(
        connections
            .into_iter()
            .zip(periods.iter().copied())
            .map(|(tls, period)| watch(tls, url, period, answer_wait)),
    )
    .await;
    for (period, fate) in periods.iter().zip(&fates) {
        let found = match fate {
            Fate::Survived => "still answered".to_string(),
            Fate::Closed(after) => format!("closed after {} idle", human(*after)),
            Fate::Silent => format!("silently dropped: no answer within {}", human(answer_wait)),
        };
        sink.line(format!("      idle {}: {found}", human(*period)));
    }
    let verdict = judge(&periods, &fates, config.keep_alive, answer_wait);
    let ok = !verdict.failed();
    sink.check(verdict);
    ok
}

/// Keeps `tls` idle for `period` (noting a close meanwhile), then asks for an answer.
async fn watch(
    mut tls: TlsStream<TcpStream>,
    url: &BackendUrl,
    period: Duration,
    answer_wait: Duration,
) -> Fate {
    let start = Instant::now();
    let mut buffer = [0u8; 1024];
    let idle_end = tokio::time::sleep(period);
    tokio::pin!(idle_end);
    loop {
        tokio::select! {
            () = &mut idle_end => break,
            read = tls.read(&mut buffer) => match read {
                Ok(n) if n > 0 => continue,
                _ => return Fate::Closed(start.elapsed()),
            },
        }
    }
    let request = format!(
        "GET {}/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        url.base_path(),
        url.authority()
    );
    if tls.write_all(request.as_bytes()).await.is_err() || tls.flush().await.is_err() {
        return Fate::Closed(start.elapsed());
    }
    match tokio::time::timeout(answer_wait, tls.read(&mut buffer)).await {
        Ok(Ok(n)) if n > 0 => Fate::Survived,
        Ok(_) => Fate::Closed(start.elapsed()),
        Err(_) => Fate::Silent,
    }
}

/// The verdict: how long idle connections survive, and whether the keep-alive beats it.
pub fn judge(
    periods: &[Duration],
    fates: &[Fate],
    keep_alive: Duration,
    answer_wait: Duration,
) -> Check {
    let what = "idle connections";
    let survived = periods
        .iter()
        .zip(fates)
        .filter(|(_, f)| **f == Fate::Survived)
        .map(|(p, _)| *p)
        .max();
    // The shortest idle time after which a connection was gone.
    let died = periods
        .iter()
        .zip(fates)
        .filter_map(|(p, f)| match f {
            Fate::Survived => None,
            Fate::Closed(after) => Some((*after.min(p), false)),
            Fate::Silent => Some((*p, true)),
        })
        .min();
    let Some((died_after, silently)) = died else {
        return Check::ok(
            what,
            format!(
                "an idle connection survived {}, the longest tried; the agent's keep-alive \
                 every {} is well within it",
                human(survived.unwrap_or_default()),
                human(keep_alive)
            ),
        );
    };
    let lived = match survived.filter(|s| *s < died_after) {
        Some(s) => format!("survived {} but ", human(s)),
        None => String::new(),
    };
    let how = if silently {
        format!(
            "was silently dropped (no close, no reset: no answer within {})",
            human(answer_wait)
        )
    } else {
        "was closed".to_string()
    };
    let found = format!(
        "an idle connection {lived}{how} after {} idle",
        human(died_after)
    );
    let suggest = (survived.filter(|s| *s < died_after).unwrap_or(died_after) / 2)
        .max(Duration::from_secs(1));
    if died_after <= keep_alive {
        return Check::fail(
            what,
            format!(
                "{found}, sooner than the agent's keep-alive every {}",
                human(keep_alive)
            ),
            format!(
                "ask IT to raise the idle timeout for the backend hosts to at least 10 \
                 minutes, or set keep_alive_secs = {} (and dead_after_secs above it) in the \
                 configuration",
                suggest.as_secs()
            ),
        );
    }
    Check::ok(
        what,
        format!(
            "{found}; the agent's keep-alive every {} keeps the tunnel busier than that; keep \
             keep_alive_secs below {}",
            human(keep_alive),
            suggest.as_secs()
        ),
    )
}

/// The longest idle period: minutes as a bare number (`30`), or with a unit (`90s`, `15m`,
/// `1h`). At most a day, at least a second.
pub fn parse_longest(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write minutes (30) or 90s, 15m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "m" | "min" => number.saturating_mul(60),
        "s" => number,
        "h" => number.saturating_mul(3600),
        other => return Err(format!("unknown unit `{other}`: use s, m or h")),
    };
    if seconds == 0 || seconds > 24 * 3600 {
        return Err(format!("`{text}`: the idle probe runs for 1 s to 24 h"));
    }
    Ok(Duration::from_secs(seconds))
}

/// `375 ms`, `12 s`, `7.5 min`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{} s", trim(d.as_secs_f64()))
    } else {
        format!("{} min", trim(d.as_secs_f64() / 60.0))
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn periods_are_fractions_of_the_longest() {
        assert_eq!(periods(S(1800)), [S(225), S(450), S(900), S(1800)]);
        assert_eq!(
            periods(Duration::from_nanos(2)),
            [Duration::from_nanos(1), Duration::from_nanos(2)]
        );
        assert_eq!(human(S(225)), "3.8 min");
        assert_eq!(human(Duration::from_millis(375)), "375 ms");
        assert_eq!(human(S(90)), "90 s");
    }

    #[test]
    fn durations_parse_with_minutes_by_default() {
        assert_eq!(parse_longest("30"), Ok(S(1800)));
        assert_eq!(parse_longest("4s"), Ok(S(4)));
        assert_eq!(parse_longest("15m"), Ok(S(900)));
        assert_eq!(parse_longest("1h"), Ok(S(3600)));
        for bad in ["", "0", "s", "3d", "-1", "25h", "99999999999999999999"] {
            assert!(parse_longest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verdicts() {
        let p = [S(60), S(120), S(240), S(480)];
        use Fate::*;
        let all = judge(&p, &[Survived; 4], S(20), S(10));
        assert!(
            !all.failed() && all.found.contains("survived 8 min"),
            "{all}"
        );
        let late = judge(&p, &[Survived, Survived, Silent, Silent], S(20), S(10));
        assert!(!late.failed(), "{late}");
        assert!(
            late.found
                .contains("survived 2 min but was silently dropped"),
            "{late}"
        );
        let early = judge(&p, &[Silent; 4], S(120), S(10));
        assert!(early.failed(), "{early}");
        assert!(early.fix.unwrap().contains("keep_alive_secs = 30"));
        let closed = judge(
            &p,
            &[Survived, Closed(S(90)), Closed(S(90)), Closed(S(90))],
            S(20),
            S(10),
        );
        assert!(
            closed.found.contains("was closed after 90 s idle"),
            "{closed}"
        );
    }
}
