//! The HTTP `CONNECT` handshake with a proxy (RFC 9110 §9.3.6, Basic credentials as in
//! RFC 2817 §5.2). After a 2xx answer the stream is a raw tunnel to the backend.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::ProxyCredentials;

/// A proxy's answer head is small; anything longer is not a proxy we can talk to.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy refused the credentials ({status_line})")]
    CredentialsRefused { status_line: String },
    #[error("the proxy requires credentials ({status_line}); put them in the proxy URL")]
    CredentialsRequired { status_line: String },
    #[error("the proxy refused to open a tunnel to {target}: {status_line}")]
    Refused { target: String, status_line: String },
    #[error("the proxy's answer is not HTTP: {0}")]
    Malformed(String),
    #[error("the proxy closed the connection before answering")]
    Closed,
    #[error("talking to the proxy failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The status of a proxy's answer head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatus {
    pub code: u16,
    /// `HTTP/1.1 407 Proxy Authentication Required`, for messages.
    pub status_line: String,
}

/// Parses a complete answer head (up to and including the blank line). Untrusted input: the
/// proxy, or whatever sits where the proxy should be, wrote it.
pub fn parse_response_head(head: &[u8]) -> Result<ProxyStatus, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ProxyError::Malformed(
                "the answer head is incomplete".into(),
            ))
        }
        Err(e) => return Err(ProxyError::Malformed(e.to_string())),
    }
    let code = response
        .code
        .ok_or_else(|| ProxyError::Malformed("no status code".into()))?;
    let reason: String = response
        .reason
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let version = response.version.unwrap_or(1);
    let status_line = format!("HTTP/1.{version} {code} {reason}")
        .trim_end()
        .to_string();
    Ok(ProxyStatus { code, status_line })
}

/// The request the agent sends. `target` is `host:port` (IPv6 in brackets).
pub fn connect_request(target: &str, credentials: Option<&ProxyCredentials>) -> String {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = credentials {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.user, c.password));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("Proxy-Connection: Keep-Alive\r\n\r\n");
    request
}

/// Asks the proxy for a tunnel to `target` and waits for its answer. On success the stream
/// carries the tunnel, with nothing of the answer left unread.
pub async fn open_tunnel<S>(
    stream: &mut S,
    target: &str,
    credentials: Option<&ProxyCredentials>,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(connect_request(target, credentials).as_bytes())
        .await?;
    stream.flush().await?;
    let head = read_head(stream).await?;
    let status = parse_response_head(&head)?;
    match status.code {
        200..=299 => Ok(()),
        // 407 is the standard answer; some proxies (tinyproxy) answer a wrong password with 401.
        401 | 407 if credentials.is_some() => Err(ProxyError::CredentialsRefused {
            status_line: status.status_line,
        }),
        401 | 407 => Err(ProxyError::CredentialsRequired {
            status_line: status.status_line,
        }),
        _ => Err(ProxyError::Refused {
            target: target.to_string(),
            status_line: status.status_line,
        }),
    }
}

/// Reads up to the blank line that ends the head, one byte at a time: the bytes after it
/// belong to the tunnel (the backend's TLS) and must stay in the stream.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProxyError> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(ProxyError::Malformed(format!(
                "the answer head is longer than {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(if head.is_empty() {
                ProxyError::Closed
            } else {
                ProxyError::Malformed("the connection ended inside the answer head".into())
            });
        }
        head.push(byte[0]);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_basic_credentials() {
        let creds = ProxyCredentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        let req = connect_request("rs.example.com:443", Some(&creds));
        assert!(req.starts_with("CONNECT rs.example.com:443 HTTP/1.1\r\n"));
        assert!(req.contains("\r\nHost: rs.example.com:443\r\n"));
        // The example of RFC 7617 §2.
        assert!(req.contains("\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        assert!(!connect_request("h:443", None).contains("Proxy-Authorization"));
    }

    #[test]
    fn response_heads() {
        let ok = parse_response_head(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
        assert_eq!(ok.code, 200);
        assert_eq!(ok.status_line, "HTTP/1.1 200 Connection established");
        let no_reason = parse_response_head(b"HTTP/1.0 403\r\nVia: x\r\n\r\n").unwrap();
        assert_eq!(no_reason.status_line, "HTTP/1.0 403");
        assert!(matches!(
            parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\n"),
            Err(ProxyError::Malformed(_))
        ));
    }

    async fn answer(reply: &'static [u8], creds: bool) -> (Result<(), ProxyError>, Vec<u8>) {
        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        theirs.write_all(reply).await.unwrap();
        // Only the proxy's sending side ends: the request must still find a reader.
        theirs.shutdown().await.unwrap();
        let creds = creds.then(|| ProxyCredentials {
            user: "u".into(),
            password: "p".into(),
        });
        let result = open_tunnel(&mut ours, "b:443", creds.as_ref()).await;
        let mut rest = Vec::new();
        ours.read_to_end(&mut rest).await.unwrap();
        drop(theirs);
        (result, rest)
    }

    #[tokio::test]
    async fn status_codes_map_to_errors() {
        let (r, rest) = answer(b"HTTP/1.1 200 OK\r\n\r\ntunnel bytes", true).await;
        assert!(r.is_ok());
        assert_eq!(
            rest, b"tunnel bytes",
            "nothing after the head may be consumed"
        );
        for reply in [
            &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
            &b"HTTP/1.0 401 Unauthorized\r\nContent-Length: 3\r\n\r\nno!"[..],
        ] {
            let (r, _) = answer(reply, true).await;
            assert!(
                matches!(r, Err(ProxyError::CredentialsRefused { .. })),
                "{r:?}"
            );
            let (r, _) = answer(reply, false).await;
            assert!(
                matches!(r, Err(ProxyError::CredentialsRequired { .. })),
                "{r:?}"
            );
        }
        let (r, _) = answer(b"HTTP/1.1 403 Forbidden\r\n\r\n", true).await;
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.contains("HTTP/1.1 403 Forbidden") && msg.contains("b:443"),
            "{msg}"
        );
        let (r, _) = answer(b"", true).await;
        assert!(matches!(r, Err(ProxyError::Closed)));
        let (r, _) = answer(b"HTTP/1.1 200", true).await;
        assert!(matches!(r, Err(ProxyError::Malformed(_))));
    }
}
