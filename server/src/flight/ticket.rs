//! Statement tickets: what `GetFlightInfo` hands out and `DoGet` takes back.
//!
//! A ticket carries the query id, its owner, the SQL and the bound
//! parameters (Arrow IPC that this server encoded), so that `DoGet` can plan
//! the query again when its cached plan is gone. A client must never make
//! the server decode bytes of its own choosing: every ticket is sealed with
//! an HMAC-SHA256 tag under a key random to this server process, and
//! [`TicketKey::open`] checks the tag before it decodes anything.
//!
//! ```text
//!  ticket = prost(QueryTicket) ‖ HMAC-SHA256(key, prost(QueryTicket))
//! ```

use hmac::{Hmac, KeyInit, Mac};
use prost::Message;
use sha2::Sha256;
use tonic::Status;

/// Bytes of the tag at the end of a sealed ticket.
const TAG_LEN: usize = 32;

/// What a statement ticket carries (inside `TicketStatementQuery`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct QueryTicket {
    /// The query's id: in logs, errors and cancel requests.
    #[prost(string, tag = "1")]
    pub(crate) query_id: String,
    /// The SQL.
    #[prost(string, tag = "2")]
    pub(crate) sql: String,
    /// Bound parameters: one row as an Arrow IPC stream (empty for none).
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) parameters: Vec<u8>,
    /// The user who asked for it; only they may redeem it.
    #[prost(string, tag = "4")]
    pub(crate) owner: String,
}

/// The key tickets are sealed with.
pub(crate) struct TicketKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

/// The one answer to every ticket that cannot be redeemed, whatever the
/// reason, so that a forger learns nothing.
fn refused() -> Status {
    Status::invalid_argument(
        "invalid statement ticket; use the ticket GetFlightInfo returned, on the same server, as the same user",
    )
}

impl TicketKey {
    /// A key from the operating system's random source.
    pub(crate) fn random() -> Self {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts 32-byte keys"))
    }

    /// The ticket's bytes, sealed.
    pub(crate) fn seal(&self, ticket: &QueryTicket) -> Vec<u8> {
        let mut bytes = ticket.encode_to_vec();
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        bytes
    }

    /// The ticket sealed in `bytes`, if this key sealed it for `user`.
    pub(crate) fn open(&self, bytes: &[u8], user: &str) -> Result<QueryTicket, Status> {
        let split = bytes.len().checked_sub(TAG_LEN).ok_or_else(refused)?;
        let (body, tag) = bytes.split_at(split);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| refused())?;
        let ticket = QueryTicket::decode(body).map_err(|_| refused())?;
        if ticket.owner != user {
            return Err(refused());
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> QueryTicket {
        QueryTicket {
            query_id: "q1".into(),
            sql: "SELECT 1".into(),
            parameters: vec![1, 2, 3],
            owner: "ann".into(),
        }
    }

    #[test]
    fn a_sealed_ticket_opens_for_its_owner_only() {
        let key = TicketKey::random();
        let sealed = key.seal(&ticket());
        assert_eq!(key.open(&sealed, "ann").ok(), Some(ticket()));
        assert!(key.open(&sealed, "bob").is_err());
        assert!(TicketKey::random().open(&sealed, "ann").is_err());
    }

    #[test]
    fn every_changed_byte_is_refused_before_decoding() {
        let key = TicketKey::random();
        let sealed = key.seal(&ticket());
        for i in 0..sealed.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut forged = sealed.clone();
                forged[i] ^= flip;
                assert!(key.open(&forged, "ann").is_err(), "byte {i} ^ {flip:#x}");
            }
        }
        for len in 0..sealed.len() {
            assert!(key.open(&sealed[..len], "ann").is_err(), "cut at {len}");
        }
    }
}
