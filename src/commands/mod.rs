//! The built-in commands, thin layers over the fleet API.

pub mod check;
pub mod discover;
pub mod election;
pub mod events;
pub mod inventory;
pub mod metrics;
pub(crate) mod options;
pub mod repl;
pub mod req;
pub mod run;
pub mod sim;
