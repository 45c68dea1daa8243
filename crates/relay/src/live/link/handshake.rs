//! The link's mutual authentication: a challenge-response over the fresh TCP connection,
//! before any tunnel frame. Both sides prove they know the cluster secret without sending
//! it, each over both sides' nonces, so that neither an old answer nor one side's answer
//! reflected back passes:
//!
//! 1. dialler → acceptor: `MAGIC`, its 32-byte nonce `nd`;
//! 2. acceptor → dialler: its nonce `na`, `HMAC-SHA256(secret, "acceptor" ‖ nd ‖ na)`;
//! 3. dialler → acceptor: `HMAC-SHA256(secret, "dialler" ‖ nd ‖ na)`;
//! 4. acceptor → dialler: one byte `ACCEPTED`.
//!
//! The dialler checks the acceptor first, so a node never proves itself to a stranger it
//! dialled; the acceptor answers only a connection that starts with `MAGIC`. Every step
//! has a deadline. The MACs are compared in constant time (`ring::hmac::verify`).

use std::time::Duration;

use rand::RngCore;
use ring::hmac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a dialler sends first: the protocol and its version.
const MAGIC: &[u8; 8] = b"PLINK\x00\x00\x01";
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
const ACCEPTED: u8 = 1;
/// How long the whole handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a link was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer is not a Portico node link (wrong protocol or version)")]
    NotALink,
    #[error("the peer does not know the cluster secret")]
    WrongSecret,
    #[error("the link handshake took longer than {0:?}")]
    TimedOut(Duration),
    #[error("the link connection failed during the handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// The cluster secret as a MAC key.
#[derive(Clone)]
pub struct LinkSecret(hmac::Key);

impl LinkSecret {
    pub fn new(secret: &[u8]) -> LinkSecret {
        LinkSecret(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, role: &[u8], dialler: &[u8], acceptor: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(role);
        context.update(dialler);
        context.update(acceptor);
        context.sign()
    }

    fn check(&self, role: &[u8], dialler: &[u8], acceptor: &[u8], mac: &[u8]) -> bool {
        let mut message = Vec::with_capacity(role.len() + 2 * NONCE_LEN);
        message.extend_from_slice(role);
        message.extend_from_slice(dialler);
        message.extend_from_slice(acceptor);
        hmac::verify(&self.0, &message, mac).is_ok()
    }
}

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

async fn within<T>(
    work: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .unwrap_or(Err(HandshakeError::TimedOut(HANDSHAKE_TIMEOUT)))
}

/// The dialling side's handshake.
pub async fn dial<S>(stream: &mut S, secret: &LinkSecret) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(async {
        let mine = nonce();
        let mut hello = Vec::with_capacity(MAGIC.len() + NONCE_LEN);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&mine);
        stream.write_all(&hello).await?;
        let mut answer = [0u8; NONCE_LEN + MAC_LEN];
        stream.read_exact(&mut answer).await?;
        let (theirs, mac) = answer.split_at(NONCE_LEN);
        if !secret.check(b"acceptor", &mine, theirs, mac) {
            return Err(HandshakeError::WrongSecret);
        }
        let proof = secret.tag(b"dialler", &mine, theirs);
        stream.write_all(proof.as_ref()).await?;
        let mut verdict = [0u8; 1];
        stream.read_exact(&mut verdict).await?;
        if verdict[0] != ACCEPTED {
            return Err(HandshakeError::WrongSecret);
        }
        Ok(())
    })
    .await
}

/// The accepting side's handshake.
pub async fn accept<S>(stream: &mut S, secret: &LinkSecret) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(async {
        let mut hello = [0u8; 8 + NONCE_LEN];
        stream.read_exact(&mut hello).await?;
        let (magic, theirs) = hello.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(HandshakeError::NotALink);
        }
        let mine = nonce();
        let mut answer = Vec::with_capacity(NONCE_LEN + MAC_LEN);
        answer.extend_from_slice(&mine);
        answer.extend_from_slice(secret.tag(b"acceptor", theirs, &mine).as_ref());
        stream.write_all(&answer).await?;
        let mut proof = [0u8; MAC_LEN];
        stream.read_exact(&mut proof).await?;
        if !secret.check(b"dialler", theirs, &mine, &proof) {
            return Err(HandshakeError::WrongSecret);
        }
        stream.write_all(&[ACCEPTED]).await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs both sides, each dropping its end of the connection when it is done (as a
    /// node closes a link that failed its handshake).
    async fn both(
        dialler: &[u8],
        acceptor: &[u8],
    ) -> (Result<(), HandshakeError>, Result<(), HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (d, s) = (LinkSecret::new(dialler), LinkSecret::new(acceptor));
        let dialled = tokio::spawn(async move { dial(&mut a, &d).await });
        let accepted = tokio::spawn(async move { accept(&mut b, &s).await });
        (dialled.await.unwrap(), accepted.await.unwrap())
    }

    #[tokio::test]
    async fn nodes_with_the_same_secret_link() {
        let secret = [7u8; 32];
        let (dialled, accepted) = both(&secret, &secret).await;
        dialled.unwrap();
        accepted.unwrap();
    }

    #[tokio::test]
    async fn a_dialler_refuses_an_acceptor_with_another_secret() {
        let (dialled, accepted) = both(&[7u8; 32], &[8u8; 32]).await;
        assert!(matches!(dialled, Err(HandshakeError::WrongSecret)));
        // The dialler hung up without proving itself.
        assert!(accepted.is_err());
    }

    #[tokio::test]
    async fn an_acceptor_refuses_a_dialler_that_reflects_its_answer() {
        let secret = LinkSecret::new(&[7u8; 32]);
        let (mut a, mut b) = tokio::io::duplex(1024);
        let acceptor = tokio::spawn(async move { accept(&mut b, &secret).await });
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&[1u8; NONCE_LEN]);
        a.write_all(&hello).await.unwrap();
        let mut answer = [0u8; NONCE_LEN + MAC_LEN];
        a.read_exact(&mut answer).await.unwrap();
        // The acceptor's own MAC sent back as the dialler's proof.
        a.write_all(&answer[NONCE_LEN..]).await.unwrap();
        assert!(matches!(
            acceptor.await.unwrap(),
            Err(HandshakeError::WrongSecret)
        ));
    }

    #[tokio::test]
    async fn an_acceptor_refuses_what_is_not_a_link() {
        let secret = LinkSecret::new(&[7u8; 32]);
        let (mut a, mut b) = tokio::io::duplex(1024);
        let acceptor = tokio::spawn(async move { accept(&mut b, &secret).await });
        a.write_all(b"GET / HTTP/1.1\r\nHost: portico.example\r\nAccept: */*\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(
            acceptor.await.unwrap(),
            Err(HandshakeError::NotALink)
        ));
    }
}
