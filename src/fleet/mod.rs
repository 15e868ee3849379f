//! Choria over NATS: the wire protocol, filters, DDLs, discovery and RPC.

pub mod client;
pub mod compound;
pub mod ddl;
pub mod discovery;
pub mod election;
pub mod error;
pub mod events;
pub mod filter;
pub mod governor;
pub mod inventory;
pub mod jwt;
pub mod protocol;
pub mod reply;
pub mod rpc;
pub mod security;

pub use client::{ClientOptions, Fleet};
pub use error::{ErrorKind, FleetError};
