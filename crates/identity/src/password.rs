//! Local passwords (ID-7): argon2id with a random salt, in PHC string form. Hashing is
//! deliberately slow, so it runs on the blocking thread pool.
//!
//! Each hashing works in 19 MiB of memory, allocated so that glibc maps it on its own and
//! gives it back to the system when the hashing is done (see [`with_memory`]): a server
//! that checked a password once does not keep 19 MiB for it.

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::error::IdentityError;

/// Shortest accepted password.
pub const MIN_LENGTH: usize = 10;
/// Longest accepted password: bounds the hashing work an attacker can ask for.
pub const MAX_LENGTH: usize = 1024;

/// Checks the password policy: `MIN_LENGTH` to `MAX_LENGTH` characters.
pub fn check_policy(password: &str) -> Result<(), IdentityError> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(IdentityError::Invalid(format!(
            "the password is too short: use at least {MIN_LENGTH} characters"
        )));
    }
    if password.len() > MAX_LENGTH {
        return Err(IdentityError::Invalid(format!(
            "the password is too long: at most {MAX_LENGTH} bytes"
        )));
    }
    Ok(())
}

/// Hashings at once, per process: each takes 19 MiB and a core for a while, so a burst
/// of logins waits its turn instead of exhausting memory and the blocking pool. One per
/// core (argon2 with one lane is single-threaded), at most `MAX_HASHINGS`: at most that
/// many memory blocks exist at once.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.clamp(2, MAX_HASHINGS))
    })
}

const MAX_HASHINGS: usize = 8;

/// Runs a hashing on the blocking pool once one of the [`hashing_permits`] is free; `None`
/// when hashing has stopped (the runtime shutting down). The permit goes with the work: a
/// caller that gives up does not stop the hashing, which keeps its place until it is done.
async fn in_turn<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let permit = hashing_permits().acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .ok()
}

/// Room reserved for each hashing's memory: more than glibc's largest mmap threshold
/// (32 MiB on 64-bit), so that glibc serves the block with a mapping of its own (unless an
/// arena happens to hold that much free already) and unmaps it when it is freed. Only the
/// part argon2 touches (19 MiB by default) becomes resident; the rest is address space.
const RESERVED_BYTES: usize = 33 << 20;

/// Runs `work` in `blocks` blocks of fresh memory, given back to the system afterwards.
///
/// Allocated plainly, a block of 19 MiB would be mapped only the first time: freeing it
/// raises glibc's mmap threshold to its size, so later blocks come from glibc's arenas and
/// stay resident when freed (measured: 64 checks, 16 at once, left `serve` at 451 MB).
fn with_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    let reserved = blocks.max(RESERVED_BYTES / std::mem::size_of::<Block>());
    let mut memory = Vec::with_capacity(reserved);
    memory.resize(blocks, Block::default());
    work(&mut memory)
}

/// The argon2 output for `password` under these settings, in memory of its own.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'_>,
) -> argon2::password_hash::Result<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    with_memory(blocks, |memory| {
        Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut *memory)?)
        })
    })
}

/// The argon2id PHC string of `password` (default parameters: 19 MiB, 2 passes).
pub async fn hash(password: &str) -> Result<String, IdentityError> {
    let password = password.to_owned();
    in_turn(move || hash_now(&password))
        .await
        .ok_or_else(|| IdentityError::Internal("password hashing stopped".into()))?
}

fn hash_now(password: &str) -> Result<String, IdentityError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| IdentityError::Internal(format!("cannot encode a salt: {e}")))?;
    let failed = |e: argon2::password_hash::Error| {
        IdentityError::Internal(format!("cannot hash a password: {e}"))
    };
    let params = Params::default();
    let output = compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password.as_bytes(),
        salt.as_salt(),
    )
    .map_err(failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`; a malformed `phc` never matches.
pub async fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    let (password, phc) = (password.to_owned(), phc.to_owned());
    in_turn(move || verify_now(&password, &phc))
        .await
        .unwrap_or(false)
}

/// As argon2's own verifier does, but in memory of its own ([`with_memory`]). `Output`'s
/// comparison takes the same time whatever the bytes.
fn verify_now(password: &str, phc: &str) -> bool {
    let matches = || -> argon2::password_hash::Result<bool> {
        let parsed = PasswordHash::new(phc)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let computed = compute(algorithm, version, params, password.as_bytes(), salt)?;
        Ok(computed == expected)
    };
    matches().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify() {
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a).await);
        assert!(!verify("correct horse batterY", &a).await);
        assert!(!verify("correct horse battery", "not a hash").await);
    }

    /// Hashes stay standard PHC strings: argon2's own verifier accepts ours, and ours
    /// accepts argon2's (the stored hashes of earlier versions).
    #[tokio::test]
    async fn hashes_are_interchangeable_with_argon2s_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash("correct horse battery").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse battery", &parsed)
            .is_err());
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery", &theirs).await);
        assert!(!verify("correct horse batteries", &theirs).await);
        // Other settings than the default (a smaller, older hash) verify too.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
        assert!(verify("correct horse battery", &small).await);
    }

    /// Resident memory of this process, in KiB.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_give_their_memory_back() {
        let phc = hash("correct horse battery").await.unwrap();
        let before = resident_kib();
        let checks: Vec<_> = (0..64)
            .map(|_| {
                let phc = phc.clone();
                tokio::spawn(async move { verify("correct horse battery", &phc).await })
            })
            .collect();
        for check in checks {
            assert!(check.await.unwrap());
        }
        // Allocated plainly, these checks left 471 MB behind on 2 cores. The margin is
        // for the other tests of this process, whose hashings (19 MiB each, up to 8 at
        // once) may be running at the moment of measuring.
        let grown = resident_kib().saturating_sub(before);
        assert!(
            grown < 300 * 1024,
            "64 password checks left {grown} KiB resident"
        );
    }

    #[test]
    fn the_policy_wants_ten_characters() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("0123456789").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
