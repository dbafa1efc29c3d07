//! `port25ctl token new`: a fresh API token and the config table that
//! lets port25d recognise it. Runs locally; no server is involved.
//!
//! port25d stores only the hex SHA-256 of each token (`[[api.tokens]]`
//! tables), so the token itself exists only in this command's output.

use sha2::{Digest, Sha256};

/// Bytes of OS randomness in a token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// A generated token and its config entry.
#[derive(Debug)]
pub struct NewToken {
    pub name: String,
    pub role: &'static str,
    /// The secret: 64 lower-case hex characters.
    pub token: String,
    /// Hex SHA-256 of the token's text, as port25d's config wants it.
    pub sha256: String,
}

impl NewToken {
    /// Draw a token from the OS RNG.
    ///
    /// # Errors
    /// The name is not one port25d's config accepts (1 to 64 of
    /// `A-Z a-z 0-9 - _ . @`; it is written into TOML unescaped and shows up
    /// in logs and audit records), or the OS RNG failed.
    pub fn generate(name: &str, role: &'static str) -> Result<NewToken, String> {
        let name_ok = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        if !name_ok {
            return Err(format!("token name {name:?} must be 1 to 64 of A-Z a-z 0-9 - _ . @ (port25d's config rule)"));
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| format!("cannot read the OS random number generator: {e}"))?;
        let token = hex(&bytes);
        let sha256 = sha256_hex(&token);
        Ok(NewToken { name: name.to_owned(), role, token, sha256 })
    }

    /// The table to paste into port25d's config file.
    pub fn toml(&self) -> String {
        format!("[[api.tokens]]\nname = \"{}\"\nrole = \"{}\"\nsha256 = \"{}\"\n", self.name, self.role, self.sha256)
    }
}

/// Lower-case hex SHA-256 of a token's text.
pub fn sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{sha256_hex, NewToken};

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_are_fresh_hex_and_hashed() {
        let a = NewToken::generate("provisioning", "write").unwrap();
        let b = NewToken::generate("provisioning", "write").unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 64);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a.sha256, sha256_hex(&a.token));
        assert!(a.toml().contains(&format!("sha256 = \"{}\"", a.sha256)));
        assert!(NewToken::generate("crm-1.prod@isp_x", "read").is_ok());
    }

    #[test]
    fn refuses_names_that_would_break_the_toml() {
        for name in ["", "a\"b", "a\\b", "a\nb", "two words", &"x".repeat(65)] {
            assert!(NewToken::generate(name, "read").is_err(), "{name:?} accepted");
        }
    }
}
