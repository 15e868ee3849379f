//! How a simulated secure server checks a caller, held to go-choria's own code rather than
//! to what fleetbook itself sends.
//!
//! | module | what it checks |
//! |---|---|
//! | `v1` | protocol v1, the `file` provider: certificate chain, usage, names, RSA signature |
//! | `v2` | protocol v2, the `choria` provider: the caller token and the ed25519 signature |
//! | `token` | a Choria token: its signer (the issuer, or a chain issuer it vouches for), times |
//!
//! The reasons are the texts [`super::SimStats::rejected`] counts.

mod token;
mod v1;
mod v2;

pub use v1::{caller_identity, verify_v1};
pub use v2::{verify_v2, verify_v2_org};
